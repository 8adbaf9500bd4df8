"""Switchback's exceptions, one hierarchy, translated at the boundary.

Every error Switchback raises on purpose is one of these, and says how it answers over HTTP:
``status`` and a short ``code`` (``str(err)`` is the message).

    SwitchbackError              500 internal_error
    ├── ConfigError              400 invalid_config      a config file or value is invalid
    ├── InvalidInput             400 invalid_input       a value sent to the admin API is not valid
    ├── AccessDenied             403 forbidden           the admin token given does not allow it
    │   └── Unauthorized         401 unauthorized        no admin token, or a wrong one
    ├── RolloutError             409 illegal_move        a move the rollout's state forbids
    │   └── ShadowNotClean       409 shadow_not_clean    shadow traffic saw breaking differences
    ├── LedgerError              503 ledger_unavailable  the usage ledger cannot be read now
    ├── JournalError             503 journal_unavailable the write journal cannot be read now
    ├── StateError               503 state_unusable      the saved traffic state cannot be used
    ├── Refused                  (per refusal)           the proxy answers a request itself
    └── UpstreamError            502 upstream_error      forwarding to a release failed
        ├── UpstreamUnavailable  502 upstream_unavailable  the connection could not be opened
        ├── UpstreamTimeout      504 upstream_timeout      no response within the time allowed
        ├── UpstreamBroken       502 upstream_broken       the connection broke mid-exchange
        └── UpstreamInvalid      502 upstream_invalid      a malformed or over-long response

Bad input and an illegal move are told apart: a weight of 140, NaN or below 0, weights that do
not sum to 100, an unknown release or rollout steps that do not ascend are ``InvalidInput``
(400: the same request will never work); pausing when idle, starting while ramping or setting
weights while ramping is a ``RolloutError`` (409: it may work once the state has changed).

Where they become answers: the admin API's middleware (``proxy.admin.api``) reads status and
code off any of them into ``{"error": message, "code": code}``; the data plane writes its own
raw JSON (``proxy.http.http1.error_response``), taking status and code from ``Refused`` and
from the ``UpstreamError`` classes, and naming the release. No traceback reaches a client.

Outside the tree on purpose, since none of them ever becomes an answer: the CLI's own refusals
(``proxy.cli.commands.CliError``, ``proxy.demo.run.DemoError``: an exit code on a terminal),
the admin client's ``AdminError`` (what another process answered), and control flow private
to a module (the parsers' ``_Stop``, the ledger file's ``LedgerCorrupt`` and ``SetAside``).
"""

from __future__ import annotations


class SwitchbackError(Exception):
    """Base of every error Switchback raises on purpose; ``status`` and ``code`` say how it
    answers over HTTP, ``headers`` what else the answer must carry."""

    status: int = 500
    code: str = "internal_error"

    @property
    def headers(self) -> dict[str, str]:
        return {}


class ConfigError(SwitchbackError):
    """Invalid configuration. ``str(err)`` is the full user-facing message."""

    status = 400
    code = "invalid_config"


class InvalidInput(SwitchbackError):
    """A value sent to Switchback is malformed or out of range; ``str(err)`` names its path
    (``weights.green: 140 is not a percentage (0-100)``). Nothing changed."""

    status = 400
    code = "invalid_input"


class AccessDenied(SwitchbackError):
    """The admin token given does not allow this (or no token can, from this peer)."""

    status = 403
    code = "forbidden"


class Unauthorized(AccessDenied):
    """No admin token, or a wrong one: the answer asks for a bearer token."""

    status = 401
    code = "unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class RolloutError(SwitchbackError):
    """An illegal rollout event for the current state, or a traffic change the current state
    forbids. Nothing changed."""

    status = 409
    code = "illegal_move"


class ShadowNotClean(RolloutError):
    """``rollout.require_clean_shadow`` and shadow traffic saw breaking differences within
    ``shadow.window``: the message names them. Nothing changed."""

    code = "shadow_not_clean"


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

    status = 503
    code = "state_unusable"

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class LedgerError(SwitchbackError):
    """The ledger file cannot be read now; a report without it could call a used element
    unused, so there is none. ``str(err)`` names the file and the cause."""

    status = 503
    code = "ledger_unavailable"


class JournalError(SwitchbackError):
    """The write journal cannot be read or marked now (``str(err)`` names the file and the
    cause); nothing is replayed without it."""

    status = 503
    code = "journal_unavailable"


class UpstreamError(SwitchbackError):
    """Forwarding to ``release`` failed; ``kind`` is the metric label for the failure."""

    status = 502
    code = "upstream_error"
    kind = "error"

    def __init__(self, release: str, reason: str) -> None:
        super().__init__(f"{release}: {reason}")
        self.release = release
        self.reason = reason


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    kind = "connect"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    kind = "timeout"


class UpstreamBroken(UpstreamError):
    code = "upstream_broken"
    kind = "broken"


class UpstreamInvalid(UpstreamError):
    """The release's response breaks HTTP/1.1 (or a limit): it never reaches a client."""

    code = "upstream_invalid"
    kind = "invalid"
