"""HTTP at the edge, before anything reaches the app: how much of a request is read and for how
long (its head, and its body and trailers on every route), how many requests one connection may
queue, reading paused for a client that does not read, and how many connections are held at all;
and the uvicorn options that go with it."""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from unitgate.config.edge_limits import EdgeLimits as EdgeLimits
from unitgate.server.ws_protocol import LeanWebSocketProtocol

ACCEPT_BACKLOG = 128
_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class _HeadRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Overrun(Exception):
    """More requests queued on one connection than it may have: it is dropped, not answered."""


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
            self._rest_bytes = 0  # of the current message, after its head: body, chunk lines, trailers
            self._head_timer: asyncio.TimerHandle | None = None
            self._rest_timer: asyncio.TimerHandle | None = None
            if len(self.connections) > limits.max_connections:
                # Before descriptors run out: the cap answers, and the socket is given back.
                self._refuse(503, "too many connections")
                return
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            self._disarm_rest_timer()
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
                elif isinstance(refused, _Overrun):
                    self._drop()
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
            elif not self._in_head and not self._message_done:
                # Counted per chunk received, so a trailer's bytes count too: httptools holds a
                # header's value whole however large, and grows it by copying.
                self._rest_bytes += len(data)
                if self._rest_bytes > limits.max_body_bytes + limits.max_head_bytes:
                    self._refuse(413, f"the request body is larger than {limits.max_body_bytes} bytes")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._headers_seen = 0
            self._message_done = False
            self._rest_bytes = 0

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._message_done = True
            self._disarm_rest_timer()
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
            queued = self.cycle is not None and not self.cycle.response_complete
            if queued and len(self.pipeline) >= limits.max_pipelined:
                raise _Overrun  # stops the parser: nothing more of this client's is read
            super().on_headers_complete()
            if not self.parser.should_upgrade():
                # The rest of the message (body, trailers) has a time of its own, on every route.
                self._rest_timer = self.loop.call_later(limits.body_timeout, self._rest_timed_out)

        def on_response_complete(self) -> None:
            super().on_response_complete()  # resumes reading, and starts a queued request
            if self.pipeline or self.flow.write_paused:
                # Requests are still queued, or the client is not reading its answers: what it
                # sends next waits in the kernel, not here.
                self.flow.pause_reading()
            if self._message_done:
                self._next_head()

        def pause_writing(self) -> None:
            super().pause_writing()
            self.flow.pause_reading()  # a client that does not read is not read from either

        def resume_writing(self) -> None:
            super().resume_writing()
            idle = self.cycle is None or self.cycle.response_complete
            if idle and not self.pipeline and not self.transport.is_closing():
                self.flow.resume_reading()

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

        def _disarm_rest_timer(self) -> None:
            if getattr(self, "_rest_timer", None) is not None:
                assert self._rest_timer is not None
                self._rest_timer.cancel()
                self._rest_timer = None

        def _rest_timed_out(self) -> None:
            self._rest_timer = None
            if not self._message_done and not self.transport.is_closing():
                self._refuse(408, f"the request body did not arrive within {limits.body_timeout:g} s")

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self._refuse(408, f"the request head did not arrive within {limits.head_timeout:g} s")

        def _drop(self) -> None:
            """Closed at once, what is buffered for it thrown away: for a client that sends and
            does not read, an answer would only be more bytes held for it."""
            self._in_head = False
            self._disarm_head_timer()
            self._disarm_rest_timer()
            self.transport.abort()

        def _refuse(self, status: int, message: str) -> None:
            """An HTTP answer and a closed socket; no log line (a flood would be a flood of them).
            Halfway through another answer, the socket is only closed."""
            if self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete:
                self._drop()
                return
            self._disarm_rest_timer()
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
        # uvicorn would take X-Forwarded-For from any process on 127.0.0.1 at its word, and the
        # audit and the per-address limits would use it: no proxy is trusted (see the network issue).
        "proxy_headers": False,
    }
