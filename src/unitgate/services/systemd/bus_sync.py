"""Ordering a status query after systemd's signals: Ping round trips to the manager, sent at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
_TIMEOUT = 2.0


class BusUnavailable(Exception):
    pass


class Pings:
    """`org.freedesktop.DBus.Peer.Ping` calls to systemd on one connection. systemd answers after
    whatever it handled before (a dead child comes before a bus message), and one connection's
    messages arrive in the order they were sent: by the answer, every signal systemd sent before
    the ping has been dispatched here.

    A ping is written to the socket when `send` is called, not when some task next runs: a request
    begins its round trip as it arrives, and it is under way while the request is parsed."""

    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus
        self._waiting: dict[int, tuple[asyncio.Future[None], asyncio.TimerHandle]] = {}
        bus.add_message_handler(self._on_message)
        closed = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        closed.add_done_callback(lambda done: self._fail_all("the bus connection closed"))

    def send(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[None] = loop.create_future()
        if not self._bus.connected:
            answer.set_exception(BusUnavailable("not connected"))
            return answer
        ping = Message(
            destination=SYSTEMD, path=MANAGER_PATH, interface="org.freedesktop.DBus.Peer", member="Ping"
        )
        written = self._bus.send(ping)  # sets the serial; a failed write disconnects the bus
        written.add_done_callback(_retrieve)
        timer = loop.call_later(_TIMEOUT, self._expire, ping.serial)
        self._waiting[ping.serial] = (answer, timer)
        return answer

    def _on_message(self, message: Message) -> bool:
        if message.message_type not in (MessageType.METHOD_RETURN, MessageType.ERROR):
            return False
        waiting = self._waiting.pop(message.reply_serial, None)
        if waiting is None:
            return False
        answer, timer = waiting
        timer.cancel()
        if not answer.done():
            if message.message_type is MessageType.ERROR:
                answer.set_exception(BusUnavailable(f"{message.error_name}: {message.body}"))
            else:
                answer.set_result(None)
        return True

    def _expire(self, serial: int) -> None:
        waiting = self._waiting.pop(serial, None)
        if waiting is not None and not waiting[0].done():
            waiting[0].set_exception(BusUnavailable(f"systemd did not answer a ping in {_TIMEOUT:g} s"))

    def _fail_all(self, reason: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for answer, timer in waiting.values():
            timer.cancel()
            if not answer.done():
                answer.set_exception(BusUnavailable(reason))


class RoundTrips:
    """`begin()` gives a round trip that begins no earlier than the call: sent at once when none
    is out, else right after the one that is out (which began too early for this caller). Every
    caller in the meantime shares that next one, so at most two are ever pending however many
    callers there are; await the answer through asyncio.shield, since it is shared."""

    def __init__(self, send: Callable[[], asyncio.Future[None]]) -> None:
        self._send = send
        self._current: asyncio.Future[None] | None = None
        self._next: asyncio.Future[None] | None = None

    def begin(self) -> asyncio.Future[None]:
        if self._next is not None:
            return self._next
        if self._current is not None and not self._current.done():
            following: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            following.add_done_callback(_retrieve)
            self._current.add_done_callback(lambda done: self._start_next(following))
            self._next = following
            return following
        self._current = self._send()
        self._current.add_done_callback(_retrieve)
        return self._current

    def _start_next(self, following: asyncio.Future[None]) -> None:
        self._next = None
        self._current = self._send()
        self._current.add_done_callback(_retrieve)
        self._current.add_done_callback(lambda done: _relay(done, following))


def _relay(source: asyncio.Future[None], target: asyncio.Future[None]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    # A failure nobody awaited (a request that read no status) is not reported as lost.
    if not future.cancelled():
        future.exception()
