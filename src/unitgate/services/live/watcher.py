"""One shared watcher per process: reads every allowlisted unit and wakes subscribers on change."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from unitgate.services.errors import ServiceNotFound, SystemdUnavailable, UnitgateError
from unitgate.services.live.status_diff import memory_changed, state_changed, worth_sending
from unitgate.services.systemd.status import UnitStatus, distinct_units

log = logging.getLogger(__name__)

ReadAll = Callable[[], Awaitable[list[UnitStatus]]]
StatusEvent = UnitStatus | UnitgateError


class UnitSignals(Protocol):
    """A source of "this unit changed" hints (systemd's D-Bus signals, in production)."""

    @property
    def describe(self) -> str: ...
    async def connect(self, on_change: Callable[[str], None]) -> None: ...
    async def wait_closed(self) -> None: ...
    async def close(self) -> None: ...


class Mode(enum.StrEnum):
    IDLE = "idle"  # nobody watches: no reads, no bus connection
    EVENTS = "events"  # D-Bus signals say when to read
    POLLING = "polling"  # no bus: read every poll_interval


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the watcher knew after one read: every unit's status, or why it could not read."""

    generation: int
    statuses: Mapping[str, UnitStatus] = field(default_factory=dict)
    error: UnitgateError | None = None
    # Memory moves without a signal; on these reads subscribers also hear of memory changes.
    memory_refresh: bool = False


@dataclass(frozen=True, slots=True)
class WatcherTimings:
    poll_interval: float = 2.0  # in polling mode
    memory_interval: float = 30.0  # reads for MemoryCurrent, which has no change signal
    coalesce: float = 0.02  # a burst of signals within this window makes one read
    reconnect_interval: float = 5.0  # how often polling mode tries the bus again


class StatusWatcher:
    """Reads while anybody watches and publishes a new Snapshot when something a subscriber cares
    about changed.

    Subscribers do not get queues: each one compares the latest Snapshot with what it last sent,
    so a slow client can only ever be behind by "the latest state", never by an unbounded backlog,
    and the cost of a read does not grow with the number of subscribers.
    """

    def __init__(
        self,
        read_all: ReadAll,
        timings: WatcherTimings,
        signals: UnitSignals | None = None,
        accept_signal: Callable[[str], bool] = lambda name: True,
    ) -> None:
        self._read_all = read_all
        self.timings = timings
        self._signals = signals
        self._snapshot = Snapshot(generation=0)
        self._published = asyncio.Event()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._signalled = False
        # A signal or a refresh since the read behind the current snapshot started.
        self._stale = True
        self._watchers = 0
        self._task: asyncio.Task[None] | None = None
        self.reads = 0
        self.mode = Mode.IDLE
        self.mode_detail = "nobody is subscribed"
        # Which signals count: the composition root drops those of the API's own actions,
        # whose own refresh covers them.
        self._accept_signal = accept_signal

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def watchers(self) -> int:
        return self._watchers

    def fresh_statuses(self) -> Mapping[str, UnitStatus] | None:
        """The latest read when systemd's signals vouch that nothing changed since (events mode, no
        signal since, no failed read), else None. Memory may be memory_interval old (no signal)."""
        snapshot = self._snapshot
        fresh = self.mode is Mode.EVENTS and self._ready.is_set() and not self._stale
        return snapshot.statuses if fresh and snapshot.error is None else None

    def refresh(self) -> None:
        """Read again now (after a restart, say); a no-op when nobody watches."""
        if self._task is not None:
            self._stale = True
            self._wake.set()

    def signal(self, name: str) -> None:
        """A unit changed: read soon, together with whatever else changes in the same burst."""
        if self._task is not None and self._accept_signal(name):
            self._stale = True
            self._signalled = True
            self._wake.set()

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[WatchHandle]:
        self._watchers += 1
        if self._task is None:
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="unitgate-status-watcher")
        try:
            yield WatchHandle(self)
        finally:
            self._watchers -= 1
            if self._watchers == 0:
                await self.stop()

    async def changes(
        self, names: Sequence[str] | None, include: Callable[[str], bool] = lambda name: True
    ) -> AsyncGenerator[StatusEvent, None]:
        """The current status of each of `names` (allowlisted, checked by the caller), then one
        event per change; `None` follows every installed unit that `include` lets through, and
        such units installed later.

        A name that is not installed yields ServiceNotFound and ends the stream; a failed read
        later on yields its error and the stream goes on.
        """
        async with self.watch() as handle:
            snapshot = await handle.current()
            if snapshot.error is not None:
                yield snapshot.error
                return
            follow_new = names is None
            if names is None:
                installed = [
                    s for _, s in sorted(snapshot.statuses.items()) if s.installed and include(s.name)
                ]
                names = [status.name for status in distinct_units(installed)]
            for name in names:
                if not snapshot.statuses[name].installed:
                    yield ServiceNotFound(name)
                    return
            sent: dict[str, UnitStatus] = {}
            units: set[str] = set()  # the units behind `sent`, kept as it grows
            for name in names:
                sent[name] = snapshot.statuses[name]
                units.add(snapshot.statuses[name].unit_id)
                yield snapshot.statuses[name]
            while True:
                snapshot = await handle.after(snapshot.generation)
                if snapshot.error is not None:
                    yield snapshot.error
                    continue
                for name, status in sorted(snapshot.statuses.items()):
                    if name not in sent and (status.unit_id in units or not include(name)):
                        continue  # another name of a unit this subscriber already follows
                    if worth_sending(sent.get(name), status, follow_new, snapshot.memory_refresh):
                        sent[name] = status
                        units.add(status.unit_id)
                        yield status

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.mode, self.mode_detail = Mode.IDLE, "nobody is subscribed"

    async def _run(self) -> None:
        closed: asyncio.Task[None] | None = None
        try:
            closed = await self._connect()
            await self._read_once(memory=True)
            now = time.monotonic()
            memory_due = now + self.timings.memory_interval
            poll_due = now + self.timings.poll_interval
            reconnect_due = now + self.timings.reconnect_interval
            while True:
                if closed is not None and closed.done():
                    closed = None
                    self._fall_back("the bus connection closed")
                    reconnect_due = time.monotonic() + self.timings.reconnect_interval
                deadlines = [memory_due]
                if self.mode is Mode.POLLING:
                    deadlines.append(poll_due)
                    if self._signals is not None:
                        deadlines.append(reconnect_due)
                await self._wait(min(deadlines) - time.monotonic(), closed)
                if self._signalled:
                    # Let the rest of a burst (a crash emits several) land in the same read.
                    await asyncio.sleep(self.timings.coalesce)
                self._wake.clear()
                self._signalled = False
                now = time.monotonic()
                if self.mode is Mode.POLLING and self._signals is not None and now >= reconnect_due:
                    closed = await self._connect()
                    reconnect_due = now + self.timings.reconnect_interval
                memory = now >= memory_due
                if memory:
                    memory_due = now + self.timings.memory_interval
                poll_due = now + self.timings.poll_interval
                await self._read_once(memory=memory)
        finally:
            if closed is not None:
                closed.cancel()
            if self._signals is not None:
                await self._signals.close()

    async def _connect(self) -> asyncio.Task[None] | None:
        """Listen for signals if we can; otherwise poll, and say why."""
        if self._signals is None:
            self._fall_back("no event source configured")
            return None
        try:
            await self._signals.connect(self.signal)
        except Exception as error:  # any failure to reach the bus means polling, not a crash
            self._fall_back(str(error))
            return None
        self.mode, self.mode_detail = Mode.EVENTS, f"D-Bus signals from {self._signals.describe}"
        # The bus may drop later: then polling takes over until it is back.
        return asyncio.create_task(self._signals.wait_closed())

    def _fall_back(self, reason: str) -> None:
        if self.mode is not Mode.POLLING:
            log.warning(
                "status watcher falls back to polling every %g s: %s", self.timings.poll_interval, reason
            )
        self.mode, self.mode_detail = Mode.POLLING, reason

    async def _wait(self, timeout: float, closed: asyncio.Task[None] | None) -> None:
        waits = [asyncio.ensure_future(self._wake.wait())]
        if closed is not None:
            waits.append(closed)  # type: ignore[arg-type]
        try:
            await asyncio.wait(waits, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waits[0].cancel()

    async def _read_once(self, memory: bool) -> None:
        self.reads += 1
        self._stale = False  # a signal during this read makes it stale again
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
        changed = state_changed(previous.statuses, statuses) or (
            memory and memory_changed(previous.statuses, statuses)
        )
        if first or error is not None or previous.error is not None or changed:
            self._publish(Snapshot(previous.generation + 1, statuses, error, memory_refresh=memory))
        else:
            self._snapshot = Snapshot(previous.generation, statuses, None, previous.memory_refresh)
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
