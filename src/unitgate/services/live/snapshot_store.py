"""The watcher's latest snapshot and the waits on it: the first read, a newer generation, a read."""

from __future__ import annotations

import asyncio
import logging
import time

from unitgate.services.errors import SystemdUnavailable, UnitgateError
from unitgate.services.live.snapshot import ReadAll, Snapshot
from unitgate.services.live.status_diff import memory_changed, state_changed

log = logging.getLogger(__name__)


class SnapshotStore:
    """Reads every unit through `read_all` when told to, and keeps what it read."""

    def __init__(self, read_all: ReadAll) -> None:
        self._read_all = read_all
        self.latest = Snapshot(generation=0)
        self.ready = asyncio.Event()  # set by the first read of a watcher's run
        # A signal, a refresh or a stop since the read behind `latest` began.
        self.stale = True
        self.started = 0  # reads begun
        self.finished = 0  # reads ended
        self.read_finished = asyncio.Event()  # set when the next read ends
        self._published = asyncio.Event()  # set when the next generation is published

    def restart(self) -> None:
        """A new run of the watcher: nothing is known until its first read."""
        self.ready = asyncio.Event()
        self.stale = True

    async def current(self) -> Snapshot:
        """The snapshot of a read made after this run began (waits for the first one)."""
        await self.ready.wait()
        return self.latest

    async def after(self, generation: int) -> Snapshot:
        """The latest snapshot newer than `generation`, waiting for one if need be."""
        while self.latest.generation <= generation:
            await self._published.wait()
        return self.latest

    async def read(self, memory: bool, trusted: bool) -> None:
        """One read. A new generation is published when a subscriber would care (a state change;
        a memory change on a `memory` read; a failure, or the end of one); otherwise the statuses
        are replaced quietly. `trusted`: signals will say when it goes stale (events mode)."""
        self.started += 1
        self.stale = not trusted  # a signal during this read makes it stale again
        previous = self.latest
        started = time.monotonic()
        try:
            statuses = {status.name: status for status in await self._read_all()}
            error: UnitgateError | None = None
        except UnitgateError as failure:
            statuses, error = dict(previous.statuses), failure
        except Exception:
            log.exception("status watcher read failed")
            statuses, error = dict(previous.statuses), SystemdUnavailable("status read failed")
        first = not self.ready.is_set()
        changed = state_changed(previous.statuses, statuses) or (
            memory and memory_changed(previous.statuses, statuses)
        )
        if first or error is not None or previous.error is not None or changed:
            self.latest = Snapshot(previous.generation + 1, statuses, error, memory, started)
            published, self._published = self._published, asyncio.Event()
            published.set()
        else:
            self.latest = Snapshot(previous.generation, statuses, None, previous.memory_refresh, started)
        self.ready.set()
        self.finished += 1
        finished, self.read_finished = self.read_finished, asyncio.Event()
        finished.set()
