"""The dashboard on a large fleet, in Debian's Chromium: every host's cards built (the worst case,
beyond what the page builds by itself), then the time from a status event's arrival on the
page's websocket to its card showing the change, at the next frame."""

from __future__ import annotations

import random
import threading
from typing import Any

from playwright.sync_api import sync_playwright
from tests.helpers import CHROMIUM_ARGS

# Before any script of the page's: stamp each websocket message that names a service's id.
STAMP = r"""
window.__stamps = {};
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      const now = performance.now();
      const found = /"id":"([^"/]+\/[^"]+)"/.exec(event.data);
      if (found) window.__stamps[found[1]] = now;
    });
  }
};
"""
ARM = """([host, service]) => new Promise((resolve) => {
  const id = `${host}/${service}`;
  delete window.__stamps[id];
  const card = `[data-instance="${host}"][data-service="${service}"]`;
  const field = document.querySelector(`${card} [data-field="mainPid"]`);
  const before = field.dataset.value;
  const observer = new MutationObserver(() => {
    if (field.dataset.value === before) return;
    observer.disconnect();
    requestAnimationFrame(() => resolve(performance.now() - window.__stamps[id]));
  });
  observer.observe(field, { attributes: true, childList: true, subtree: true, characterData: true });
})"""


def card_latencies(
    base: str, token: str, hosts: list[str], send_change: Any, samples: int
) -> tuple[int, list[float]]:
    """How many cards the page held, and each sample's milliseconds from event to card."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.add_init_script(STAMP)
            page.goto(f"{base}/")
            page.locator("[data-signin]").wait_for()
            page.fill("#token", token)
            page.click("[data-signin] button")
            # (No wait_for_function: it evaluates strings, which the page's CSP forbids.)
            page.locator("[data-host]").nth(len(hosts) - 1).wait_for(state="attached", timeout=120_000)
            page.evaluate(
                "() => document.querySelectorAll('.host.closed [data-host-toggle]').forEach(b => b.click())"
            )
            page.locator("[data-service]").nth(len(hosts) * 14 - 1).wait_for(
                state="attached", timeout=120_000
            )
            cards = int(page.evaluate("() => document.querySelectorAll('[data-service]').length"))
            latencies = []
            for host in random.sample(hosts, min(samples, len(hosts))):
                # The change goes out a moment after the page starts watching for it.
                change = threading.Timer(0.05, send_change, args=(host, "php8.2-fpm"))
                change.start()
                latencies.append(float(page.evaluate(ARM, [host, "php8.2-fpm"])))
                change.join()
            return cards, latencies
        finally:
            browser.close()
