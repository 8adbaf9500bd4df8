"""The secret that API keys are hashed with, and where it comes from.

A client known by its API key gets the id ``key:`` + the first 16 hex digits of
HMAC-SHA256(secret, key) (``proxy.traffic.clients``). The hash is keyed so that an id seen in a
metric label, the ledger or the report cannot be confirmed by hashing guessed keys: without the
secret, nobody can compute the id of a key.

Where the secret comes from, first found wins:

1. ``clients.api_key_secret`` in the config (``${VAR}`` works, as everywhere);
2. the environment variable ``SWITCHBACK_API_KEY_SECRET``, applied by the config loader when
   the key is absent, so ``switchback check`` checks it too;
3. ``<state_dir>/api-key-secret``: 32 random bytes (as hex) generated the first time, mode 0600,
   and read again on every start, so that the ids of this replica survive restarts. Each
   replica generates its own: a fleet must configure one shared secret, or the same key gets a
   different id on every replica (stickiness, pins and the ledger then disagree).

A secret is needed only while ``clients.api_key_header`` is set. One shorter than
``MIN_SECRET_BYTES`` is refused. The secret never appears in a log line, an error message, the
status or a metric: messages give its length, never its text.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile

from proxy.errors import ConfigError
from proxy.schema import Config

log = logging.getLogger("switchback")

MIN_SECRET_BYTES = 16
ENV_VAR = "SWITCHBACK_API_KEY_SECRET"
SECRET_FILE = "api-key-secret"
HIDDEN = "(hidden)"  # what messages show in place of a secret's text


def secret_bytes(text: str) -> bytes:
    """The bytes the HMAC is keyed with: the secret as given, UTF-8 encoded, nothing stripped."""
    return text.encode("utf-8", "surrogatepass")


def secret_problem(secret: bytes) -> str | None:
    """Why ``secret`` cannot be used, as ``<what is shown> <problem>``; None when it can."""
    size = len(secret)
    if size >= MIN_SECRET_BYTES:
        return None
    return (
        f"{HIDDEN} is too short ({size} bytes): an API-key secret needs at least "
        f"{MIN_SECRET_BYTES} bytes (e.g. the output of `openssl rand -hex 32`)"
    )


def api_key_secret(config: Config) -> tuple[bytes, str | None] | None:
    """The secret for ``config`` and the file it is kept in (None: it is configured).

    None when no API-key header is configured. Reads, or creates, ``<state_dir>/api-key-secret``
    when no secret is configured; a file that cannot be read or written, or holds too short a
    secret, is a ``ConfigError`` naming it.
    """
    if config.clients.api_key_header is None:
        return None
    if config.clients.api_key_secret is not None:  # checked by the loader
        return secret_bytes(config.clients.api_key_secret), None
    path = os.path.join(config.state_dir, SECRET_FILE)
    try:
        secret = _read_or_create(config.state_dir, path)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot keep the API-key secret: {exc.strerror or exc} "
            f"(set clients.api_key_secret or {ENV_VAR}, or make state_dir writable)"
        ) from None
    problem = secret_problem(secret)
    if problem is not None:
        raise ConfigError(
            f"{path}: {problem}; delete the file to generate a new secret (which changes the id "
            f"of every API-key client) or set clients.api_key_secret"
        )
    return secret, path


def _read_or_create(state_dir: str, path: str) -> bytes:
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    os.makedirs(state_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{SECRET_FILE}.", suffix=".tmp", dir=state_dir)
    try:  # mkstemp creates the file with mode 0600
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_hex(32))
            file.flush()
            os.fsync(file.fileno())
        # link() fails when the file exists: of two processes sharing state_dir, the first to
        # link wins and the other reads the winner's secret. Readers never see a partial file.
        os.link(tmp, path)
    except FileExistsError:
        pass
    else:
        _fsync_dir(state_dir)
        log.info("generated the API-key secret in %s", path)
    finally:
        os.unlink(tmp)
    return _read(path)


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        secret = file.read().strip()
    if mode & 0o077:
        log.warning("%s is open to other users (mode %o): chmod 600 it", path, mode & 0o777)
    return secret


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
