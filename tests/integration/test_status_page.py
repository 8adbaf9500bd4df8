"""The status page over real sockets: what it shows against ``/status``, escaping of what
clients send, its headers, the login form and what its cookie does not allow, and the
history and events behind it. (The browser drives it in ``test_status_page_browser.py``.)"""

from __future__ import annotations

import asyncio
import re
import socket
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import TOKEN, Proxy, StartProxy, raw_exchange

XSS = "<script>alert(1)</script>"
READ_TOKEN = "page-read-token"
DEPRECATIONS: list[dict[str, Any]] = [
    {"id": "user-role", "field": "user.role", "on": "GET /users/{id}", "deprecated": "2026-06-01"},
    {"id": "users-v0", "endpoint": "GET /v0/users/{id}", "deprecated": "2026-03-01"},
]
PAGE_CONFIG: dict[str, Any] = {
    "traffic": {
        "weights": {"blue": 80, "green": 20},
        "pins": {"green": [XSS, "mobile-app"]},
    },
    "deprecations": DEPRECATIONS,
}


async def get(
    url: str, headers: dict[str, str] | None = None
) -> tuple[int, aiohttp.typedefs.LooseHeaders, str]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url, headers=headers or {}, allow_redirects=False) as r,
    ):
        return r.status, r.headers, await r.text()


async def post_form(
    url: str, data: dict[str, str], headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, data=data, headers=headers or {}, allow_redirects=False) as r,
    ):
        await r.read()
        return r


async def send_as(proxy: Proxy, client: str, path: str, n: int = 1) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            async with s.get(proxy.url + path, headers={"X-Client-Id": client}) as r:
                await r.read()


async def wait_for(check: Any, timeout: float = 10.0) -> Any:
    """Poll the coroutine function ``check`` until it returns something true; return it."""
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    return found


def cells(html: str, row_attr: str, value: str) -> list[str]:
    """The text of each cell of the table row whose ``row_attr`` attribute is ``value``."""
    row = re.search(rf'<tr {row_attr}="{re.escape(value)}">(.*?)</tr>', html, re.S)
    assert row is not None, f"no row {row_attr}={value}"
    return re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)


async def test_the_page_shows_what_status_says_with_client_ids_escaped(
    switchback: StartProxy,
) -> None:
    proxy = await switchback(PAGE_CONFIG)
    await send_as(proxy, XSS, "/users/1", 3)
    await send_as(proxy, "web", "/v0/users/2")

    async def report_has_both() -> bool:
        _, body = await proxy.admin_call("GET", "/deprecations")
        return all(e["clients"] for e in body["elements"])

    await wait_for(report_has_both)
    status, headers, html = await get(proxy.admin + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "<script" not in html  # neither ours nor a client's
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    _, st = await proxy.admin_call("GET", "/status")
    for name, rel in st["releases"].items():
        assert cells(html, "data-release", name)[3] == f"{rel['weight']:g}%"
    assert set(st["pins"]) == {XSS, "mobile-app"}
    for client, release in st["pins"].items():
        assert cells(html, "data-client", client.replace("<", "&lt;").replace(">", "&gt;")) == [
            client.replace("<", "&lt;").replace(">", "&gt;"),
            release,
        ]
    assert f'data-state="{st["rollout"]["state"]}"' in html
    _, report = await proxy.admin_call("GET", "/deprecations")
    for element in report["elements"]:
        row = cells(html, "data-id", element["id"])
        assert row[-1] == element["verdict"]
        assert row[4].startswith(f"{len(element['clients'])}: ")


async def test_sorting_the_deprecation_table_on_the_server(switchback: StartProxy) -> None:
    proxy = await switchback(PAGE_CONFIG)
    order = re.compile(r'<tr data-id="([^"]+)">')
    _, _, by_id = await get(proxy.admin + "/?sort=id&order=asc")
    _, _, by_id_desc = await get(proxy.admin + "/?sort=id&order=desc")
    assert order.findall(by_id) == ["user-role", "users-v0"]
    assert order.findall(by_id_desc) == ["users-v0", "user-role"]
    _, _, by_sunset = await get(proxy.admin + "/?sort=nonsense&order=sideways")
    assert order.findall(by_sunset) == ["user-role", "users-v0"]  # ignored: the default


def session_cookie(response: aiohttp.ClientResponse) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for value in response.headers.getall("Set-Cookie", []):
        jar.load(value)
    return jar


async def test_beyond_loopback_the_page_needs_a_login_and_the_cookie_allows_only_the_page(
    switchback: StartProxy,
) -> None:
    proxy = await switchback({"admin": {"read_token": READ_TOKEN}})
    status, headers, _ = await get(proxy.admin + "/")
    assert (status, headers["Location"]) == (303, "/login")
    wrong = await post_form(proxy.admin + "/login", {"token": "guess"})
    assert wrong.status == 401 and "switchback_session" not in session_cookie(wrong)

    ok = await post_form(proxy.admin + "/login", {"token": READ_TOKEN})
    assert (ok.status, ok.headers["Location"]) == (303, "/")
    morsel = session_cookie(ok)["switchback_session"]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and not morsel["secure"]
    assert READ_TOKEN not in morsel.value and len(morsel.value) >= 40
    cookie = {"Cookie": f"switchback_session={morsel.value}"}
    status, _, html = await get(proxy.admin + "/", cookie)
    assert status == 200 and 'action="/logout"' in html

    # The cookie is no credential for the API: neither its reads nor its writes.
    for method, path in (("GET", "/status"), ("PUT", "/traffic"), ("POST", "/rollback")):
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, proxy.admin + path, headers=cookie, json={}) as r,
        ):
            assert r.status == 401, (method, path)
    _, st = await proxy.admin_call("GET", "/status")
    assert st["rollout"]["state"] != "rolled_back"

    out = await post_form(proxy.admin + "/logout", {}, cookie)
    assert (out.status, out.headers["Location"]) == (303, "/login")
    status, _, _ = await get(proxy.admin + "/", cookie)
    assert status == 303  # the session ended on the server, whatever the browser keeps


async def test_the_cookie_is_secure_behind_tls_and_other_sites_cannot_post_the_form(
    switchback: StartProxy,
) -> None:
    proxy = await switchback({"admin": {"read_token": READ_TOKEN}})
    tls = await post_form(proxy.admin + "/login", {"token": TOKEN}, {"X-Forwarded-Proto": "https"})
    assert tls.status == 303 and session_cookie(tls)["switchback_session"]["secure"]
    forged = await post_form(
        proxy.admin + "/login", {"token": READ_TOKEN}, {"Origin": "https://evil.example"}
    )
    assert forged.status == 403 and "switchback_session" not in session_cookie(forged)
    same = await post_form(proxy.admin + "/login", {"token": READ_TOKEN}, {"Origin": proxy.admin})
    assert same.status == 303


async def test_a_bearer_token_opens_the_page_and_a_reload_that_changes_it_ends_sessions(
    switchback: StartProxy,
) -> None:
    proxy = await switchback({"admin": {"read_token": READ_TOKEN}})
    status, _, _ = await get(proxy.admin + "/", {"Authorization": f"Bearer {READ_TOKEN}"})
    assert status == 200
    ok = await post_form(proxy.admin + "/login", {"token": READ_TOKEN})
    cookie = {"Cookie": f"switchback_session={session_cookie(ok)['switchback_session'].value}"}
    text = proxy.config_path.read_text().replace(READ_TOKEN, "a-new-read-token")
    proxy.config_path.write_text(text)
    code, answer = await proxy.admin_call("POST", "/reload")
    assert code == 200, answer
    status, _, _ = await get(proxy.admin + "/", cookie)
    assert status == 303


async def test_history_and_events_record_rollbacks_refused_reloads_and_refusals(
    switchback: StartProxy,
) -> None:
    proxy = await switchback({"limits": {"max_target_bytes": 64}})
    await send_as(proxy, "web", "/users/1", 5)

    async def two_samples() -> Any:
        _, body = await proxy.admin_call("GET", "/status/history")
        return body if len(body["samples"]) >= 2 else None

    history = await wait_for(two_samples)
    assert history["samples"][-1]["releases"]["blue"]["requests"] >= 5
    assert history["samples"][-1]["stable"] == "blue"

    code, _ = await proxy.admin_call("POST", "/rollback", {"reason": "bad <b>deploy</b>"})
    assert code == 200
    proxy.config_path.write_text(proxy.config_path.read_text() + "\nlisten: [\n")
    code, _ = await proxy.admin_call("POST", "/reload")
    assert code == 400
    for _ in range(3):
        status, _, _ = await raw_exchange(
            proxy.port, b"GET /" + b"x" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        assert status == 414
    _, body = await proxy.admin_call("GET", "/events")
    kinds = {e["kind"]: e for e in body["events"]}
    assert set(kinds) == {"rollback", "reload_failed", "refused"}
    assert "bad <b>deploy</b>" in kinds["rollback"]["detail"]
    assert str(proxy.config_path) in kinds["reload_failed"]["detail"]
    assert kinds["refused"]["count"] == 3  # one burst, one entry
    _, _, html = await get(proxy.admin + "/")
    assert "bad &lt;b&gt;deploy&lt;/b&gt;" in html and "<b>deploy" not in html
    assert html.count('<tr data-kind="') == 3


@pytest.mark.parametrize("path", ["/openapi.json", "/healthz"])
async def test_the_api_document_is_open_like_the_probes(switchback: StartProxy, path: str) -> None:
    proxy = await switchback({"admin": {"read_token": READ_TOKEN}})
    status, _, _ = await get(proxy.admin + path)
    assert status == 200


def non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.123", 9))  # TEST-NET-1: only picks the outgoing interface
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


async def test_on_a_listener_beyond_loopback_the_page_needs_the_login(
    switchback: StartProxy,
) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("no network interface beyond loopback to bind the admin listener to")
    proxy = await switchback({"admin": {"listen": f"{address}:0"}})  # admin.token is set
    admin = f"http://{address}:{proxy.runtime.admin_port}"
    status, headers, _ = await get(admin + "/")
    assert (status, headers["Location"]) == (303, "/login")
    ok = await post_form(admin + "/login", {"token": TOKEN})
    assert ok.status == 303
    cookie = {"Cookie": f"switchback_session={session_cookie(ok)['switchback_session'].value}"}
    status, _, html = await get(admin + "/", cookie)
    assert status == 200 and 'data-release="blue"' in html
