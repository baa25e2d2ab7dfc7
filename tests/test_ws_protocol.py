"""The lean websocket protocol's parts: the Mailbox and the Flag behave as the asyncio.Queue and
asyncio.Event they stand in for, as uvicorn uses them."""

from __future__ import annotations

import asyncio

import pytest

from unitgate.server.ws_protocol import Flag, Mailbox


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
