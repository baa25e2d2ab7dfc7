"""HTTP at the edge, before anything reaches the app: how much of a request's head is read, for
how long, and how many connections are held at all; and the uvicorn options that go with it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from unitgate.ws_protocol import LeanWebSocketProtocol

ACCEPT_BACKLOG = 128
_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_head_bytes: int = 32 * 1024  # request line and headers
    max_headers: int = 100
    head_timeout: float = 10.0  # for the whole head, from connection (or the last response)
    max_connections: int = 4096  # open at once, websockets included; then 503 at once


class _HeadRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def guarded_protocol(limits: EdgeLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the limits above (httptools itself has none: a 50 MiB
    header was held whole, and half-sent requests held their sockets until the client left)."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_bytes = 0
            self._headers_seen = 0
            self._in_head = True
            self._message_done = False
            self._head_timer: asyncio.TimerHandle | None = None
            if len(self.connections) > limits.max_connections:
                # Before descriptors run out: the cap answers, and the socket is given back.
                self._refuse(503, "too many connections")
                return
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            self._unset_keepalive_if_required()
            if self._in_head:
                self._head_bytes += len(data)
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserCallbackError as error:
                refused = error.__context__
                if isinstance(refused, _HeadRefused):
                    self._refuse(refused.status, str(refused))
                else:
                    self._refuse(400, "invalid HTTP request")
                return
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError:
                self._refuse(400, "invalid HTTP request")
                return
            if self._in_head and self._head_bytes > limits.max_head_bytes:
                self._refuse(431, f"the request head is larger than {limits.max_head_bytes} bytes")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._headers_seen = 0
            self._message_done = False

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._message_done = True
            if self.cycle is not None and self.cycle.response_complete:
                self._next_head()

        def on_header(self, name: bytes, value: bytes) -> None:
            self._headers_seen += 1
            if self._headers_seen > limits.max_headers:
                raise _HeadRefused(431, f"more than {limits.max_headers} header fields")
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            self._disarm_head_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._message_done:
                self._next_head()

        def _next_head(self) -> None:
            """The request is in whole and answered: the next one's head has a time of its own.
            (Not before: the bytes of a body still arriving are no head.)"""
            if not self.transport.is_closing():
                self._in_head = True
                self._head_bytes = 0
                self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            self._disarm_head_timer()
            self._head_timer = self.loop.call_later(limits.head_timeout, self._head_timed_out)

        def _disarm_head_timer(self) -> None:
            if getattr(self, "_head_timer", None) is not None:
                assert self._head_timer is not None
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self._refuse(408, f"the request head did not arrive within {limits.head_timeout:g} s")

        def _refuse(self, status: int, message: str) -> None:
            """An HTTP answer and a closed socket; no log line (a flood would be a flood of them)."""
            body = message.encode("ascii", "replace")
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            if not self.transport.is_closing():
                self.transport.write(head.encode("ascii") + body)
                self.transport.close()
            self._in_head = False
            self._disarm_head_timer()

    return GuardedHttpToolsProtocol


def uvicorn_options(limits: EdgeLimits | None = None) -> dict[str, Any]:
    """How unitgate runs under uvicorn, for `serve`, `demo`, the tests and the benchmark alike."""
    return {
        "http": guarded_protocol(limits or EdgeLimits()),
        # asyncio accepts up to this many connections per wake-up, before any refused one is
        # closed: with the connection cap, the most descriptors a flood can hold for a moment.
        "backlog": ACCEPT_BACKLOG,
        "ws": LeanWebSocketProtocol,
        # Measured by bench/: compression contexts cost ~35 KiB per websocket for messages of a
        # few hundred bytes, and uvloop spawns systemctl slower than asyncio's own loop.
        "ws_per_message_deflate": False,
        "loop": "asyncio",
        # GraphQL messages are small; a bigger frame is refused before it is buffered.
        "ws_max_size": 1 << 20,
        # No access log: a client that puts its token in a URL would see it written there.
        "access_log": False,
    }
