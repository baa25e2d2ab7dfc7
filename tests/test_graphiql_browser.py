"""GraphiQL in a real browser that can reach nothing but unitgate: it loads, runs a query on a
click, and shows the answer."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
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


@pytest.mark.timeout(120)
def test_graphiql_keeps_its_token_for_the_tab_only(
    make_server: Callable[..., RunningServer], chromium: Path
) -> None:
    """A token in the headers editor is sent, and kept in no storage at all (a shared browser
    must not keep it); what older pages stored is removed; and the strict policy refuses nothing
    the page itself needs."""
    server = make_server()
    refused: list[str] = []
    sent: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on(
                "console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None
            )
            page.on(
                "request",
                lambda r: sent.append(r.headers.get("authorization", "")) if r.method == "POST" else None,
            )
            page.goto(server.url.replace("/graphql", "/healthz"))
            page.evaluate(
                'localStorage.setItem("graphiql:headers", "{\\"Authorization\\": \\"Bearer old\\"}")'
            )
            page.evaluate(
                'sessionStorage.setItem("graphiql:headers", "{\\"Authorization\\": \\"Bearer older\\"}")'
            )
            # An earlier page's history, with a run's headers in it (GraphiQL 3.8 keeps them).
            page.evaluate(
                'sessionStorage.setItem("graphiql:queries", JSON.stringify({queries: [{query: "{a}",'
                ' headers: "{\\"Authorization\\": \\"Bearer oldest\\"}"}]}))'
            )
            # The headers editor filled as a shared link would (GraphiQL's ?headers=).
            page.goto(server.url + '?headers={"Authorization":"Bearer typed-token"}&q={__typename}')
            page.locator(".graphiql-query-editor .CodeMirror").first.wait_for(timeout=30_000)
            page.locator(".graphiql-execute-button").click()
            page.locator(".graphiql-response").get_by_text("message").first.wait_for(timeout=30_000)
            local = page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
            session = page.evaluate("JSON.stringify(Object.assign({}, sessionStorage))")
        finally:
            browser.close()
    assert "Bearer typed-token" in sent  # the editor's header went with the request
    assert "typed-token" not in session
    assert "typed-token" not in local
    assert "Bearer old" not in local
    assert "Bearer older" not in session
    assert "Bearer oldest" not in session
    assert (
        "{__typename}" in json.loads(session)["graphiql:queries"]
    )  # its history stays for the tab, headerless
    assert refused == []


@contextlib.contextmanager
def page_server(html: str) -> Iterator[str]:
    """Another local origin serving one page, as a page on another port of the host would."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(html.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(120)
def test_no_other_page_may_frame_unitgate(make_server: Callable[..., RunningServer], chromium: Path) -> None:
    """A page on another origin frames GraphiQL with a stopService document ready to run, and the
    dashboard: the browser renders nothing of either (frame-ancestors 'none')."""
    server = make_server(insecure_no_auth=True)  # the worst case: no token stands in the way
    base = server.url.removesuffix("/graphql")
    targets = [
        f"{server.url}?q=mutation%20%7B%20stopService(name%3A%20%22nginx%22)%20%7B%20__typename%20%7D%20%7D",
        f"{base}/",
        f"{base}/dashboard/index.html",
    ]
    answered: list[int] = []
    # A frame from a third origin with no policy, which the browser does show: the refusals
    # below are the policy's, not the browser's local-network checks.
    with page_server("<p>harmless</p>") as control:
        frames = "".join(f'<iframe src="{url}"></iframe>' for url in [*targets, control])
        with page_server(frames) as evil, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page()
                page.on("response", lambda r: answered.append(r.status) if r.url.startswith(base) else None)
                page.goto(evil)
                page.wait_for_load_state("load")
                rendered = [frame.url for frame in page.frames if frame != page.main_frame]
            finally:
                browser.close()
    # unitgate answered each; the browser showed its error document instead of any of them.
    assert answered == [200] * len(targets)
    assert rendered == ["chrome-error://chromewebdata/"] * len(targets) + [control]
