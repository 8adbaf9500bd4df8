"""The status page in headless Chromium (the system's ``/usr/bin/chromium``, driven by
playwright): log in with the read token, check what the page shows against ``/status`` and
``/deprecations``, sort the table, log out; a screenshot goes to ``tests/artifacts/``
(and to ``docs/status-page.png`` with ``SWITCHBACK_SCREENSHOT_DOCS=1``).

Skipped when Chromium is missing, unless ``SWITCHBACK_REQUIRE_BROWSER=1`` (as ``.ci/run``
sets it), which makes a missing browser a failure."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.integration.conftest import REPO, Proxy, StartProxy, merge, raw_exchange
from tests.integration.test_status_page import PAGE_CONFIG, READ_TOKEN, XSS, send_as, wait_for

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("SWITCHBACK_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing and SWITCHBACK_REQUIRE_BROWSER=1")
        pytest.skip(f"{CHROMIUM} is missing (Debian packages chromium, chromium-driver)")
    # Chromium refuses to run as root inside its sandbox (CI containers run as root).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        await launched.close()


async def traffic_and_history(proxy: Proxy) -> None:
    """Requests from a few clients (one pinned to the candidate), and enough history samples
    for the chart to draw lines."""
    code, answer = await proxy.admin_call(
        "POST", "/rollout", {"steps": [20, 50, 100], "step_seconds": 300}
    )
    assert code == 200, answer
    await send_as(proxy, XSS, "/users/1", 5)
    await send_as(proxy, "web", "/v0/users/2", 3)
    for i in range(20):
        await send_as(proxy, f"app-{i}", f"/users/{i}")
    status, _, _ = await raw_exchange(proxy.port, b"GET /" + b"x" * 100 + b" HTTP/1.1\r\n\r\n")
    assert status == 414  # a refusal, for the events table

    async def samples_with_both() -> bool:
        _, history = await proxy.admin_call("GET", "/status/history")
        with_both = [
            s for s in history["samples"] if all(rel["requests"] for rel in s["releases"].values())
        ]
        return len(with_both) >= 2

    await wait_for(samples_with_both, timeout=20)


async def cell_texts(page: Page, selector: str) -> list[str]:
    return [text.strip() for text in await page.locator(selector).all_inner_texts()]


async def test_the_status_page_in_a_browser(browser: Browser, switchback: StartProxy) -> None:
    extra = {"admin": {"read_token": READ_TOKEN}, "limits": {"max_target_bytes": 64}}
    proxy = await switchback(merge(PAGE_CONFIG, extra))
    await traffic_and_history(proxy)
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    refused: list[str] = []  # the console's CSP reports: our own CSS must pass the policy
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)

    await page.goto(proxy.admin + "/")
    await expect(page).to_have_url(proxy.admin + "/login")
    await page.fill("input[name=token]", "not-the-token")
    await page.click("button")
    await expect(page.locator("#login-error")).to_be_visible()
    await page.fill("input[name=token]", READ_TOKEN)
    await page.click("button")
    await expect(page.locator("#releases")).to_be_visible()
    assert page.url == proxy.admin + "/"
    (cookie,) = await context.cookies()
    assert cookie["name"] == "switchback_session" and cookie["value"] != READ_TOKEN
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # The browser's cookie (sent by the context's request API) changes nothing and reads no JSON.
    for method, path in (("POST", "/rollback"), ("PUT", "/traffic"), ("GET", "/status")):
        answer = await context.request.fetch(proxy.admin + path, method=method, data="{}")
        assert answer.status == 401, (method, path)
    page_itself = await context.request.get(proxy.admin + "/", max_redirects=0)
    assert page_itself.status == 200  # the same requests do carry the cookie

    _, status = await proxy.admin_call("GET", "/status")
    for name, rel in status["releases"].items():
        row = await cell_texts(page, f'#releases tr[data-release="{name}"] td')
        assert row[3] == f"{rel['weight']:g}%"
    assert await cell_texts(page, "#pins tbody td:first-child") == sorted(status["pins"])
    assert XSS in await cell_texts(page, "#pins tbody td:first-child")  # shown as text
    assert not dialogs  # and never run
    rollout = page.locator("#rollout")
    assert await rollout.get_attribute("data-state") == status["rollout"]["state"] == "ramping"
    assert await page.locator("#rollout-progress").get_attribute("value") == "1"
    for role in ("candidate", "stable"):
        assert await page.locator(f"svg polyline.series-{role}").count() == 2  # 5xx and p99

    _, report = await proxy.admin_call("GET", "/deprecations")
    expected = {e["id"]: e["verdict"] for e in report["elements"]}
    ids = await cell_texts(page, "#deprecations tbody td:first-child")
    verdicts = await cell_texts(page, "#deprecations tbody td:last-child")
    assert dict(zip(ids, verdicts, strict=True)) == expected
    assert ids == sorted(expected)

    await page.click("#deprecations th >> text=ID")  # sorted by id already: now descending
    await expect(page).to_have_url(proxy.admin + "/?sort=id&order=desc#deprecations")
    assert await cell_texts(page, "#deprecations tbody td:first-child") == sorted(
        expected, reverse=True
    )
    await page.click("#deprecations th >> text=Clients")
    await expect(page).to_have_url(proxy.admin + "/?sort=clients&order=asc#deprecations")
    counts = [len(e["clients"]) for e in report["elements"]]
    shown = await cell_texts(page, "#deprecations tbody td:nth-child(5)")
    assert [int(text.split(":")[0]) for text in shown] == sorted(counts)
    await page.goto(proxy.admin + "/")
    assert not refused, refused
    _, events = await proxy.admin_call("GET", "/events")
    kinds = await cell_texts(page, "#events tbody td:nth-child(2)")
    assert kinds == [e["kind"] for e in events["events"]] == ["refused"]

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    if os.environ.get("SWITCHBACK_SCREENSHOT_DOCS") == "1":
        await page.screenshot(path=str(REPO / "docs" / "status-page.png"), full_page=True)

    await page.click("text=Log out")
    await expect(page).to_have_url(proxy.admin + "/login")
    await page.goto(proxy.admin + "/")
    await expect(page).to_have_url(proxy.admin + "/login")  # the session is over on the server too
    await context.close()
