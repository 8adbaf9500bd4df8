"""A small synchronous client for the admin API, on urllib (the CLI needs no event loop).

Every failure becomes ``AdminError``: an answer with an error status carries the server's
``error`` text, the status and the ``code``; an admin API that cannot be reached (refused,
timed out, not HTTP) carries ``cannot reach the admin API at URL: reason`` and no status.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson

from proxy import __version__


class AdminError(Exception):
    """The admin API refused a call or could not be reached. ``str(err)`` is the message.

    Not in ``proxy.errors``' tree: it reports what another process answered (``status`` and
    ``code`` are the server's, None when there was no answer) and never becomes an answer."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The admin API never redirects; following one would send the token somewhere else.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxies from the environment either: the token goes to the admin listener and nowhere else.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


class AdminClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        if "://" not in base_url:
            base_url = "http://" + base_url  # accept "127.0.0.1:9901"
        if not _is_http_url(base_url):
            raise AdminError(f"invalid admin URL {base_url!r}: expected http://host:port")
        if token and not (token.isascii() and token.isprintable()):
            raise AdminError("the admin token must be printable ASCII")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str) -> Any:
        return self.send("GET", path)

    def send(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``method path`` with ``body`` as JSON; return the parsed JSON answer."""
        headers = {"Accept": "application/json", "User-Agent": f"switchback-cli/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        elif method != "GET":
            data = b""  # an explicit Content-Length: 0
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with _opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:  # an answer, with an error status
            raise AdminError(*_error_of(exc)) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            reason = _reason(exc)
            raise AdminError(f"cannot reach the admin API at {self.base_url}: {reason}") from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise AdminError(
                f"the admin API at {self.base_url} answered {method} {path} with invalid JSON",
                status,
            ) from None


def _is_http_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _error_of(exc: urllib.error.HTTPError) -> tuple[str, int, str | None]:
    """The server's ``error`` text (or the bare status when the body has none), the status,
    and the server's ``code``."""
    try:
        data = orjson.loads(exc.read())
    except (OSError, http.client.HTTPException, orjson.JSONDecodeError):
        data = None
    finally:
        exc.close()
    if not isinstance(data, dict):
        data = {}
    code = data.get("code")
    code = code if isinstance(code, str) else None
    if isinstance(data.get("error"), str):
        return str(data["error"]), exc.code, code
    return f"HTTP {exc.code} {exc.reason}", exc.code, code


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
