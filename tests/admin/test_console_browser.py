"""The console in a real browser (headless Chromium driven by Playwright): sign in,
create a key, copy it, call the gateway with it, find the call in the request log and
the overview chart, revoke the key, see the next call refused. A screenshot of each page
is saved under tests/admin/screenshots/ (ignored by git), with the first load's weight
and time in first-load.json there."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.admin.console_gateway import ADMIN_KEY, MODEL, generate, start
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).parent / "screenshots"

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed")


@pytest.fixture(scope="module")
def gw(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("console-browser"), fake_google)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


MEASURE = """(mark) => {
        const n = performance.getEntriesByType('navigation')[0];
        const r = performance.getEntriesByType('resource');
        return {load_ms: n.loadEventEnd - n.startTime, dom_ms: n.domContentLoadedEventEnd - n.startTime,
                transferred: n.transferSize + r.reduce((s, e) => s + e.transferSize, 0),
                decoded: n.decodedBodySize + r.reduce((s, e) => s + e.decodedBodySize, 0),
                files: r.length + 1,
                ready_ms: performance.getEntriesByName(mark)[0].startTime};
    }"""


def measure(page: Any, mark: str) -> dict[str, Any]:
    """What one cold load of the console brought over the wire, and how long it took until
    the console marked ``mark`` (its page drawn, API answers and charts included)."""
    deadline = time.monotonic() + 30
    while not page.evaluate("(m) => performance.getEntriesByName(m).length > 0", mark):
        assert time.monotonic() < deadline, f"the console never marked {mark}"
        time.sleep(0.02)
    return dict(page.evaluate(MEASURE, mark))


def test_the_operator_journey(gw: GatewayProcess, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gw.base_url)
    page = context.new_page()
    page.on("dialog", lambda d: d.accept())

    page.goto(gw.base_url + "/admin/")
    figures = {"sign_in_page": measure(page, "ready:sign-in")}
    shot(page, "1-sign-in")

    page.fill("#signin-key", "not-the-admin-key")
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#signin-error:has-text('not valid')")
    page.fill("#signin-key", ADMIN_KEY)
    page.click("#signin button[type=submit]")
    page.wait_for_selector("[data-page=overview] h1")
    shot(page, "2-overview-empty")
    # Signed in, cold cache: the overview with its modules and its five API calls.
    cold = browser.new_context(storage_state=context.storage_state())
    cold_page = cold.new_page()
    cold_page.goto(gw.base_url + "/admin/")
    figures["overview_signed_in"] = measure(cold_page, "ready:overview")
    cold.close()
    SHOTS.mkdir(exist_ok=True)
    (SHOTS / "first-load.json").write_text(json.dumps(figures, indent=2))
    print("console first load:", figures)
    for load in figures.values():
        assert load["decoded"] < 200 * 1024, figures  # page weight (times are reported, not asserted)

    page.click("nav a[data-page=keys]")
    page.wait_for_selector("#create-key")
    page.fill("#create-key input[name=name]", "browser-key")
    page.fill("#create-key input[name=budget_usd]", "5")
    page.click("#create-key button[type=submit]")
    page.wait_for_selector("#key-dialog #new-key")
    shown = page.inner_text("#new-key")
    shot(page, "3-key-created")
    page.click("#copy-key")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown and copied.startswith("gg-")
    page.click("#close-key")
    page.wait_for_selector("#new-key", state="detached")  # shown once: gone from the page
    page.wait_for_selector("[data-key=browser-key]")
    shot(page, "4-keys")

    answer = generate(gw, copied, text="hello from the browser test")
    assert answer.status_code == 200, answer.text

    page.click("nav a[data-page=log]")
    page.wait_for_selector("#log-rows table")
    row = page.locator("#log-rows tbody tr", has_text="browser-key").first
    assert MODEL in row.inner_text()
    shot(page, "5-request-log")
    row.click()
    page.wait_for_selector("#log-detail")
    detail = page.inner_text("#log-detail")
    assert "browser-key" in detail and "generateContent" in detail
    shot(page, "6-request-detail")

    page.click("nav a[data-page=overview]")
    page.wait_for_selector("#by-hour svg")
    assert page.inner_text("#total-requests") == "1"
    hour_bars = page.locator("#by-hour figure").first.locator("rect.bar")
    values = [float(hour_bars.nth(i).get_attribute("data-value")) for i in range(hour_bars.count())]
    assert values[-1] == 1 and sum(values) == 1  # this hour's bar holds the call
    shot(page, "7-overview")

    page.click("nav a[data-page=channels]")
    page.wait_for_selector(f"[data-channel='google/{MODEL}']")
    shot(page, "8-channels")
    page.click("nav a[data-page=usage]")
    page.wait_for_selector("#usage-csv")
    assert "format=csv" in page.get_attribute("#usage-csv", "href")
    shot(page, "9-usage")

    page.click("nav a[data-page=keys]")
    page.click("[data-key=browser-key] button.danger")  # Revoke (the confirm is accepted)
    page.wait_for_selector("[data-key=browser-key] >> xpath=../.. >> text=revoked")
    shot(page, "10-key-revoked")
    refused = generate(gw, copied)
    assert refused.status_code == 403 and refused.json()["error"]["details"][0]["reason"] == "API_KEY_REVOKED"

    # The admin key is nowhere the page can reach: not in it, its storage, its URL, or a
    # cookie a script can read.
    assert ADMIN_KEY not in page.content() and ADMIN_KEY not in page.url
    storage = page.evaluate("() => [document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage)]")
    assert storage == ["", "{}", "{}"]
    context.close()
