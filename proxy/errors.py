"""Switchback's exceptions, one hierarchy, translated at the boundary.

    SwitchbackError
    ├── ConfigError              a config file or value is invalid (message names file, key, value)
    ├── RolloutError             an illegal rollout transition, or a refused traffic change
    ├── Refused                  the proxy answers a request itself (a limit, a timeout,
    │                            overload, a malformed request): status, code, metric reason
    ├── StateError               the saved traffic state cannot be used (names the file)
    ├── LedgerError              the usage ledger cannot be read now (names the file)
    └── UpstreamError            forwarding to a release failed (carries the release name)
        ├── UpstreamUnavailable  the connection could not be opened: the app never saw the request
        ├── UpstreamTimeout      the release did not answer within the configured time
        ├── UpstreamBroken       the release closed or broke the connection mid-exchange
        └── UpstreamInvalid      the release answered with a malformed or over-long response

The listener turns UpstreamError into a JSON 502/504 naming the release; nothing below the
listener formats a response, and no traceback reaches a client.
"""

from __future__ import annotations


class SwitchbackError(Exception):
    """Base of every error Switchback raises on purpose."""


class ConfigError(SwitchbackError):
    """Invalid configuration. ``str(err)`` is the full user-facing message."""


class RolloutError(SwitchbackError):
    """An illegal rollout event for the current state, or a refused traffic change."""


class Refused(SwitchbackError):
    """A request Switchback answers itself, with a JSON error, without (further) calling the app.

    ``status`` and ``code`` make the response (``{"error": code, "detail": ...}``), ``reason``
    labels ``switchback_rejected_total`` ("" for refusals counted elsewhere), ``release`` names
    the release the refusal protects, ``retry_after`` (seconds) goes into a Retry-After header.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        reason: str = "",
        *,
        release: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.reason = reason
        self.release = release
        self.retry_after = retry_after


class StateError(SwitchbackError):
    """``traffic.json`` exists but cannot be used: unreadable, cut short, damaged, of another
    shape or version, or naming other releases. ``str(err)`` is ``"<path>: <problem>"``."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class LedgerError(SwitchbackError):
    """The ledger file cannot be read now; a report without it could call a used element
    unused, so there is none. ``str(err)`` names the file and the cause."""


class UpstreamError(SwitchbackError):
    """Forwarding to ``release`` failed; ``kind`` is the metric label for the failure."""

    kind = "error"

    def __init__(self, release: str, reason: str) -> None:
        super().__init__(f"{release}: {reason}")
        self.release = release
        self.reason = reason


class UpstreamUnavailable(UpstreamError):
    kind = "connect"


class UpstreamTimeout(UpstreamError):
    kind = "timeout"


class UpstreamBroken(UpstreamError):
    kind = "broken"


class UpstreamInvalid(UpstreamError):
    """The release's response breaks HTTP/1.1 (or a limit): it never reaches a client."""

    kind = "invalid"
