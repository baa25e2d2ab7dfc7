"""The lean websocket protocol's parts: the Mailbox and the Flag behave as the asyncio.Queue and
asyncio.Event they stand in for, as uvicorn uses them."""

from __future__ import annotations

import asyncio
import socket

import pytest

from unitgate.server.ws_protocol import COALESCE_LIMIT, CoalescedWrites, Flag, Mailbox


async def test_a_mailbox_hands_out_in_order_and_waits_when_empty() -> None:
    box = Mailbox()
    assert box.empty()
    box.put_nowait(1)
    box.put_nowait(2)
    assert not box.empty()
    assert [await box.get(), await box.get()] == [1, 2]
    waiting = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    box.put_nowait(3)
    assert await waiting == 3
    assert box.empty()


async def test_a_cancelled_get_loses_nothing() -> None:
    box = Mailbox()
    waiting = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    box.put_nowait("kept")
    assert await box.get() == "kept"


async def test_a_flag_wakes_every_waiter_and_can_be_cleared() -> None:
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    flag.clear()
    cancelled = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    flag.set()
    assert await flag.wait()


async def _transport_pair() -> tuple[asyncio.Transport, socket.socket]:
    """A real asyncio transport over one end of a socketpair, and the other end to read."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
    return transport, theirs


def _read(peer: socket.socket) -> bytes:
    try:
        return peer.recv(1 << 20)
    except BlockingIOError:
        return b""


async def test_a_turns_first_frame_goes_out_at_once_and_the_rest_together_at_its_end() -> None:
    transport, peer = await _transport_pair()
    writes = CoalescedWrites(transport, asyncio.get_running_loop())
    try:
        writes.write(b"one")
        assert _read(peer) == b"one"  # the reader can start on it now
        writes.write(b"two")
        writes.write(b"three")
        assert _read(peer) == b""  # held for the end of the turn
        await asyncio.sleep(0)  # one turn: the flush was scheduled before this task's wake-up
        assert _read(peer) == b"twothree"
        writes.write(b"four")  # a new turn: at once again
        assert _read(peer) == b"four"
    finally:
        writes.close()
        peer.close()


async def test_held_frames_go_out_before_a_close_and_past_the_limit() -> None:
    transport, peer = await _transport_pair()
    writes = CoalescedWrites(transport, asyncio.get_running_loop())
    writes.write(b"a")
    big = b"x" * COALESCE_LIMIT
    writes.write(big)  # past the limit: written now, so flow control sees it
    received = b""
    while chunk := _read(peer):  # in the socket already, with no turn of the loop
        received += chunk
    assert received == b"a" + big
    writes.write(b"last")
    writes.close()
    await asyncio.sleep(0)
    peer.settimeout(30)  # a failure, not a hang, if the close never came
    received = b""
    while chunk := peer.recv(1 << 20):
        received += chunk
    peer.close()
    assert received.endswith(b"last")  # written before the close, then the end of the stream
    assert writes.is_closing()
