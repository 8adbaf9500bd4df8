"""Where the API-key secret comes from: the config, the environment, or a file kept in state_dir;
and that no message ever shows it."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config.load import parse_config
from proxy.config.secrets import SECRET_FILE, api_key_secret
from proxy.errors import ConfigError
from proxy.schema import Config

SRC = "t.yaml"
SECRET = "a-configured-secret-0123456789"
ENV = "SWITCHBACK_API_KEY_SECRET"


def raw(state_dir: Path | str = "./state", **clients: Any) -> dict[str, Any]:
    return {
        "state_dir": str(state_dir),
        "releases": {"blue": {"url": "http://127.0.0.1:1"}, "green": {"url": "http://127.0.0.1:2"}},
        "clients": {"api_key_header": "X-Api-Key", **clients},
    }


def parse(data: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    return parse_config(yaml.safe_dump(data), SRC, env or {})


def error(data: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data, env)
    return str(info.value)


# -- the loader --


def test_the_configured_secret_is_used_as_given() -> None:
    cfg = parse(raw(api_key_secret=SECRET))
    assert api_key_secret(cfg) == (SECRET.encode(), None)


def test_the_environment_gives_the_secret_when_the_file_sets_none() -> None:
    assert parse(raw(), {ENV: SECRET}).clients.api_key_secret == SECRET
    assert parse(raw(api_key_secret=None), {ENV: SECRET}).clients.api_key_secret == SECRET
    other = "the-file-wins-over-the-environment"
    assert parse(raw(api_key_secret=other), {ENV: SECRET}).clients.api_key_secret == other
    assert parse(raw(api_key_secret="${S}"), {"S": SECRET}).clients.api_key_secret == SECRET


@pytest.mark.parametrize("secret", ["", "qwxz5", "é" * 7, "fifteen-bytes!!"])
def test_a_short_secret_is_refused_naming_the_key_not_the_value(secret: str) -> None:
    size = len(secret.encode())
    message = error(raw(api_key_secret=secret))
    assert message == (
        f"{SRC}: clients.api_key_secret: (hidden) is too short ({size} bytes): an API-key secret "
        "needs at least 16 bytes (e.g. the output of `openssl rand -hex 32`)"
    )
    message = error(raw(), {ENV: secret})
    assert message.startswith(
        f"{SRC}: SWITCHBACK_API_KEY_SECRET (the environment's clients.api_key_secret): (hidden) "
        f"is too short ({size} bytes)"
    )
    if secret:
        assert secret not in message


def test_sixteen_bytes_are_enough() -> None:
    assert parse(raw(api_key_secret="0123456789abcdef")).clients.api_key_secret is not None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("clients.api_key_secret", 12345678901234567890),
        ("clients.api_key_secret", ["s3cret-s3cret-s3cret"]),
        ("admin.token", 4242424242),
        ("admin.read_token", 5151515151),
        ("clients.api_key_secret", "s3cret-${half-of-it"),
    ],
)
def test_a_malformed_secret_is_named_never_shown(key: str, value: Any) -> None:
    data = raw()
    section, name = key.split(".")
    data.setdefault(section, {})[name] = value
    message = error(data)
    assert message.startswith(f"{SRC}: {key}: (hidden) ")
    assert str(value).strip("[]'") not in message


def test_a_read_token_equal_to_the_token_is_refused() -> None:
    message = error({**raw(), "admin": {"token": "same-token", "read_token": "same-token"}})
    assert message == (
        f"{SRC}: admin.read_token: (hidden) is admin.token: a read token must not allow changes"
    )
    assert "same-token" not in message


# -- the file kept in state_dir --


def test_without_an_api_key_header_no_secret_is_needed(tmp_path: Path) -> None:
    cfg = parse({**raw(tmp_path), "clients": {"api_key_header": None}})
    assert api_key_secret(cfg) is None
    assert not (tmp_path / SECRET_FILE).exists()


def test_a_generated_secret_is_kept_private_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    cfg = parse(raw(state))
    with caplog.at_level(logging.DEBUG):
        found = api_key_secret(cfg)
    assert found is not None
    secret, kept_in = found
    path = state / SECRET_FILE
    assert kept_in == str(path)
    assert len(secret) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"generated the API-key secret in {path}" in caplog.text
    assert secret.decode() not in caplog.text
    assert api_key_secret(cfg) == (secret, str(path))  # read again, not generated again
    assert [p.name for p in state.iterdir()] == [SECRET_FILE]  # no temporary file left
    other = api_key_secret(parse(raw(tmp_path / "elsewhere")))
    assert other is not None and other[0] != secret


def test_processes_sharing_a_state_dir_agree_on_one_secret(tmp_path: Path) -> None:
    cfg = parse(raw(tmp_path))
    found: list[Any] = []
    start = threading.Barrier(8)

    def run() -> None:
        start.wait()
        found.append(api_key_secret(cfg))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({secret for secret, _ in found}) == 1
    assert sorted(os.listdir(tmp_path)) == [SECRET_FILE]


def test_a_secret_file_open_to_others_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / SECRET_FILE
    path.write_text("an-operator-placed-secret-0123\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert api_key_secret(parse(raw(tmp_path))) == (
            b"an-operator-placed-secret-0123",
            str(path),
        )
    assert f"{path} is open to other users (mode 644): chmod 600 it" in caplog.text


def test_a_short_secret_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / SECRET_FILE
    path.write_bytes(b"tiny\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        api_key_secret(parse(raw(tmp_path)))
    message = str(info.value)
    assert message.startswith(f"{path}: (hidden) is too short (4 bytes)")
    assert "delete the file to generate a new secret" in message
    assert "tiny" not in message


def test_a_state_dir_where_no_file_can_be_kept_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as info:
        api_key_secret(parse(raw(blocker / "state")))
    assert str(info.value) == (
        f"{blocker / 'state' / SECRET_FILE}: cannot keep the API-key secret: Not a directory "
        "(set clients.api_key_secret or SWITCHBACK_API_KEY_SECRET, or make state_dir writable)"
    )
