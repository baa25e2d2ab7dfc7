"""unitgate on the network, served as its own process: the Host check in every mode, the real
client address behind a trusted proxy (and only then), strict headers on every page, websocket
admission under a flood of silent sockets, and TLS without a proxy."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from tests.helpers import (
    OPERATOR_TOKEN,
    PROTOCOL_WORDS,
    Served,
    bearer,
    first_result,
    make_certificates,
    raw_request,
    stderr_lines,
)
from tests.units import HEALTHY
from unitgate.view.ws_admission import EVICTED_REASON

RELOAD = f'mutation {{ reloadService(name: "{HEALTHY}") {{ __typename }} }}'
INIT = json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}})
TRANSPORT = [Subprotocol("graphql-transport-ws")]


def audited_clients(served: Served) -> list[str]:
    return [json.loads(line)["client"] for line in stderr_lines(served) if line.startswith('{"time"')]


@pytest.mark.parametrize("open_mode", [True, False], ids=["insecure-no-auth", "token"])
async def test_another_host_name_is_refused(serve_process: Callable[..., Served], open_mode: bool) -> None:
    """A page on rebind.evil.example, whose DNS points at 127.0.0.1, reaches the port but not the
    API: not its queries, its actions, its websockets or its pages."""
    served = serve_process(insecure_no_auth=open_mode)
    evil = {"Host": f"rebind.evil.example:{served.port}"}
    async with httpx.AsyncClient(headers=bearer(), timeout=30) as client:
        for method, path, body in (
            ("POST", "/graphql", {"query": RELOAD}),
            ("GET", "/graphql", None),
            ("GET", "/", None),
            ("GET", "/healthz", None),
            ("GET", "/metrics", None),
        ):
            url = served.url.replace("/graphql", path)
            answer = await client.request(method, url, json=body, headers=evil)
            assert answer.status_code == 421, (path, answer.text)
            assert "allowed_hosts" in answer.text
        # Its own names are answered.
        for host in ("localhost", f"127.0.0.1:{served.port}", f"localhost:{served.port}"):
            answer = await client.post(served.url, json={"query": "{ __typename }"}, headers={"Host": host})
            assert answer.json() == {"data": {"__typename": "Query"}}
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            served.url.replace("http", "ws"), subprotocols=TRANSPORT, additional_headers=evil
        )
    assert refused.value.response.status_code == 421
    # No Host at all (HTTP/1.0), or two of them, is no name of its own either.
    assert raw_request(served.port, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 421")
    two = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n"
    assert raw_request(served.port, two).startswith(b"HTTP/1.1 421")
    assert audited_clients(served) == []  # the reload never ran


async def test_a_trusted_proxy_names_the_client_and_no_one_else_does(
    serve_process: Callable[..., Served],
) -> None:
    served = serve_process(trusted_proxies=["127.0.0.1"])
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    async with httpx.AsyncClient(headers={**bearer(), **forwarded}, timeout=30) as proxy:
        assert (await proxy.post(served.url, json={"query": RELOAD})).status_code == 200
    # Another local process, on another loopback address, is no proxy: its header names no one.
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(transport=other, headers={**bearer(), **forwarded}, timeout=30) as impostor:
        assert (await impostor.post(served.url, json={"query": RELOAD})).status_code == 200
    assert audited_clients(served) == ["203.0.113.7", "127.0.0.2"]


async def test_every_page_carries_strict_headers(serve_process: Callable[..., Served]) -> None:
    served = serve_process()
    base = served.url.removesuffix("/graphql")
    async with httpx.AsyncClient(timeout=30) as client:
        ide = await client.get(served.url, headers={"Accept": "text/html"})
        dashboard = await client.get(f"{base}/")
        by_file_name = await client.get(f"{base}/dashboard/index.html")
        health = await client.get(f"{base}/healthz")
        script = await client.get(f"{base}/dashboard/app.js")
    for page in (ide, dashboard, by_file_name):
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "default-src 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
    assert by_file_name.text == dashboard.text
    assert by_file_name.headers["content-security-policy"] == dashboard.headers["content-security-policy"]
    # GraphiQL's own inline script runs by its hash, and nothing else inline does.
    assert "script-src 'self' 'sha256-" in ide.headers["content-security-policy"]
    # Its headers (a token) are kept in no storage; its tabs live as long as the browser tab.
    assert "shouldPersistHeaders: false" in ide.text
    assert "shouldPersistHeaders: true" not in ide.text
    assert "storage: headerlessStorage" in ide.text
    assert "localStorage.removeItem(k)" in ide.text
    for answer in (health, script):
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert answer.headers["x-content-type-options"] == "nosniff"


async def test_silent_websockets_make_room_for_dashboards(serve_process: Callable[..., Served]) -> None:
    """200 silent sockets held, and more opened all the while, from the dashboards' own address:
    50 dashboards connecting at once all get connection_ack, each past the oldest silent one."""
    served = serve_process()
    ws_url = served.url.replace("http", "ws")
    silent: list[Any] = []
    evicted = 0

    async def hold_one() -> None:
        nonlocal evicted
        try:
            silent.append(await websockets.connect(ws_url, subprotocols=TRANSPORT, open_timeout=30))
        except InvalidStatus:  # evicted during its handshake: it counts as an eviction too
            evicted += 1

    for _ in range(200):
        await hold_one()
    stop = asyncio.Event()

    async def keep_flooding() -> None:
        while not stop.is_set():
            await hold_one()

    async def dashboard() -> float:
        started = time.monotonic()
        async with websockets.connect(ws_url, subprotocols=TRANSPORT, open_timeout=30) as ws:
            await ws.send(INIT)
            assert json.loads(await ws.recv())["type"] == "connection_ack"
        return time.monotonic() - started

    flood = asyncio.create_task(keep_flooding())
    try:
        # The bound: every dashboard is in within 2 s.
        waits = await asyncio.wait_for(asyncio.gather(*(dashboard() for _ in range(50))), timeout=2.0)
    finally:
        stop.set()
        await flood
    assert len(waits) == 50

    # The oldest silent ones were closed to make room, and said why.
    async def reason(ws: Any) -> str | None:
        try:
            await asyncio.wait_for(ws.wait_closed(), timeout=1.0)
        except TimeoutError:
            return None  # still waiting for its init: at most the pending caps of them
        return str(ws.close_reason)

    reasons = await asyncio.gather(*(reason(ws) for ws in silent))
    assert reasons.count(None) <= 256
    assert reasons.count(EVICTED_REASON) + evicted >= 50, Counter(reasons)
    for ws in silent:
        await ws.close()
    print(f"dashboards in after {max(waits) * 1000:.0f} ms at most, {len(silent)} silent sockets opened")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_certificates(tmp_path_factory.mktemp("tls"), ["localhost"], ["127.0.0.1"])


async def test_direct_tls_serves_https_and_wss(
    serve_process: Callable[..., Served], certificates: Any
) -> None:
    served = serve_process(tls_certfile=str(certificates.cert), tls_keyfile=str(certificates.key))
    https = served.url.replace("http://", "https://")
    trusting = ssl.create_default_context(cafile=str(certificates.ca))
    async with httpx.AsyncClient(verify=trusting, headers=bearer(), timeout=30) as client:
        answer = await client.post(https, json={"query": "{ __typename }"})
    assert answer.json() == {"data": {"__typename": "Query"}}
    subscription = (
        f'subscription {{ serviceStatusChanged(names: ["{HEALTHY}"]) {{ ... on ServiceStatus {{ name }} }} }}'
    )
    for protocol in PROTOCOL_WORDS:
        wss = https.replace("https://", "wss://")
        async with websockets.connect(wss, ssl=trusting, subprotocols=[Subprotocol(protocol)]) as ws:
            data = await first_result(ws, protocol, OPERATOR_TOKEN, subscription)
        assert data["serviceStatusChanged"]["name"] == HEALTHY
    # A client that does not trust the certificate is refused by its own TLS stack, at once.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        async with httpx.AsyncClient(timeout=30) as stranger:
            await stranger.get(https.replace("/graphql", "/healthz"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await websockets.connect(https.replace("https://", "wss://"), ssl=ssl.create_default_context())


def test_serve_refuses_a_certificate_it_cannot_use(tmp_config: Callable[[str], Path], tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "cert.pem").write_text("not a certificate\n")
    config = tmp_config(
        f'insecure_no_auth = true\ntls_certfile = "{tmp_path / "cert.pem"}"\n'
        f'tls_keyfile = "{tmp_path / "missing.key"}"\n'
    )
    serve = subprocess.run(
        [sys.executable, "-m", "unitgate", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode == 2, serve.stderr
    assert "cannot use tls_certfile" in serve.stderr or "does not exist" in serve.stderr
    assert "Traceback" not in serve.stderr
