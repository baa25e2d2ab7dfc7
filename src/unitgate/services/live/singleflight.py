"""Concurrent callers asking the same question share one answer in flight."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """`await do(key, fn)`: the first caller for `key` runs `fn`; callers arriving while it runs
    await the same result (or exception). Nothing is cached once it has finished."""

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Task[V]] = {}
        self.started = 0

    async def do(self, key: K, fn: Callable[[], Coroutine[Any, Any, V]]) -> V:
        task = self._flights.get(key)
        if task is None:
            # A context of its own: the first caller's (its deadline) is not the others'. Each
            # caller bounds its own wait; the flight is bounded by what it runs.
            task = asyncio.get_running_loop().create_task(fn(), context=contextvars.Context())
            self.started += 1
            self._flights[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: one impatient caller leaving must not cancel the answer the others wait for.
        return await asyncio.shield(task)

    def _forget(self, key: K, task: asyncio.Task[V]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved, so a failure nobody awaited is not reported as lost

    async def drain(self) -> None:
        """Wait for every answer in flight (each bounded by what it runs): at shutdown, so that
        no read is left for the event loop to cancel halfway through starting its process."""
        while self._flights:
            await asyncio.gather(*self._flights.values(), return_exceptions=True)
