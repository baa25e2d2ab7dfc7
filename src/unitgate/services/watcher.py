"""One shared watcher per process: reads every allowlisted unit and wakes subscribers on change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from unitgate.services.errors import SystemdUnavailable, UnitgateError
from unitgate.services.status import UnitStatus

log = logging.getLogger(__name__)

ReadAll = Callable[[], Awaitable[list[UnitStatus]]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the watcher knew after one read: every unit's status, or why it could not read."""

    generation: int
    statuses: Mapping[str, UnitStatus] = field(default_factory=dict)
    error: UnitgateError | None = None


class StatusWatcher:
    """Polls while anybody watches and publishes a new Snapshot when something a subscriber cares
    about changed.

    Subscribers do not get queues: each one compares the latest Snapshot with what it last sent,
    so a slow client can only ever be behind by "the latest state", never by an unbounded backlog,
    and the cost of a read does not grow with the number of subscribers.
    """

    def __init__(self, read_all: ReadAll, poll_interval: float) -> None:
        self._read_all = read_all
        self.poll_interval = poll_interval
        self._snapshot = Snapshot(generation=0)
        self._published = asyncio.Event()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._watchers = 0
        self._task: asyncio.Task[None] | None = None
        self.reads = 0

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def watchers(self) -> int:
        return self._watchers

    def refresh(self) -> None:
        """Read again now (after a restart, say); a no-op when nobody watches."""
        if self._task is not None:
            self._wake.set()

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[WatchHandle]:
        self._watchers += 1
        if self._task is None:
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._poll(), name="unitgate-status-watcher")
        try:
            yield WatchHandle(self)
        finally:
            self._watchers -= 1
            if self._watchers == 0:
                await self.stop()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        while True:
            self._wake.clear()
            await self._read_once()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    async def _read_once(self) -> None:
        self.reads += 1
        previous = self._snapshot
        try:
            statuses = {status.name: status for status in await self._read_all()}
            error: UnitgateError | None = None
        except UnitgateError as failure:
            statuses, error = dict(previous.statuses), failure
        except Exception:
            log.exception("status watcher read failed")
            statuses, error = dict(previous.statuses), SystemdUnavailable("status read failed")
        first = not self._ready.is_set()
        if first or error is not None or previous.error is not None or _changed(previous, statuses):
            self._publish(Snapshot(previous.generation + 1, statuses, error))
        else:
            # Memory and uptime move without an event; keep them fresh for the next snapshot.
            self._snapshot = Snapshot(previous.generation, statuses, None)
        self._ready.set()

    def _publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        published, self._published = self._published, asyncio.Event()
        published.set()


class WatchHandle:
    """One subscriber's view of the shared watcher."""

    def __init__(self, watcher: StatusWatcher) -> None:
        self._watcher = watcher

    async def current(self) -> Snapshot:
        """The snapshot of a read made after this watch started (waits for the first one)."""
        await self._watcher._ready.wait()
        return self._watcher._snapshot

    async def after(self, generation: int) -> Snapshot:
        """The latest snapshot newer than `generation`, waiting for one if need be."""
        while self._watcher._snapshot.generation <= generation:
            await self._watcher._published.wait()
        return self._watcher._snapshot


def _changed(previous: Snapshot, statuses: Mapping[str, UnitStatus]) -> bool:
    if previous.statuses.keys() != statuses.keys():
        return True
    return any(previous.statuses[name].change_key != s.change_key for name, s in statuses.items())
