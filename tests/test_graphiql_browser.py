"""GraphiQL in a real browser that can reach nothing but unitgate: it loads, runs a query on a
click, and shows the answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, sync_playwright

from tests.helpers import CHROMIUM_ARGS, RunningServer

ARTIFACTS = Path(__file__).parents[1] / "artifacts"


@pytest.mark.timeout(120)
def test_graphiql_runs_a_query_offline(make_server: Callable[..., RunningServer], chromium: Path) -> None:
    server = make_server(insecure_no_auth=True)  # loopback only, as the demo runs
    requested: list[str] = []
    blocked: list[str] = []

    def only_local(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if urlsplit(url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_local)
            page.goto(server.url)
            editor = page.locator(".graphiql-query-editor .CodeMirror").first
            editor.wait_for(timeout=30_000)
            editor.click()
            page.keyboard.press("Control+A")
            page.keyboard.press("Delete")
            page.keyboard.type("{ services { __typename ... on ServiceList { total } } }")
            page.locator(".graphiql-execute-button").click()
            response = page.locator(".graphiql-response")
            response.get_by_text("ServiceList").wait_for(timeout=30_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "graphiql.png"), full_page=True)
            assert '"total"' in response.inner_text()
        finally:
            browser.close()
    assert blocked == []  # every script and style came from unitgate itself
    assert any("/graphiql-assets/graphiql@" in url for url in requested)
