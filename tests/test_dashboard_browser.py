"""The dashboard in a real browser (Debian's Chromium) that can reach nothing but unitgate: the
cards match `services`, actions work through their confirmations, live events move the cards,
roles and bad tokens are handled, and screenshots at 360 and 1440 px are kept."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.helpers import CHROMIUM_ARGS, OPERATOR_TOKEN, VIEWER_TOKEN, RunningServer, wait_until
from tests.units import CRASHY, FAILING, HEALTHY
from unitgate.sandbox.manager import UserManagerSandbox

pytestmark = pytest.mark.timeout(120)
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
FIELDS = ("activeState", "subState", "mainPid", "restartCount")


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """A page on the dashboard, with every request to another host aborted and remembered."""
    contexts = []
    blocked: list[str] = []

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    def open_(server: RunningServer, width: int = 1440) -> Page:
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.route("**/*", only_local)
        page.goto(server.url.removesuffix("graphql"))
        return page

    yield open_
    for context in contexts:
        context.close()
    assert blocked == []  # nothing from a CDN or anywhere else


def api(server: RunningServer, query: str) -> Any:
    response = httpx.post(
        server.url, json={"query": query}, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    )
    return response.json()["data"]


def card_values(page: Page, name: str) -> dict[str, str]:
    card = page.locator(f'[data-service="{name}"]')
    return {
        field: card.locator(f'[data-field="{field}"]').get_attribute("data-value") or "" for field in FIELDS
    }


def wait_for_value(page: Page, name: str, field: str, predicate: str, timeout: float = 10_000) -> None:
    page.wait_for_function(
        f"""() => {{ const e = document.querySelector('[data-service="{name}"] [data-field="{field}"]');
                     const v = e && e.dataset.value; return Boolean(v) && ({predicate}); }}""",
        timeout=timeout,
    )


def test_the_cards_are_the_services_with_their_values(
    make_server: Callable[..., RunningServer], open_page: Callable[..., Page]
) -> None:
    server = make_server(insecure_no_auth=True)
    page = open_page(server)
    services = api(
        server,
        "{ services { ... on ServiceList { total active failed services { name activeState subState mainPid restartCount } } } }",
    )["services"]
    page.locator("[data-service]").nth(services["total"] - 1).wait_for()
    shown = sorted(page.locator("[data-service]").evaluate_all("cards => cards.map(c => c.dataset.service)"))
    assert shown == sorted(s["name"] for s in services["services"])
    for service in services["services"]:
        want = {f: "" if service[f] is None else str(service[f]) for f in FIELDS}
        assert card_values(page, service["name"]) == want
    assert page.locator('[data-count="total"]').inner_text() == str(services["total"])
    assert page.locator('[data-count="failed"]').inner_text() == str(services["failed"])
    response = httpx.get(server.url.removesuffix("graphql"))
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert f"ws://{urlsplit(server.url).netloc}" in policy


def test_restart_through_the_page_changes_the_main_pid(
    make_server: Callable[..., RunningServer], open_page: Callable[..., Page]
) -> None:
    page = open_page(make_server(insecure_no_auth=True))
    card = page.locator(f'[data-service="{HEALTHY}"]')
    card.wait_for()
    before = card_values(page, HEALTHY)["mainPid"]
    confirm = card.locator("[data-confirm]")
    assert not confirm.is_visible()  # nothing runs on one click
    card.locator('[data-action="restart"]').click()
    assert confirm.is_visible()
    confirm.click()
    wait_for_value(page, HEALTHY, "mainPid", f"v !== '{before}'")
    assert card.locator("[data-outcome]").get_attribute("data-outcome-type") == "RestartSucceeded"


def test_a_killed_main_process_shows_within_two_seconds(
    make_server: Callable[..., RunningServer], open_page: Callable[..., Page], sandbox: UserManagerSandbox
) -> None:
    server = make_server(insecure_no_auth=True)
    page = open_page(server)
    page.locator(f'[data-service="{CRASHY}"]').wait_for()
    # The page's subscription is in, and the watcher hears systemd's signals.
    wait_until(lambda: server.control.watcher.watchers == 1 and str(server.control.watcher.mode) == "events")
    before = sandbox.show(f"{CRASHY}.service", "MainPID")["MainPID"]
    os.kill(int(before), signal.SIGKILL)
    wait_for_value(page, CRASHY, "mainPid", f"v !== '{before}'", timeout=2000)


def test_a_failed_restart_shows_why(
    make_server: Callable[..., RunningServer], open_page: Callable[..., Page]
) -> None:
    page = open_page(make_server(insecure_no_auth=True))
    card = page.locator(f'[data-service="{FAILING}"]')
    card.locator('[data-action="restart"]').click()
    card.locator("[data-confirm]").click()
    outcome = card.locator('[data-outcome][data-outcome-type="RestartFailed"]')
    outcome.wait_for()
    assert "config test failed" in outcome.inner_text()  # the unit's own log line


def sign_in(page: Page, token: str) -> None:
    page.locator("[data-signin]").wait_for()
    page.fill("#token", token)
    page.click("[data-signin] button")


def test_a_viewer_sees_no_buttons_and_a_bad_token_is_told(
    make_server: Callable[..., RunningServer], open_page: Callable[..., Page]
) -> None:
    server = make_server()
    viewer = open_page(server)
    sign_in(viewer, VIEWER_TOKEN)
    viewer.locator(f'[data-service="{HEALTHY}"]').wait_for()
    assert viewer.locator("[data-action]").count() == 0
    assert viewer.evaluate("() => location.href").endswith("/")  # the token is in no URL
    assert viewer.evaluate("() => sessionStorage.getItem('unitgate-token')") == VIEWER_TOKEN
    bad = open_page(server)
    sign_in(bad, "ugt_not-a-token")
    error = bad.locator("[data-signin-error]")
    error.wait_for()
    assert "not accepted" in error.inner_text()
    assert bad.locator("[data-service]").count() == 0
    operator = open_page(server)
    sign_in(operator, OPERATOR_TOKEN)
    operator.locator(f'[data-service="{HEALTHY}"] [data-action="restart"]').wait_for()


@pytest.mark.parametrize("width", [360, 1440])
def test_screenshots(
    make_server: Callable[..., RunningServer], open_page: Callable[..., Page], width: int
) -> None:
    page = open_page(make_server(insecure_no_auth=True), width=width)
    page.locator(f'[data-service="{HEALTHY}"]').wait_for()
    # Usable on a phone: nothing wider than the screen.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}.png"), full_page=True)
    assert page.locator("[data-confirm]").first.is_hidden()


def test_logs_panel_and_follow(
    make_server: Callable[..., RunningServer], open_page: Callable[..., Page]
) -> None:
    from tests.units import LOGGY

    server = make_server(insecure_no_auth=True)
    page = open_page(server)
    card = page.locator(f'[data-service="{LOGGY}"]')
    card.locator("[data-logs-panel] summary").click()
    logs = card.locator("[data-logs]")
    page.wait_for_function(
        f"() => document.querySelector('[data-service=\"{LOGGY}\"] [data-logs]').textContent.includes('started')"
    )
    before = logs.inner_text().count("started")
    card.locator("[data-follow]").check()
    # journalctl -f starts from the newest line there is: restart once it runs.
    wait_until(lambda: server.control.followers.running == 1)
    api(server, f'mutation {{ restartService(name: "{LOGGY}") {{ __typename }} }}')
    page.wait_for_function(
        f"() => document.querySelector('[data-service=\"{LOGGY}\"] [data-logs]').textContent.split('started').length - 1 > {before}"
    )
