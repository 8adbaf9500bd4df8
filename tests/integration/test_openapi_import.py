"""``switchback import-openapi`` end to end: a document describing the telemetry release is
imported through the real command line, its output pasted into a config file, and Switchback
started with that file counts and announces exactly the deprecations the document declares."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from proxy.app.runtime import Runtime
from proxy.config.load import load_config
from tests.integration.conftest import Proxy, Releases, base_config, merge
from tests.integration.helpers_telemetry import TelemetryApp, counts, fetch, running_app

ROOT = Path(__file__).resolve().parents[2]

# The telemetry release's API as its maintainers might describe it (helpers_telemetry).
DOCUMENT = """\
openapi: 3.0.3
info: {title: Telemetry app, version: "2"}
servers:
  - url: https://api.example.com/v2
paths:
  /users:
    get:
      parameters:
        - name: sort_by
          in: query
          deprecated: true
          x-sunset: "2027-01-01"
          schema: {type: string}
        - {name: X-Legacy, in: header, deprecated: true, schema: {type: string}}
      responses:
        "200": {description: ok}
  /users/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      responses:
        "200":
          description: one user
          content:
            application/json:
              schema: {$ref: "#/components/schemas/UserEnvelope"}
  /v0/users/{id}:
    get:
      deprecated: true
      x-deprecated-at: "2026-03-01"
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses:
        "200":
          description: one user, the old way
          content:
            application/json:
              schema: {$ref: "#/components/schemas/UserEnvelope"}
  /items:
    get:
      responses:
        "200":
          description: items
          content:
            application/json:
              schema:
                type: object
                properties:
                  items: {type: array, items: {$ref: "#/components/schemas/Item"}}
  /orders:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                options:
                  type: object
                  properties:
                    legacy: {type: boolean, deprecated: true}
      responses:
        "201": {description: created}
components:
  schemas:
    UserEnvelope:
      type: object
      properties:
        user: {$ref: "#/components/schemas/User"}
    User:
      type: object
      properties:
        id: {type: string}
        name: {type: string}
        role: {type: string, deprecated: true, x-sunset: "2027-01-01"}
        manager: {$ref: "#/components/schemas/User"}
    Item:
      allOf:
        - {$ref: "#/components/schemas/Base"}
        - type: object
          properties:
            role: {type: string, deprecated: true}
    Base:
      type: object
      properties:
        id: {type: integer}
"""


def import_openapi(document: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "import-openapi", str(document), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
async def app() -> AsyncIterator[TelemetryApp]:
    async with running_app() as app:
        yield app


@pytest.fixture
async def proxy(
    releases: Releases, app: TelemetryApp, tmp_path: Path
) -> AsyncIterator[tuple[Proxy, str, str]]:
    """Switchback with the imported entries; also the import's stdout and stderr."""
    document = tmp_path / "openapi.yaml"
    document.write_text(DOCUMENT)
    done = import_openapi(document, "--base-path", "", "--deprecated-on", "2026-06-01")
    assert done.returncode == 0, done.stderr
    settings = merge(
        base_config(releases, tmp_path / "state"), {"releases": {"blue": {"url": app.url}}}
    )
    path = tmp_path / "switchback.yaml"
    path.write_text(yaml.safe_dump(settings) + done.stdout)  # pasted as the user would
    runtime = Runtime(load_config(path))
    await runtime.start()
    try:
        yield Proxy(runtime, path), done.stdout, done.stderr
    finally:
        await runtime.stop()


async def test_imported_rules_are_counted_and_announced(proxy: tuple[Proxy, str, str]) -> None:
    running, output, notes = proxy
    ids = [entry.id for entry in running.runtime.config.deprecations]
    assert ids == [
        "get-items-items-role",
        "post-orders-request-options-legacy",
        "get-users-param-sort-by",
        "get-users-id-user-role",
        "get-v0-users-id",
        "get-v0-users-id-user-role",
    ]  # sorted by path, then method
    assert "X-Legacy" in notes and "header parameter" in notes  # skipped, and said so

    user = await fetch(running.url, "/users/1", client="alpha")
    assert user.status == 200
    assert user.values("Deprecation") == ["@1780272000"]  # 2026-06-01, the date given
    assert user.values("Sunset") == ["Fri, 01 Jan 2027 00:00:00 GMT"]  # the document's x-sunset
    old = await fetch(running.url, "/v0/users/1", client="beta")
    assert old.values("Deprecation") == ["@1772323200"]  # 2026-03-01, x-deprecated-at
    await fetch(running.url, "/users?sort_by=name", client="gamma")
    await fetch(running.url, "/items", client="delta")
    body = b'{"options": {"legacy": true}}'
    headers = {"Content-Type": "application/json"}
    await fetch(running.url, "/orders", client="eps", method="POST", body=body, headers=headers)
    await fetch(running.url, "/users/nobody", client="zeta")  # no "role" in this user

    seen = {key: value for key, value in counts(await running.metrics()).items() if value}
    assert seen == {
        ("get-users-id-user-role", "exposure", "alpha"): 1.0,
        ("get-v0-users-id", "use", "beta"): 1.0,
        ("get-v0-users-id-user-role", "exposure", "beta"): 1.0,
        ("get-users-param-sort-by", "use", "gamma"): 1.0,
        ("get-items-items-role", "exposure", "delta"): 1.0,
        ("post-orders-request-options-legacy", "use", "eps"): 1.0,
    }


def test_the_default_base_path_is_the_servers_path(tmp_path: Path) -> None:
    document = tmp_path / "openapi.yaml"
    document.write_text(DOCUMENT)
    done = import_openapi(document, "--deprecated-on", "2026-06-01")
    assert done.returncode == 0, done.stderr
    assert "endpoint: GET /v2/v0/users/{id}" in done.stdout
    assert "on: GET /v2/users/{id}" in done.stdout
