"""unitgate behind Debian's nginx on PID 1, set up by `unitgate setup --nginx` as the README says:
the dashboard over https in Chromium, both websocket protocols over wss, the client's real
address in the audit whatever it claims, and dashboards let in while silent sockets are held."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from playwright.sync_api import sync_playwright
from tests.helpers import (
    CHROMIUM_ARGS,
    PROTOCOL_WORDS,
    Certificates,
    first_result,
    free_port,
    make_certificates,
)
from websockets.typing import Subprotocol

from e2e.conftest import Deployment

pytestmark = pytest.mark.timeout(300)

NAME = "unitgate.test"
CERTS = "/root/unitgate-tls"  # the admin's own certificate, inside the container
RESTART = """mutation($name: String!) { restartService(name: $name) { __typename } }"""


@dataclass
class Proxied:
    deployment: Deployment
    port: int  # nginx's https port
    certificates: Certificates
    setup_output: str  # of the first run, which made a self-signed certificate

    @property
    def trusting(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificates.ca))

    def post(self, query: str, variables: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        """Through nginx, as a browser on NAME would ask (127.0.0.1 is where NAME resolves)."""
        with httpx.Client(verify=self.trusting, timeout=60) as client:
            response = client.post(
                f"https://127.0.0.1:{self.port}/graphql",
                json={"query": query, "variables": variables},
                headers={
                    "Host": f"{NAME}:{self.port}",
                    "Authorization": f"Bearer {self.deployment.token}",
                    **(headers or {}),
                },
                extensions={"sni_hostname": NAME},
            )
        assert response.status_code == 200, response.text
        return response.json()

    def wss(self, protocol: str) -> Any:
        return websockets.connect(
            f"wss://{NAME}:{self.port}/graphql",
            host="127.0.0.1",
            port=self.port,
            ssl=self.trusting,
            subprotocols=[Subprotocol(protocol)],
            open_timeout=30,
        )

    def last_audit(self) -> dict[str, Any]:
        lines = self.deployment.sh("cat /var/log/unitgate/audit.log").stdout.splitlines()
        return dict(json.loads(lines[-1]))


@pytest.fixture(scope="module")
def proxied(deployed: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Proxied:
    port = free_port()
    ports = f"--https-port {port} --http-port 0"  # off 443 and 80: the host's network is shared
    # First as the README types it, with no certificate: a self-signed one is made.
    first = deployed.sh(f"unitgate setup --nginx --server-name {NAME} {ports}")
    # Then with the admin's own, made here by a CA of the test's.
    certificates = make_certificates(tmp_path_factory.mktemp("tls"), [NAME])
    deployed.sh(f"mkdir -p {CERTS} && chmod 700 {CERTS}")
    for source, name in ((certificates.cert, "server.pem"), (certificates.key, "server.key")):
        deployed.container.run("sh", "-c", f"cat > {CERTS}/{name}", input=source.read_text())
    deployed.sh(
        f"unitgate setup --nginx --server-name {NAME} --certificate {CERTS}/server.pem "
        f"--key {CERTS}/server.key {ports}"
    )
    deployed.wait_healthy()
    return Proxied(deployed, port, certificates, first.stdout)


def test_setup_nginx_made_a_certificate_a_socket_for_nginx_alone_and_the_site(proxied: Proxied) -> None:
    deployment = proxied.deployment
    assert "self-signed certificate" in proxied.setup_output
    assert "nginx -t: the configuration is fine" in proxied.setup_output
    assert f"open https://{NAME}:{proxied.port}/" in proxied.setup_output
    assert (
        deployment.sh(f"openssl x509 -noout -subject -in /etc/unitgate/tls/{NAME}.pem")
        .stdout.strip()
        .endswith(NAME)
    )
    socket = deployment.sh("stat -c '%U:%G %a' /run/unitgate/http.sock").stdout.strip()
    assert socket == "root:www-data 660"
    config = deployment.sh("cat /etc/unitgate/unitgate.toml").stdout
    assert 'trusted_proxies = ["unix"]' in config
    assert f'"{NAME}"' in config.split("allowed_hosts = ", 1)[1].splitlines()[0]
    # A local user who is neither root nor nginx cannot reach the socket, so cannot pose as nginx.
    connect = (
        "setpriv --reuid=nobody --regid=nogroup --clear-groups /opt/unitgate/bin/python -c "
        "\"import socket; socket.socket(socket.AF_UNIX).connect('/run/unitgate/http.sock')\""
    )
    refused = deployment.sh(connect, check=False)
    assert refused.returncode != 0
    assert "PermissionError" in refused.stderr
    # Run again, nothing changes.
    again = deployment.sh(
        f"unitgate setup --nginx --server-name {NAME} --certificate {CERTS}/server.pem --key {CERTS}/server.key "
        f"--https-port {proxied.port} --http-port 0"
    )
    assert "\nwould " not in again.stdout
    assert not [line for line in again.stdout.splitlines() if line.startswith(("write ", "link "))]


def test_the_audit_names_the_address_nginx_saw_whatever_the_client_claims(proxied: Proxied) -> None:
    deployment = proxied.deployment
    forged = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"}
    body = proxied.post(RESTART, {"name": "redis-server"}, forged)
    assert body == {"data": {"restartService": {"__typename": "RestartSucceeded"}}}
    assert proxied.last_audit()["client"] == "127.0.0.1"
    # Straight to unitgate's port, past nginx: no proxy at all, the header names no one.
    direct = httpx.post(
        deployment.url,
        json={"query": RESTART, "variables": {"name": "redis-server"}},
        headers={"Authorization": f"Bearer {deployment.token}", **forged},
        timeout=60,
    )
    assert direct.json()["data"]["restartService"]["__typename"] == "RestartSucceeded"
    assert proxied.last_audit()["client"] == "127.0.0.1"
    # A host name that is not unitgate's, through nginx: refused by unitgate.
    with httpx.Client(verify=proxied.trusting, timeout=30) as client:
        refused = client.get(
            f"https://127.0.0.1:{proxied.port}/healthz",
            headers={"Host": "rebind.evil.example"},
            extensions={"sni_hostname": NAME},
        )
    assert refused.status_code == 421


async def test_both_websocket_protocols_subscribe_over_wss_through_nginx(proxied: Proxied) -> None:
    token = proxied.deployment.token
    subscription = 'subscription { serviceStatusChanged(names: ["nginx"]) { ... on ServiceStatus { name activeState } } }'
    for protocol in PROTOCOL_WORDS:
        async with proxied.wss(protocol) as ws:
            data = await first_result(ws, protocol, token, subscription)
        assert data["serviceStatusChanged"] == {"name": "nginx", "activeState": "active"}


async def test_silent_sockets_through_nginx_never_keep_dashboards_out(proxied: Proxied) -> None:
    """200 silent websockets held through nginx, then 50 dashboards at the same moment through the
    same nginx: every one gets connection_ack within 2 s."""
    token = proxied.deployment.token
    silent = [await proxied.wss("graphql-transport-ws") for _ in range(200)]

    async def dashboard() -> float:
        started = time.monotonic()
        async with proxied.wss("graphql-transport-ws") as ws:
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
        return time.monotonic() - started

    try:
        waits = await asyncio.wait_for(asyncio.gather(*(dashboard() for _ in range(50))), timeout=2.0)
        assert len(waits) == 50
        print(
            f"50 dashboards through nginx, 200 silent sockets held: in after {max(waits) * 1000:.0f} ms at most"
        )
    finally:
        for ws in silent:
            await ws.close()


def test_the_dashboard_over_https_restarts_a_service(proxied: Proxied) -> None:
    deployment = proxied.deployment
    before = deployment.main_pid("redis-server.service")
    artifacts = Path(__file__).parents[1] / "artifacts"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {NAME} 127.0.0.1, MAP * ~NOTFOUND"],
        )
        try:
            # The test's own CA is not in Chromium's store; the Python clients above verify it.
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.goto(f"https://{NAME}:{proxied.port}/")
            page.locator("[data-signin]").wait_for()
            page.fill("#token", deployment.token)
            page.click("[data-signin] button")
            card = page.locator('[data-service="redis-server"]')
            card.wait_for(timeout=30_000)
            card.locator('[data-action="restart"]').click()
            card.locator("[data-confirm]").click()
            # The new PID arrives over the page's wss subscription, through nginx.
            page.wait_for_function(
                """(before) => { const e = document.querySelector(
                       '[data-service="redis-server"] [data-field="mainPid"]');
                     return e && e.dataset.value && e.dataset.value !== String(before); }""",
                arg=before,
                timeout=30_000,
            )
            assert card.locator("[data-outcome]").get_attribute("data-outcome-type") == "RestartSucceeded"
            artifacts.mkdir(exist_ok=True)
            page.screenshot(path=str(artifacts / "dashboard-https-nginx.png"))
            shown = card.locator('[data-field="mainPid"]').get_attribute("data-value")
        finally:
            browser.close()
    after = deployment.main_pid("redis-server.service")
    assert after != before
    assert shown == str(after)
    assert proxied.last_audit()["client"] == "127.0.0.1"
