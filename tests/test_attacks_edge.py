"""Attacks without a token on unitgate as a process of its own, each measured: pipelined requests
nobody reads, bodies and trailers on routes that take none, repeated legacy connection_inits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.helpers import VIEWER_TOKEN, Served, answer_time, bearer, stderr_lines

pytestmark = pytest.mark.timeout(90)

NOPE = b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n"


def pipeline_without_reading(port: int, count: int) -> str:
    """`count` pipelined requests on one socket that never reads an answer: how it ended."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # answers back up at once
        try:
            sock.sendall(NOPE * count)
        except TimeoutError:
            return "stalled"  # the server stopped reading: the rest waits in the kernel
        except (ConnectionResetError, BrokenPipeError):
            return "dropped"
        return "sent"  # all of it fit in the kernel's buffers before the server dropped it


async def test_pipelined_requests_nobody_reads_cost_nothing(serve_process: Callable[..., Served]) -> None:
    served = serve_process()
    await answer_time(served.url)
    before = served.rss_kib()
    # 3.5 MB and 7 MB of requests (RSS once grew by 240 MB and 0.9 GB, and kept it).
    ends = await asyncio.gather(
        asyncio.to_thread(pipeline_without_reading, served.port, 100_000),
        *(asyncio.to_thread(pipeline_without_reading, served.port, 200_000) for _ in range(3)),
    )
    assert set(ends) <= {"sent", "stalled", "dropped"}, ends
    await answer_time(served.url)
    assert served.rss_kib() - before < 20_000, served.rss_kib() - before


def test_a_client_that_pipelines_a_few_and_reads_gets_every_answer(
    serve_process: Callable[..., Served],
) -> None:
    served = serve_process()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" * 8)
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 8:
            chunk = sock.recv(65536)
            assert chunk, answers
            answers += chunk


def drip(port: int, head: bytes) -> bytes:
    """A head announcing a body, then one chunk, then nothing: what the server says, if anything."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"\r\n1\r\nx\r\n")
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):  # until the server closes: a hang fails (timeout)
                answer += chunk
        return answer


@pytest.mark.parametrize(
    "target",
    [
        b"POST /healthz",
        b"GET /healthz",
        b"GET /metrics",
        b"GET /",
        b"GET /dashboard/dashboard.js",
        b"GET /graphql",
        b"PUT /graphql",
        b"DELETE /nope",
    ],
)
async def test_a_body_where_none_is_taken_is_refused_before_it_is_read(
    serve_process: Callable[..., Served], target: bytes
) -> None:
    served = serve_process(max_connections=40)
    head = target + b" HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
    # More drips than the connection cap: each is answered and closed at once, none is held.
    answers = await asyncio.gather(*(asyncio.to_thread(drip, served.port, head) for _ in range(60)))
    statuses = Counter(answer.split(b" ")[1] if answer else b"none" for answer in answers)
    assert set(statuses) <= {b"413", b"503"}, statuses
    assert statuses[b"413"] >= 40
    async with httpx.AsyncClient(headers=bearer(VIEWER_TOKEN), timeout=30) as client:
        me = await client.post(served.url, json={"query": "{ me { role } }"})
    assert me.json() == {"data": {"me": {"role": "viewer"}}}


def send_trailer(port: int, head: bytes, megabytes: int) -> bytes:
    """A chunked body of one byte, then a trailer field of up to `megabytes` MiB."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n0\r\nX-Junk: ")
        chunk = b"j" * 65536
        with contextlib.suppress(OSError):
            for _ in range(megabytes * 16):
                sock.sendall(chunk)
        try:
            return sock.recv(4096)
        except ConnectionResetError:
            return b"reset"


async def test_a_huge_trailer_is_refused_after_its_first_megabyte(
    serve_process: Callable[..., Served],
) -> None:
    served = serve_process()
    await answer_time(served.url)
    before = served.rss_kib()
    heads = [
        b"POST /healthz HTTP/1.1\r\nHost: localhost\r\n",
        # The one route that takes a body, with a token: the trailer counts against its limit.
        b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        + b"Authorization: Bearer "
        + VIEWER_TOKEN.encode()
        + b"\r\n",
    ]
    answers = await asyncio.gather(*(asyncio.to_thread(send_trailer, served.port, h, 64) for h in heads))
    assert all(answer.startswith(b"HTTP/1.1 413") or answer == b"reset" for answer in answers), answers
    assert answers[1].startswith(b"HTTP/1.1 413"), answers[1]
    await answer_time(served.url)
    # 128 MiB once cost 190 MB and 28 s of CPU; refused past a megabyte, next to nothing.
    assert served.rss_kib() - before < 20_000


async def test_the_body_time_limit_holds_on_every_route(serve_process: Callable[..., Served]) -> None:
    served = serve_process(body_read_timeout=1.0)
    # With a token the GraphQL route reads the body, and gives up on it after body_read_timeout.
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + VIEWER_TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n"
    )
    answer = await asyncio.to_thread(drip, served.port, head)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]


async def legacy_inits(url: str, count: int) -> int | None:
    """One graphql-ws socket sending `count` connection_inits: the code it was closed with."""
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-ws")]) as ws:
        init = json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {VIEWER_TOKEN}"}})
        with contextlib.suppress(ConnectionClosed):
            for _ in range(count):
                await ws.send(init)
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        return ws.close_code


async def test_a_repeated_legacy_connection_init_closes_with_4429(
    serve_process: Callable[..., Served],
) -> None:
    served = serve_process()
    ws_url = served.url.replace("http", "ws")
    # Four sockets of 5,000 inits each (50,000 once took the server to 100 % CPU for 90 s).
    codes = await asyncio.gather(*(legacy_inits(ws_url, 5_000) for _ in range(4)))
    assert codes == [4429] * 4
    async with httpx.AsyncClient(headers=bearer(VIEWER_TOKEN), timeout=30) as client:
        me = await client.post(served.url, json={"query": "{ me { role } }"})
    assert me.json() == {"data": {"me": {"role": "viewer"}}}
    lines = stderr_lines(served)
    assert not [line for line in lines if "Task exception was never retrieved" in line]
    assert len(lines) < 40, lines[-20:]
