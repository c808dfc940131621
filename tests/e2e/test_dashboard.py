"""The dashboard in a real browser: Playwright driving Debian's chromium (apt), against
the daemon as a subprocess. Log in, see a change arrive live, switch the relay, open a
trace, retry a dead letter; a read-only token switches nothing; a hostile sensor value
shows as text; a session's change without its CSRF header is refused.

Screenshots of the main views go to ``docs/`` when ``DASHBOARD_SCREENSHOTS=1``."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import Daemon, Receiver, free_port, write_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OPS, VIEWER = "ops-token-0123456789abcdef", "viewer-token-0123456789abc"
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
SHOTS = Path(__file__).parents[2] / "docs"


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


def config(tmp_path: Path, port: int, hub: int) -> Path:
    return write_config(
        tmp_path,
        f"""
        gateway: {{name: shed-pi, state_dir: {tmp_path / "state"}, simulate: true}}
        sensors:
          hallway_motion: {{gpio: 17, kind: motion}}
          freezer_temp: {{kind: virtual}}
          note: {{kind: virtual, type: text}}
        actuators:
          hallway_light: {{gpio: 27}}
        webhooks:
          hub: {{url: "http://127.0.0.1:{hub}/hook", retry: [100ms], max_age: 300ms}}
        server:
          listen: 127.0.0.1:{port}
          tokens:
            ops: {{token: {OPS}}}
            viewer: {{token: {VIEWER}, read_only: true}}
        rules:
          - id: motion_light
            description: motion turns the light on
            when: {{sensor: hallway_motion, to: on}}
            then:
              - actuate: hallway_light
                state: on
              - webhook: hub
                event: motion.detected
        """,
    )


async def log_in(page: Page, base: str, token: str) -> None:
    await page.goto(base + "/")
    await page.fill("#token", token)
    await page.click("#login-form button")
    await expect(page.locator("#live")).to_have_text("live", timeout=10_000)


async def post(base: str, path: str, body: object, token: str = OPS) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as s, s.post(base + path, json=body, headers=headers) as r:
        return r.status


async def shot(page: Page, name: str) -> None:
    if os.environ.get("DASHBOARD_SCREENSHOTS"):
        SHOTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(SHOTS / name), full_page=True)


async def test_the_dashboard_in_a_browser(
    tmp_path: Path,
    browser: Browser,
    daemon_factory: Callable[[Path, int], Daemon],
) -> None:
    hub = Receiver(free_port())
    hub.responses = [(500, {})] * 100  # the first webhook dies: a dead letter to retry
    await hub.start()
    port = free_port()
    daemon = daemon_factory(config(tmp_path, port, hub.port), port)
    daemon.start("--simulate")
    await daemon.wait_ready()
    base = daemon.base
    errors: list[str] = []
    dialogs: list[str] = []
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        await log_in(page, base, OPS)
        await expect(page.locator("#who")).to_have_text("ops")
        cookies = await page.context.cookies()
        (session,) = [c for c in cookies if c["name"] == "gateway_session"]
        assert session["httpOnly"] is True
        assert session["sameSite"] == "Strict"

        # a change arrives live: injected through the API, no reload
        freezer = page.locator('tr[data-sensor="freezer_temp"] td:nth-child(2)')
        await expect(freezer).to_have_text("-")
        assert await post(base, "/api/v1/sensors/freezer_temp", {"value": -18.5}) == 200
        await expect(freezer).to_have_text("-18.5")

        # a hostile value is text, and nothing runs
        assert await post(base, "/api/v1/sensors/note", {"value": XSS}) == 200
        note = page.locator('tr[data-sensor="note"] td:nth-child(2)')
        await expect(note).to_have_text(XSS)
        assert await page.locator("img[src=x]").count() == 0

        # switch the relay from the page: the gateway's state changes
        light = page.locator('tr[data-actuator="hallway_light"]')
        await light.get_by_role("button", name="On", exact=True).click()
        await expect(light.locator("td:nth-child(2)")).to_contain_text("on")
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                base + "/api/v1/actuators/hallway_light",
                headers={"Authorization": f"Bearer {OPS}"},
            ) as r,
        ):
            assert (await r.json())["on"] is True
        await light.get_by_role("button", name="Off", exact=True).click()
        await expect(light.locator("td:nth-child(2)")).to_contain_text("off")

        # motion fires the rule: its trace opens in the viewer; its webhook dies
        assert await post(base, "/api/v1/sensors/hallway_motion", {"value": "on"}) == 200
        rule = page.locator('tr[data-rule="motion_light"]')
        await expect(rule.locator("td:nth-child(2)")).to_contain_text("finished")
        await rule.get_by_role("button", name="Traces").click()
        first = page.locator("#traces li.trace").first
        await expect(first).to_contain_text("finished")
        await expect(first).to_contain_text("actuate hallway_light on: switched on")
        await expect(first).to_contain_text("hallway_motion=on (gpio)")

        dead = page.locator("#dead tr[data-message]")
        await expect(dead).to_have_count(1, timeout=15_000)
        await shot(page, "dashboard.png")
        hub.responses = []  # the hub is back: the retry is delivered
        await dead.get_by_role("button", name="Retry").click()
        await expect(dead).to_have_count(0, timeout=15_000)
        assert hub.received[-1].status == 200

        # the chart of a sensor's history
        await page.locator('tr[data-sensor="freezer_temp"] button').click()
        await expect(page.locator("#chart svg polyline")).to_have_count(1)

        # a session's change without the CSRF header is refused (as another site's would be)
        status = await page.evaluate(
            """async () => (await fetch('/api/v1/actuators/hallway_light', {
                method: 'POST', headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({state: 'on'})})).status"""
        )
        assert status == 403
        assert errors == []
        assert dialogs == []

        # on a phone
        phone = await browser.new_page(viewport={"width": 390, "height": 844})
        await log_in(phone, base, OPS)
        await shot(phone, "dashboard-phone.png")
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1  # nothing wider than the screen
        await phone.close()
    finally:
        await hub.stop()


async def test_a_read_only_token_sees_everything_and_switches_nothing(
    tmp_path: Path, browser: Browser, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    hub = Receiver(free_port())
    await hub.start()
    port = free_port()
    daemon = daemon_factory(config(tmp_path, port, hub.port), port)
    daemon.start("--simulate")
    await daemon.wait_ready()
    try:
        page = await browser.new_page()
        await page.goto(daemon.base + "/")
        await page.fill("#token", "not-a-token-0123456789")
        await page.click("#login-form button")
        await expect(page.locator("#login-error")).to_contain_text("not one of server.tokens")

        await log_in(page, daemon.base, VIEWER)
        await expect(page.locator("#who")).to_have_text("viewer (read-only)")
        light = page.locator('tr[data-actuator="hallway_light"]')
        await expect(light.get_by_role("button", name="On", exact=True)).to_be_disabled()
        rule = page.locator('tr[data-rule="motion_light"]')
        await expect(rule.get_by_role("button", name="Run now")).to_be_disabled()
        # and forcing the request anyway, with the session's CSRF token, is refused
        status = await page.evaluate(
            """async () => {
                const s = await (await fetch('/api/v1/session')).json();
                return (await fetch('/api/v1/actuators/hallway_light', {
                    method: 'POST',
                    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf},
                    body: JSON.stringify({state: 'on'})})).status;
            }"""
        )
        assert status == 403
        assert await post(daemon.base, "/api/v1/sensors/freezer_temp", {"value": 3}) == 200
        await expect(page.locator('tr[data-sensor="freezer_temp"] td:nth-child(2)')).to_have_text(
            "3"
        )
        await page.click("#logout")
        await expect(page.locator("#login")).to_be_visible()
        await page.reload()
        await expect(page.locator("#login")).to_be_visible()  # the cookie is gone
    finally:
        await hub.stop()


async def test_every_page_answer_carries_a_strict_content_security_policy(
    tmp_path: Path, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    port = free_port()
    daemon = daemon_factory(config(tmp_path, port, free_port()), port)
    daemon.start("--simulate")
    await daemon.wait_ready()
    async with aiohttp.ClientSession() as s:
        for path in ("/", "/static/app.js", "/static/app.css"):
            async with s.get(daemon.base + path) as r:
                assert r.status == 200
                policy = r.headers["Content-Security-Policy"]
                assert "script-src 'self'" in policy
                assert "unsafe-inline" not in policy
                assert r.headers["X-Content-Type-Options"] == "nosniff"
        for path in ("/static/../gateway.yaml", "/static/nothing.js", "/static/%2e%2e%2fx.js"):
            async with s.get(daemon.base + path) as r:
                assert r.status == 404, path
        html = (Path(__file__).parents[2] / "gateway/api/dashboard/static/index.html").read_text()
        assert "<script>" not in html  # no inline script: the policy would block it anyway
        assert " on" + "click=" not in html
