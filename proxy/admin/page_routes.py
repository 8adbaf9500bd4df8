"""The status page's routes on the admin listener: ``GET /``, the login form and logout.

Who may see the page follows the admin API's read rule (``proxy.admin.api``): while the reads
are open (loopback listener, no ``admin.read_token``) the page is open too and there is no
login. Otherwise the page needs one of:

- ``Authorization: Bearer <admin.token or admin.read_token>`` (for curl), or
- the session cookie that ``POST /login`` (a form with the token, entered once) sets:
  ``switchback_session=<random id>``, HttpOnly, SameSite=Strict, Path=/, Secure when the
  request came over TLS or with ``X-Forwarded-Proto: https``. The id is kept in memory
  (``proxy.admin.sessions``), never the token; ``POST /logout`` ends it.

The cookie is a read grant for this page and nothing else: the admin API's middleware never
reads it, so writes keep needing the bearer token and a forged cross-site request carries no
authority. ``POST /login`` and ``POST /logout`` refuse a request whose ``Origin`` is another
site's. A visitor without access is sent to the form (303).
"""

from __future__ import annotations

import hmac
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from proxy.admin.page import CSP, SORTS, login_page, render_page
from proxy.admin.sessions import COOKIE, Sessions
from proxy.config.checks import admin_reads_need_token, is_set
from proxy.errors import AccessDenied, SwitchbackError
from proxy.schema import AdminConfig, Config

PAGE_PATHS = frozenset({"/", "/login", "/logout"})  # authorized here, not by the middleware


class PageRuntime(Protocol):
    config: Config

    def status(self) -> dict[str, Any]: ...

    def status_history(self) -> dict[str, Any]: ...

    def recent_events(self) -> dict[str, Any]: ...

    async def deprecation_report(self, days: int | None) -> dict[str, Any]: ...


class StatusPage:
    def __init__(self, runtime: PageRuntime) -> None:
        self.runtime = runtime
        self.sessions = Sessions()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/login", self.login_form)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)

    # -- handlers --
    async def page(self, request: web.Request) -> web.StreamResponse:
        admin = self.runtime.config.admin
        needs_login = admin_reads_need_token(admin)
        if needs_login and not self._may_read(request, admin):
            return _redirect("/login")
        sort = request.query.get("sort", "id")
        order = request.query.get("order", "asc")
        html = render_page(
            self.runtime.status(),
            self.runtime.status_history(),
            self.runtime.recent_events(),
            await self._report(),
            sort=sort if sort in SORTS else "id",
            order=order if order in ("asc", "desc") else "asc",
            logout=needs_login and COOKIE in request.cookies,
        )
        return _html(html)

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if not admin_reads_need_token(self.runtime.config.admin):
            return _redirect("/")
        return _html(login_page())

    async def login(self, request: web.Request) -> web.StreamResponse:
        _same_origin(request)
        admin = self.runtime.config.admin
        if not admin_reads_need_token(admin):
            return _redirect("/")
        form = await request.post()
        supplied = form.get("token")
        token = supplied.strip() if isinstance(supplied, str) else ""
        if not token or not _matches_any(token, _tokens(admin)):
            return _html(login_page("That token is not the admin token or read token."), 401)
        sid = self.sessions.create(token, time.time())
        response = _redirect("/")
        response.set_cookie(
            COOKIE,
            sid,
            max_age=int(self.sessions.ttl),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=_over_tls(request),
        )
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        _same_origin(request)
        self.sessions.end(request.cookies.get(COOKIE))
        response = _redirect("/login")
        response.del_cookie(COOKIE, path="/", samesite="Strict", secure=_over_tls(request))
        return response

    # -- helpers --
    def _may_read(self, request: web.Request, admin: AdminConfig) -> bool:
        tokens = _tokens(admin)
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and supplied.strip():
            return _matches_any(supplied.strip(), tokens)
        return self.sessions.valid(request.cookies.get(COOKIE), tokens, time.time())

    async def _report(self) -> dict[str, Any] | str:
        try:
            return await self.runtime.deprecation_report(None)
        except SwitchbackError as exc:  # the ledger cannot be read: say so on the page
            return str(exc)


def _tokens(admin: AdminConfig) -> list[str]:
    return [t for t in (admin.token, admin.read_token) if t is not None and is_set(t)]


def _matches_any(supplied: str, tokens: list[str]) -> bool:
    given = supplied.encode("utf-8", "surrogatepass")
    # Compare with every token, so that the time taken does not say which one was close.
    return sum(hmac.compare_digest(given, t.encode("utf-8", "surrogatepass")) for t in tokens) > 0


def _same_origin(request: web.Request) -> None:
    """Refuse a form posted from another site (login CSRF, forced logout)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser, or one that sends no Origin: SameSite=Strict still holds
    if origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower():
        raise AccessDenied(f"Origin {origin[:80]} is not this admin listener")


def _over_tls(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def _redirect(location: str) -> web.Response:
    # Returned, not raised: the middleware turns raised HTTP exceptions into JSON errors.
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",  # no-referrer would make forms send Origin: null
            "Cache-Control": "no-store",
        },
    )
