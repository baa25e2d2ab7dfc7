"""Hostile clients, with and without a token, against a running server: each attack bounded in
count and time, and what it costs the others measured (they still get answers)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.helpers import OPERATOR_TOKEN, VIEWER_TOKEN, RunningServer, bearer, post
from unitgate.schema.limits import LIMIT_CODE

pytestmark = pytest.mark.timeout(60)


def doubling_fragments(levels: int) -> str:
    """Each fragment spreads the next one twice: 2^levels fields once expanded."""
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"query Q {{ ...F0 }} {fragments} fragment F{levels} on Query {{ __typename }}"


async def test_doubling_fragments_are_refused_at_once_and_nobody_waits(server: RunningServer) -> None:
    bomb = doubling_fragments(185)  # about 2,000 tokens: the most the token limit lets through
    assert len(bomb) < 8000

    async def attack() -> Any:
        return await post(server.url, bomb, token=VIEWER_TOKEN)

    attacks = [asyncio.ensure_future(attack()) for _ in range(8)]
    # Another client, while eight of them are in flight: answered, not queued behind them.
    assert await post(server.url, "{ __typename }") == {"data": {"__typename": "Query"}}
    for body in await asyncio.gather(*attacks):
        assert body["data"] is None
        (error,) = body["errors"]
        assert error["extensions"]["code"] == LIMIT_CODE
        assert "about 10^55 fields" in error["message"]


@pytest.mark.parametrize("levels", [12, 20])
async def test_the_limit_counts_each_fragment_once_and_lets_real_documents_through(
    server: RunningServer, levels: int
) -> None:
    body = await post(server.url, doubling_fragments(levels))
    if 2**levels <= 5000:
        assert body == {"data": {"__typename": "Query"}}
    else:
        assert body["errors"][0]["extensions"]["code"] == LIMIT_CODE


async def test_a_megabyte_document_writes_one_log_line(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    document = "{ " + "__typename " * 90_000 + "nope }"  # 1 MiB, an error at its very end
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(headers=bearer()) as client:
            await client.post(server.url, json={"query": document, "variables": {"x": "y" * 10_000}})
    server_lines = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert len(server_lines) <= 1
    assert all(len(r.getMessage()) < 500 for r in server_lines)
    assert all("__typename __typename" not in r.getMessage() for r in server_lines)


async def test_a_token_in_a_websocket_url_is_never_logged(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "ugt_" + "s" * 43
    # The test server logs at WARNING; uvicorn says "WebSocket /graphql..." at INFO.
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        async with websockets.connect(
            f"{server.ws_url}?token={secret}&x=1", subprotocols=[Subprotocol("graphql-transport-ws")]
        ) as ws:
            await ws.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}}
                )
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
    # The test's own client logs its request line; what counts is the server's.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets"))
    assert "WebSocket /graphql" in logged  # the line is there...
    assert secret not in logged  # ...without its query string


MALFORMED_TRANSPORT = [
    "[]",
    '{"type": 5}',
    '{"type": "subscribe", "id": ["x"], "payload": {"query": "{ __typename }"}}',
    '{"type": "subscribe", "id": "1", "payload": [1]}',
    '{"type": "subscribe", "id": "1", "payload": {"query": 7}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }", "variables": [1]}}',
    '{"type": "complete", "id": {}}',
    '{"type": "ping", "payload": "x"}',
]
MALFORMED_LEGACY = [
    "{}",
    "[]",
    '{"type": "start", "id": 1, "payload": {"query": "{ __typename }"}}',
    '{"type": "start", "id": "1"}',
    '{"type": "stop"}',
]


async def assert_closed_4400(server: RunningServer, protocol: str, message: str) -> None:
    async with websockets.connect(server.ws_url, subprotocols=[Subprotocol(protocol)]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            await drain(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400


async def drain(ws: Any) -> None:
    async with asyncio.timeout(10):
        while True:
            await ws.recv()


@pytest.mark.parametrize("message", MALFORMED_TRANSPORT)
async def test_malformed_graphql_transport_ws_messages_close_with_4400(
    server: RunningServer, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await assert_closed_4400(server, "graphql-transport-ws", message)
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("message", MALFORMED_LEGACY)
async def test_malformed_graphql_ws_messages_close_with_4400(
    server: RunningServer, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await assert_closed_4400(server, "graphql-ws", message)
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_subscription_over_http_is_a_clean_client_error(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(headers=bearer()) as client:
            response = await client.post(
                server.url, json={"query": "subscription { serviceStatusChanged { __typename } }"}
            )
    assert 400 <= response.status_code < 500, response.text
    assert "Traceback" not in response.text
    assert not [r for r in caplog.records if r.exc_info]


def raw_request(port: int, head: bytes, timeout: float = 5) -> bytes:
    """Send a request's head (and no body), then read what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        return sock.recv(65536)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        # The GraphiQL page needs no token: served without waiting for the announced body.
        (b"GET /graphql HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nContent-Length: 1000000\r\n\r\n", b"200"),
        # Without a token, refused before its body.
        (
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n",
            b"401",
        ),
    ],
)
async def test_nothing_is_read_from_an_unauthenticated_request_beyond_its_headers(
    server: RunningServer, head: bytes, status: bytes
) -> None:
    port = int(server.url.split(":")[2].split("/")[0])
    answer = await asyncio.to_thread(raw_request, port, head)
    assert answer.split(b" ")[1] == status, answer[:200]
