"""uvicorn's websocket protocol, lean: what each open websocket holds for its whole life, cut to
what it still needs (a thousand idle dashboards each pay for every byte; bench/ measures memory
per subscriber), and its frames written once per turn of the event loop, not one system call each."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class Mailbox:
    """What the protocol asks of its asyncio.Queue (put_nowait, empty, and get for its one
    reader), with no deque: an empty deque is 624 bytes, and a Queue holds four."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class Flag:
    """asyncio.Event's set, clear, is_set and wait, with its waiters in a list, not a deque."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


COALESCE_LIMIT = 64 * 1024  # bytes held before they go out at once: asyncio's own high-water mark


class CoalescedWrites:
    """The protocol's transport, with a turn of the event loop's first frame written at once (the
    reader can start on it) and the rest of that turn's frames in one write at its end. When twenty
    hosts change at once, a dashboard's subscription yields twenty
    events in a row: one send() each was a fifth of a hub's time (bench/, profiled). Every write
    goes through here, so frames keep their order; a close sends what is held first; past
    COALESCE_LIMIT bytes it writes at once, so the transport's flow control still pauses a reader
    that does not keep up."""

    __slots__ = ("_held", "_loop", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None
        self._size = 0

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:  # the turn's first frame goes out at once: the reader can start on it
            self._held = []
            self._size = 0
            self._loop.call_soon(self.flush)
            self._transport.write(data)
            return
        held.append(data)
        self._size += len(data)
        if self._size >= COALESCE_LIMIT:
            self._transport.write(b"".join(held))
            held.clear()
            self._size = 0

    def flush(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with a Mailbox for its queue and a Flag for its
    write gate, and which lets go of the handshake once it is answered: the upgrade request and
    its response (their headers) would stay referenced for the whole connection, by uvicorn and
    by the websockets parser's suspended frame, about 3 KiB. The scope keeps its own copy."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Mailbox()  # type: ignore[assignment]
        writable = Flag()
        writable.set()
        self.writable = writable  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = cast("asyncio.Transport", CoalescedWrites(self.transport, self.loop))

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and getattr(self, "request", None) is not None:
            self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]
