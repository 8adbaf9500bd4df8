"""``proxy.openapi``: what an OpenAPI document's deprecations become, on ReadMe's public example
documents (tests/data/openapi, MIT) and on small documents made for each case; and that the
output always loads through the real config loader."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from proxy.config.load import parse_config
from proxy.errors import ConfigError
from proxy.openapi.document import Imported, import_file

DATA = Path(__file__).resolve().parents[1] / "data" / "openapi"
ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 6, 1)
RELEASES = (
    "releases:\n  blue: {url: 'http://127.0.0.1:9001'}\n  green: {url: 'http://127.0.0.1:9002'}\n"
)


def loaded(imported: Imported) -> list[dict[str, Any]]:
    """The entries as the real loader reads them from a config with the output pasted in."""
    cfg = parse_config(RELEASES + imported.text, "switchback.yaml", {})
    out = []
    for dep in cfg.deprecations:
        kind = next(k for k in ("endpoint", "param", "request_field", "field") if getattr(dep, k))
        entry = {"id": dep.id, kind: getattr(dep, kind), "deprecated": dep.deprecated.date()}
        if dep.on is not None:
            entry["on"] = dep.on
        if dep.sunset is not None:
            entry["sunset"] = dep.sunset
        out.append(entry)
    return out


def run(path: Path, **options: Any) -> list[dict[str, Any]]:
    return loaded(import_file(str(path), deprecated_on=DAY, **options))


def write(tmp_path: Path, text: str, name: str = "api.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def elements(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    kinds = ("endpoint", "param", "request_field", "field")
    return [(k, e[k]) for e in entries for k in kinds if k in e]


# -- real documents --


def test_readme_deprecated_example_maps_every_marked_element() -> None:
    entries = run(DATA / "readme-schema-deprecated.yaml")
    found = elements(entries)
    assert found[:3] == [
        ("endpoint", "POST /anything"),
        ("param", "filterLegacy"),
        ("param", "status"),
    ]
    pet = [
        "category.id",  # Category's own deprecated properties, through $ref
        "category.name",
        "category_alt",  # deprecated beside its $ref
        "category_alt.id",
        "category_alt.name",
        "id",
        "name",
        "photoUrls",
        "photoUrls[]",  # deprecated items
        "polymorphism.allOf",
        "polymorphism.allOf.status",  # a deprecated schema (Status) named through allOf
        "polymorphism.anyOf",
        "polymorphism.anyOf.status",
        "polymorphism.oneOf",
        "polymorphism.oneOf.status",
        "status",
        "tags",
        "tags_alt[].id",
        "tags_alt[].name",
    ]
    assert [v for k, v in found if k == "request_field"] == pet
    assert [v for k, v in found if k == "field"] == ["[]." + p for p in pet]  # a top-level array
    assert all(e["on"] == "POST /anything" for e in entries[1:])
    assert all(e["deprecated"] == DAY for e in entries)
    assert len({e["id"] for e in entries}) == len(entries)


def test_swagger_2_and_openapi_3_1_petstores_and_their_base_paths() -> None:
    two = run(DATA / "readme-petstore-2.0.yaml")
    assert two == [
        {"id": "get-pet-findbytags", "endpoint": "GET /v2/pet/findByTags", "deprecated": DAY}
    ]
    three = run(DATA / "readme-petstore-3.1.yaml", base_path="/api/")
    assert elements(three) == [("endpoint", "GET /api/pet/findByTags")]
    assert (
        run(DATA / "readme-petstore-2.0.yaml", base_path="")[0]["endpoint"] == "GET /pet/findByTags"
    )
    assert three[0]["id"] == two[0]["id"]  # the base path is not part of the id


def test_a_recursive_schema_terminates() -> None:
    imported = import_file(str(DATA / "readme-schema-circular-2.0.yaml"), deprecated_on=DAY)
    assert imported.count == 0 and "deprecations: []" in imported.text


# -- small documents, one case each --

COMPONENTS_3_0 = """\
openapi: 3.0.3
info: {title: t, version: "1"}
servers:
  - {url: "https://{host}/{version}", variables: {host: {default: x}, version: {default: v1}}}
paths:
  /pets/{petId}:
    parameters:
      - $ref: "#/components/parameters/Legacy"
      - {name: petId, in: path, required: true, schema: {type: string}}
    get:
      operationId: getPet
      responses:
        "200":
          $ref: "#/components/responses/PetResponse"
        default:
          description: error
          content:
            application/problem+json:
              schema:
                type: object
                properties: {old_code: {type: string, deprecated: true}}
    put:
      parameters:
        - {name: legacy, in: query, schema: {type: string}}  # not deprecated on this operation
        - {name: X-Trace, in: header, deprecated: true, schema: {type: string}}
        - {name: session, in: cookie, deprecated: true, schema: {type: string}}
      requestBody:
        $ref: "#/components/requestBodies/Pet"
      responses:
        "204": {description: done}
  /files/{name}.{ext}:
    get:
      deprecated: true
      responses: {"200": {description: a file}}
components:
  parameters:
    Legacy: {name: legacy, in: query, deprecated: true, schema: {type: boolean}}
  requestBodies:
    Pet:
      content:
        application/json:
          schema: {$ref: "#/components/schemas/Pet"}
        text/plain:
          schema: {type: object, properties: {ignored: {type: string, deprecated: true}}}
  responses:
    PetResponse:
      description: a pet
      content:
        application/json:
          schema: {$ref: "#/components/schemas/Pet"}
  schemas:
    Pet:
      allOf:
        - $ref: "#/components/schemas/Named"
        - type: object
          properties:
            owner: {$ref: "#/components/schemas/Owner"}
            labels:
              type: object
              additionalProperties:
                type: object
                properties: {color: {type: string, deprecated: true}}
            "a.b": {type: string, deprecated: true}
    Named:
      type: object
      properties:
        nick: {type: string, deprecated: true}
    Owner:
      type: object
      deprecated: true
      properties:
        name: {type: string}
        role: {type: string, deprecated: true}
"""


def test_refs_through_components_all_of_arrays_and_maps(tmp_path: Path) -> None:
    imported = import_file(str(write(tmp_path, COMPONENTS_3_0)), deprecated_on=DAY)
    entries = loaded(imported)
    assert [(e["id"], e.get("on")) for e in entries][:2] == [
        ("get-pets-petid-param-legacy", "GET /v1/pets/{petId}"),  # a path-level $ref parameter
        ("get-pets-petid-a-b", "GET /v1/pets/{petId}"),
    ]
    assert elements(entries) == [  # by path, method, kind, then element
        ("param", "legacy"),
        ("field", '"a.b"'),  # a key with a dot, quoted
        ("field", "labels.*.color"),  # additionalProperties: any key
        ("field", "nick"),  # through allOf and $ref
        ("field", "old_code"),  # application/problem+json is JSON too
        ("field", "owner"),  # Owner is deprecated as a whole
        ("field", "owner.role"),
        ("request_field", '"a.b"'),  # text/plain's schema is not read
        ("request_field", "labels.*.color"),
        ("request_field", "nick"),
        ("request_field", "owner"),
        ("request_field", "owner.role"),
    ]
    assert {e["on"] for e in entries[7:]} == {"PUT /v1/pets/{petId}"}
    notes = "\n".join(imported.notes)
    assert "header parameter 'X-Trace' is deprecated: skipped" in notes
    assert "cookie parameter 'session' is deprecated: skipped" in notes
    assert "paths['/files/{name}.{ext}'].get: skipped" in notes


def test_ids_are_unique_readable_and_the_same_on_every_import(tmp_path: Path) -> None:
    path = write(tmp_path, COMPONENTS_3_0)
    first = import_file(str(path), deprecated_on=DAY)
    again = import_file(str(path), deprecated_on=DAY)
    assert first.text == again.text
    ids = [e["id"] for e in loaded(first)]
    assert len(set(ids)) == len(ids)
    assert "put-pets-petid-request-owner-role" in ids
    assert "get-pets-petid-a-b" in ids


RECURSIVE_3_1 = """\
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /tree:
    get:
      responses:
        "200":
          description: a tree
          content:
            application/json:
              schema: {$ref: "#/$defs/Node"}
$defs:
  Node:
    type: [object, "null"]
    properties:
      legacy: {type: string, deprecated: true, x-sunset: "2027-03-01T12:00:00Z"}
      children: {type: array, items: {$ref: "#/$defs/Node"}}
      parent: {$ref: "#/$defs/Node", deprecated: true}
"""


def test_recursion_stops_at_the_first_repetition(tmp_path: Path) -> None:
    entries = run(write(tmp_path, RECURSIVE_3_1))
    assert elements(entries) == [("field", "legacy"), ("field", "parent")]
    assert entries[0]["sunset"] == dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC)


SWAGGER = """\
swagger: "2.0"
info: {title: t, version: "1"}
basePath: /api
paths:
  /orders:
    post:
      parameters:
        - {name: body, in: body, schema: {$ref: "#/definitions/Order"}}
        - {name: note, in: formData, type: string, deprecated: true}
        - $ref: "#/parameters/Expand"
      responses:
        "200": {description: ok, schema: {type: array, items: {$ref: "#/definitions/Order"}}}
parameters:
  Expand: {name: expand, in: query, type: string, deprecated: true, x-deprecation-date: 2026-02-01}
definitions:
  Order:
    type: object
    properties:
      coupon: {type: string, deprecated: true}
"""


def test_swagger_body_parameters_definitions_and_a_date_extension(tmp_path: Path) -> None:
    imported = import_file(str(write(tmp_path, SWAGGER)), deprecated_on=DAY)
    assert loaded(imported) == [
        {
            "id": "post-orders-param-expand",
            "param": "expand",
            "on": "POST /api/orders",
            "deprecated": dt.date(2026, 2, 1),
        },
        {
            "id": "post-orders-request-coupon",
            "request_field": "coupon",
            "on": "POST /api/orders",
            "deprecated": DAY,
        },
        {
            "id": "post-orders-coupon",
            "field": "[].coupon",
            "on": "POST /api/orders",
            "deprecated": DAY,
        },
    ]
    assert "formData parameter 'note' is deprecated: skipped" in "\n".join(imported.notes)


DATES = """\
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get: {deprecated: true, x-sunset: 2026-01-01, responses: {"200": {description: ok}}}
  /b:
    get:
      deprecated: true
      x-deprecated-at: 2026-05-01
      x-sunset: 2026-04-01
      responses: {"200": {description: ok}}
  /c:
    get: {deprecated: true, x-sunset: soon, responses: {"200": {description: ok}}}
  /d:
    get:
      deprecated: true
      x-sunset: "Sat, 31 Dec 2044 23:59:59 GMT"
      responses: {"200": {description: ok}}
"""


def test_dates_that_a_config_would_refuse_are_corrected_or_left_out(tmp_path: Path) -> None:
    imported = import_file(str(write(tmp_path, DATES)), deprecated_on=DAY)
    a, b, c, d = loaded(imported)
    assert (a["deprecated"], a["sunset"].date()) == (dt.date(2026, 1, 1), dt.date(2026, 1, 1))
    assert (b["deprecated"], "sunset" in b) == (dt.date(2026, 5, 1), False)
    assert (c["deprecated"], "sunset" in c) == (DAY, False)
    assert d["sunset"] == dt.datetime(2044, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    notes = "\n".join(imported.notes)
    assert "x-sunset 2026-01-01 is before 2026-06-01: the deprecation date is set" in notes
    assert "sunset left out" in notes and "x-sunset 'soon' is not a date" in notes


def test_validation_warns_and_strict_refuses(tmp_path: Path) -> None:
    path = write(tmp_path, DATES.replace('info: {title: t, version: "1"}', "info: {title: t}"))
    imported = import_file(str(path), deprecated_on=DAY)
    assert imported.count == 4
    assert any("'version' is a required property" in w for w in imported.warnings)
    with pytest.raises(ConfigError, match="'version' is a required property.*--strict"):
        import_file(str(path), deprecated_on=DAY, strict=True)


def test_a_json_document_and_a_ref_to_another_file(tmp_path: Path) -> None:
    write(
        tmp_path, "User:\n  type: object\n  properties: {role: {deprecated: true}}\n", "user.yaml"
    )
    doc = (
        '{"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {"/u": {"get": '
        '{"responses": {"200": {"description": "ok", "content": {"application/json": '
        '{"schema": {"$ref": "user.yaml#/User"}}}}}}}}}'
    )
    assert elements(run(write(tmp_path, doc, "api.json"))) == [("field", "role")]


# -- bad input: one line naming the file and the place, exit 2 --

BAD = [
    ("missing.yaml", None, "missing.yaml: no such file"),
    ("dir", "", "dir: not a file"),
    ("a.yaml", "openapi: 3.0.0\npaths: [\n", "a.yaml: line 3, column 1: invalid YAML"),
    ("a.json", '{"openapi": "3.0.0",', "a.json: invalid JSON"),
    ("a.yaml", "name: not an api\n", "a.yaml: not an OpenAPI document"),
    ("a.yaml", "swagger: '1.2'\n", "a.yaml: swagger: '1.2' is not '2.0'"),
    ("a.yaml", "openapi: 3.0.0\npaths: []\n", "a.yaml: paths: is not a mapping"),
    (
        "a.yaml",
        "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get:\n"
        "      responses:\n        '200': {$ref: '#/components/responses/Gone'}\n",
        "a.yaml: paths['/x'].get.responses.200: $ref '#/components/responses/Gone' cannot be "
        "resolved",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    if text == "":
        (tmp_path / name).mkdir()
    elif text is not None:
        write(tmp_path, text, name)
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "import-openapi", name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"switchback: {message}"), done.stderr


def test_output_file_is_checked_by_switchback_check(tmp_path: Path) -> None:
    out = tmp_path / "deprecations.yaml"
    source = DATA / "readme-schema-deprecated.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "import-openapi", str(source), "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "41 deprecation entries written" in done.stderr
    config = write(tmp_path, RELEASES + out.read_text(), "switchback.yaml")
    checked = subprocess.run(
        [sys.executable, "-m", "proxy", "check", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "41 deprecations" in checked.stdout


def test_a_schema_that_explodes_through_aliases_is_refused_not_walked_for_ever(
    tmp_path: Path,
) -> None:
    """Each level names the one below twice: 2**30 positions from 30 small objects."""
    levels = ["l0: &l0 {type: string}"]
    for i in range(1, 31):
        levels.append(f"l{i}: &l{i} {{properties: {{a: *l{i - 1}, b: *l{i - 1}}}}}")
    doc = (
        "openapi: 3.0.0\ninfo: {title: t, version: '1'}\nx-levels:\n"
        + "".join(f"  {line}\n" for line in levels)
        + "paths:\n  /x:\n    get:\n      responses:\n        '200':\n          description: ok\n"
        "          content: {application/json: {schema: *l30}}\n"
    )
    with pytest.raises(ConfigError, match="describes over 200000 positions"):
        import_file(str(write(tmp_path, doc)), deprecated_on=DAY)
