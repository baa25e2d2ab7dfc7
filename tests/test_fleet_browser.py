"""The dashboard on a hub, in Debian's Chromium, against the three-host fleet demo as a user runs
it (`unitgate demo --fleet`): hosts as groups equal to `instances`, a restart on web2 that changes
web2's card only, a SIGKILL that shows in the card's history, a failed host first, an agent's death
greying its host, the filters, and screenshots at 360 and 1440 px."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.helpers import CHROMIUM_ARGS, free_port
from unitgate.sandbox.host import process_tree

pytestmark = pytest.mark.timeout(240)
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
INSTANCES = ["web1", "web2", "web3"]


def ask(url: str, query: str) -> Any:
    body = httpx.post(url, json={"query": query}, timeout=30).json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture(scope="module")
def fleet_demo(own_systemd: None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "unitgate", "demo", "--fleet", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert demo.stdout is not None
    for line in demo.stdout:
        if "Dashboard:" in line:
            break
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # the hub is up once uvicorn is; the agents a moment later
            try:
                online = [
                    i["name"]
                    for i in ask(f"{base}/graphql", "{ instances { name online } }")["instances"]
                    if i["online"]
                ]
                if sorted(online) == INSTANCES:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the demo's hosts did not come online"
            time.sleep(0.1)
        yield base, demo
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(60)
        demo.stdout.close()


def agent_pid(demo: subprocess.Popen[str], instance: str) -> int:
    """The demo's agent for `instance`: a child of the demo process, by its config's name."""
    for pid in process_tree().get(demo.pid, []):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"agent" in command and any(part.endswith(f"{instance}.toml".encode()) for part in command):
            return pid
    raise AssertionError(f"no agent for {instance}")


def card(page: Page, instance: str, service: str) -> Any:
    return page.locator(f'[data-instance="{instance}"][data-service="{service}"]')


def field(page: Page, instance: str, service: str, name: str) -> str:
    return card(page, instance, service).locator(f'[data-field="{name}"]').get_attribute("data-value") or ""


def test_the_fleet_dashboard(fleet_demo: tuple[str, subprocess.Popen[str]], chromium: Path) -> None:
    base, demo = fleet_demo
    api = f"{base}/graphql"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{base}/")
            for instance in INSTANCES:
                card(page, instance, "nginx").wait_for(timeout=30_000)

            # The groups are the hub's instances, and the header counts the whole fleet.
            groups = page.locator("[data-host]").evaluate_all("hosts => hosts.map(h => h.dataset.host)")
            assert sorted(groups) == sorted(
                i["name"] for i in ask(api, "{ instances { name } }")["instances"]
            )
            total = ask(api, "{ services { ... on ServiceList { total } } }")["services"]["total"]
            assert page.locator('[data-count="total"]').inner_text() == str(total)
            assert page.locator('[data-count="hosts"]').inner_text() == "3"

            # A restart of web2's nginx through the page changes web2's card only.
            before = {instance: field(page, instance, "nginx", "mainPid") for instance in INSTANCES}
            target = card(page, "web2", "nginx")
            target.locator('[data-action="restart"]').click()
            target.locator("[data-confirm]").click()
            page.wait_for_function(
                """(before) => { const e = document.querySelector(
                     '[data-instance="web2"][data-service="nginx"] [data-field="mainPid"]');
                   return e && e.dataset.value && e.dataset.value !== before; }""",
                arg=before["web2"],
                timeout=30_000,
            )
            after = {instance: field(page, instance, "nginx", "mainPid") for instance in INSTANCES}
            assert after["web1"] == before["web1"]
            assert after["web3"] == before["web3"]
            assert after["web2"] != before["web2"]

            # A SIGKILL of web2's php8.2-fpm: the card says so, its history has it, web2 comes first.
            victim = int(field(page, "web2", "php8.2-fpm", "mainPid"))
            os.kill(victim, signal.SIGKILL)
            php = card(page, "web2", "php8.2-fpm")
            php.locator('[data-field="reason"]').get_by_text("killed by signal 9 (SIGKILL)").wait_for(
                timeout=15_000
            )
            php.locator("[data-history-panel] summary").click()
            php.locator('[data-history] [data-kind="PROCESS_EXITED"]').get_by_text("SIGKILL").wait_for(
                timeout=15_000
            )
            assert page.locator("[data-host]").first.get_attribute("data-host") == "web2"

            # Filters: one host; failed services only.
            page.select_option("[data-host-filter]", "web1")
            assert page.locator('[data-host="web2"]').is_hidden()
            assert page.locator('[data-host="web1"]').is_visible()
            page.select_option("[data-host-filter]", "")
            page.select_option("[data-state-filter]", "failed")
            assert php.is_visible()
            assert card(page, "web2", "nginx").is_hidden()
            assert page.locator('[data-host="web1"]').is_hidden()
            page.select_option("[data-state-filter]", "")

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "fleet-1440.png"), full_page=True)
            narrow = browser.new_page(viewport={"width": 360, "height": 800})
            narrow.goto(f"{base}/")
            card(narrow, "web3", "nginx").wait_for(timeout=30_000)
            narrow.screenshot(path=str(ARTIFACTS / "fleet-360.png"), full_page=True)
            width = narrow.evaluate("document.documentElement.scrollWidth")
            assert width <= 360  # nothing wider than the phone

            # The agent of web3 dies: its host greys, with when it was last seen.
            os.kill(agent_pid(demo, "web3"), signal.SIGKILL)
            page.wait_for_selector('[data-host="web3"].offline', timeout=10_000)
            assert "last seen" in page.locator('[data-host="web3"] [data-host-state]').inner_text()
            assert page.locator('[data-host="web1"].offline').count() == 0
        finally:
            browser.close()
