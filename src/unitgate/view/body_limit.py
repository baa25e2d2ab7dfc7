"""ASGI: a body only where one is taken, read whole up to a size (413) and within a time (408)
before the app; every other request that announces a body is refused before it is read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Reads a POST body up to `max_body_bytes` within `timeout` seconds and replays it to the app,
    or answers 413 as soon as it grows past the limit, 408 when it comes too slowly. Other methods
    carry no body GraphQL reads (a GET is its query string): theirs is never read."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = 1 << 20, timeout: float = 10.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.timeout):
                body = await read_body(receive, self.max_body_bytes)
        except TimeoutError:
            message = f"the request body did not arrive within {self.timeout:g} s"
            await _error(408, message)(scope, receive, send)
            return
        if body is None:
            # Read (and drop) a little more first: closing with a body still unread makes TCP send
            # a reset, which can reach the client before the 413 does.
            await drain(receive, 4 * self.max_body_bytes, seconds=1.0)
            await _error(413, f"the request body is larger than {self.max_body_bytes} bytes")(
                scope, receive, send
            )
            return
        await self.app(scope, replay(body), send)


class BodilessElsewhere:
    """413 for a request that announces a body (a length, or chunks) where `takes_body` says none
    is taken, before a byte of it is read, and the connection closed: a body nobody reads would
    otherwise hold the connection for as long as its sender drips it."""

    def __init__(self, app: ASGIApp, takes_body: Callable[[Scope], bool]) -> None:
        self.app = app
        self.takes_body = takes_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and announces_body(scope) and not self.takes_body(scope):
            message = f"{scope['method']} {scope['path']} takes no request body"
            await _error(413, message)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def announces_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _error(status: int, message: str) -> JSONResponse:
    # Connection: close: what is left of this body is not worth reading.
    return JSONResponse(
        {"errors": [{"message": message}]}, status_code=status, headers={"Connection": "close"}
    )


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it grows past `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def drain(receive: Receive, limit: int, seconds: float) -> None:
    """Drop what is left of a body, up to `limit` bytes or `seconds`, whichever comes first."""
    dropped = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while dropped <= limit:
                message = await receive()
                if message["type"] != "http.request":
                    return
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


def replay(body: bytes) -> Receive:
    """A `receive` that gives the app the body already read, then a disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
