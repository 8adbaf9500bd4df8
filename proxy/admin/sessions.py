"""Login sessions of the status page: a random session id in a cookie, kept in memory.

The cookie never holds the token. Logging in with a read or admin token makes a 256-bit random
id; the store keeps it with the token's fingerprint (an HMAC with a key made per process) and
an expiry. A session is valid while it has not expired, has not been logged out, and its
token is still configured: changing ``admin.token`` or ``admin.read_token`` (a reload) ends
every session made with the old one. A restart ends them all.

A session grants one thing: reading the status page (``GET /``). The admin API never looks at
the cookie, so a page a browser was tricked into loading elsewhere can change nothing, and
every write still needs ``Authorization: Bearer <admin.token>``.

Bounded: at most ``max_sessions`` are kept; a new one beyond that replaces the oldest.
Pure apart from the random ids: the caller passes ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Iterable

COOKIE = "switchback_session"
TTL_SECONDS = 12 * 3600.0
MAX_SESSIONS = 1000


class Sessions:
    def __init__(self, ttl: float = TTL_SECONDS, max_sessions: int = MAX_SESSIONS) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._key = secrets.token_bytes(32)
        self._sessions: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # id -> (fp, exp)

    def fingerprint(self, token: str) -> bytes:
        return hmac.new(self._key, token.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def create(self, token: str, now: float) -> str:
        """A new session for a token the caller has checked; its id, for the cookie."""
        self._expire(now)
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = (self.fingerprint(token), now + self.ttl)
        return sid

    def valid(self, sid: str | None, tokens: Iterable[str], now: float) -> bool:
        """Whether ``sid`` is a live session made with one of ``tokens`` (those configured)."""
        if not sid:
            return False
        found = self._sessions.get(sid)
        if found is None:
            return False
        fp, expires = found
        if now >= expires:
            del self._sessions[sid]
            return False
        # Compare with every token, so that the time taken does not say which one matched.
        return sum(hmac.compare_digest(fp, self.fingerprint(t)) for t in tokens) > 0

    def end(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self, now: float) -> None:
        # Sessions are made in order of expiry (one TTL), so the expired ones come first.
        while self._sessions:
            sid, (_, expires) = next(iter(self._sessions.items()))
            if now < expires:
                return
            del self._sessions[sid]
