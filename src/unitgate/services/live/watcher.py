"""One shared watcher per process: reads all units, wakes subscribers, keeps the queries' snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Mapping

from unitgate.services.live.snapshot import Mode, ReadAll, Snapshot, UnitSignals, WatcherTimings
from unitgate.services.live.snapshot_store import SnapshotStore
from unitgate.services.systemd.status import UnitStatus

log = logging.getLogger(__name__)
# Sync-and-read rounds a query makes at most while a killed main process is still named (each
# read takes longer than systemd needs to handle the death; the bound is for a stuck systemd).
_ROUNDS = 3
# The round trip begun when the current request arrived (see `arrived`), for its queries to use.
_ARRIVAL: contextvars.ContextVar[tuple[asyncio.Future[None], Snapshot, bool] | None] = contextvars.ContextVar(
    "arrival", default=None
)


class StatusWatcher:
    """Reads while anybody watches and publishes a new Snapshot when something a subscriber cares
    about changed. Subscribers do not get queues: each one compares the latest Snapshot with what
    it last sent, so a slow client can only ever be behind by "the latest state", never by an
    unbounded backlog, and the cost of a read does not grow with the number of subscribers."""

    def __init__(
        self,
        read_all: ReadAll,
        timings: WatcherTimings,
        signals: UnitSignals | None = None,
        accept_signal: Callable[[str], bool] = lambda name: True,
        dying: Callable[[int], bool] = lambda pid: False,
    ) -> None:
        self.store = SnapshotStore(read_all)
        self.timings = timings
        self._signals = signals
        self._wake = asyncio.Event()
        self._read_wanted = False
        self._signalled = False
        self.watchers = 0  # subscribers
        self._lease_until = 0.0  # status queries keep a connected watcher running until then
        self._retry_at = 0.0  # after a failed connection, queries do not start it before then
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None  # a stopped run still closing its bus
        self.mode, self.mode_detail = Mode.IDLE, ""
        self._idle()
        # Which signals wake a read: the composition root drops those of the API's own actions,
        # whose own refresh covers them. Every signal still makes the snapshot stale.
        self._accept_signal = accept_signal
        # Whether a main process is already dead or killed, before systemd has said so.
        self._dying = dying

    @property
    def reads(self) -> int:
        return self.store.started

    @property
    def running(self) -> bool:
        return self._task is not None

    lease_until = property(lambda self: self._lease_until, doc="queries keep it connected until then")

    async def fresh(self, max_age: float, read: bool = True) -> Mapping[str, UnitStatus] | None:
        """Every unit's status as systemd has it now, from the snapshot while the bus vouches that
        no signal came since its read and it is at most `max_age` old (memory has no signal);
        otherwise after one shared read. None when there is no bus to vouch: read yourself.
        With `read` False, only what needs no read at all (nor a start): else None. A query keeps
        the watcher connected for idle_after seconds."""
        if self._signals is None or (self._task is None and not read):
            return None
        now = time.monotonic()
        self._lease_until = max(self._lease_until, now + self.timings.idle_after)
        if self._task is None:
            if now < self._retry_at:
                return None
            self._start()
        if not await self._until(self.store.ready) or self.mode is not Mode.EVENTS:
            return None
        arrival = _ARRIVAL.get()
        for round_ in range(_ROUNDS):
            # After every signal systemd sent before now: a death it handled is heard here. The
            # round trip is mostly waiting; /proc is looked at meanwhile (or when the request came).
            if round_ == 0 and arrival is not None:
                sync, checked, dead = arrival
            else:
                sync = self._signals.begin_sync()
                checked, dead = self.store.latest, self.store.latest.names_dead(self._dying)
            try:
                await asyncio.shield(sync)
            except Exception:  # a lost bus means the wrapper, at once; the watcher sees the close
                return None
            snapshot = self.store.latest
            if snapshot is not checked:  # a read ended meanwhile
                dead = snapshot.names_dead(self._dying)
            too_old = time.monotonic() - snapshot.read_at > max_age
            if not (self.store.stale or snapshot.error or too_old or dead):
                break
            if not read:
                return None
            wanted = self.reads + 1  # a read that starts after this point
            self._want_read()
            while self.store.finished < wanted:
                if not await self._until(self.store.read_finished):
                    return None
            snapshot = self.store.latest
            if not snapshot.names_dead(self._dying):  # made after this query: fresh enough
                break
        return snapshot.statuses if snapshot.error is None and self.mode is Mode.EVENTS else None

    def arrived(self) -> None:
        """A request that may read status has arrived: begin its round trip to systemd now, while
        it is parsed and checked, rather than when a resolver asks (the request's `fresh` uses it)."""
        if self.mode is Mode.EVENTS and self._signals is not None:
            sync = self._signals.begin_sync()  # on its way while /proc is looked at
            snapshot = self.store.latest
            _ARRIVAL.set((sync, snapshot, snapshot.names_dead(self._dying)))

    def refresh(self) -> None:
        """Read again now for the subscribers (after a restart, say); a query will not trust the
        snapshot before a new read either, and with no subscriber it is the query that reads."""
        self.store.stale = True
        if self.watchers:
            self._want_read()

    def signal(self, name: str | None) -> None:
        """A unit changed (None: any may have): subscribers get a read soon, with the rest of the
        same burst; with none, the next query reads."""
        self.store.stale = True
        if self.watchers and (name is None or self._accept_signal(name)):
            self._signalled = True
            self._want_read()

    async def current(self) -> Snapshot:
        """What a new subscriber starts from: the latest read, or a read made after this call when
        signals made that one stale while nobody was subscribed to read on them, or it failed."""
        snapshot = await self.store.current()
        if (self.store.stale and self.mode is Mode.EVENTS) or snapshot.error is not None:
            wanted = self.reads + 1
            self._want_read()
            while self.store.finished < wanted and await self._until(self.store.read_finished):
                pass
            snapshot = self.store.latest
        return snapshot

    def join(self) -> None:
        """A subscriber: keep reading, and publishing to `store.after`, until it leaves. (A pair
        of calls, not a context manager: each open subscription would hold one more object.)"""
        self.watchers += 1
        if self._task is None:
            self._start()
        elif self.watchers == 1:
            self._wake.set()  # from a query's lease to a subscriber: memory reads are due again

    async def leave(self) -> None:
        self.watchers -= 1
        if self.watchers == 0:
            if time.monotonic() >= self._lease_until:
                await self.stop()
            else:
                self._wake.set()  # the lease alone keeps it now

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stopping = task
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._lease_until = 0.0
        self._idle()

    def _start(self) -> None:
        self.store.restart()
        # Empty context: not the deadline of whichever request happened to start it, for life.
        self._task = asyncio.create_task(self._run(), name="unitgate-watcher", context=contextvars.Context())

    def _idle(self) -> None:
        self.store.stale = True  # no signal is heard while stopped
        self.mode = Mode.IDLE
        self.mode_detail = f"no subscriber, and no status query in the last {self.timings.idle_after:g} s"

    def _want_read(self) -> None:
        self._read_wanted = True
        self._wake.set()

    async def _until(self, event: asyncio.Event) -> bool:
        """Wait for `event`; False if the watcher stops first."""
        task = self._task
        if event.is_set():
            return True
        if task is None:
            return False
        waiting = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([waiting, task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        return event.is_set()

    async def _run(self) -> None:
        closed: asyncio.Task[None] | None = None
        timings = self.timings
        try:
            if self._stopping is not None:  # one connection at a time: the old one closes first
                await asyncio.wait([self._stopping])
                self._stopping = None
            closed = await self._connect()
            await self._read(memory=True)
            now = time.monotonic()
            memory_due, poll_due = now + timings.memory_interval, now + timings.poll_interval
            reconnect_due = now + timings.reconnect_interval
            while True:
                if closed is not None and closed.done():
                    closed = None
                    self._fall_back("the bus connection closed")
                    reconnect_due = time.monotonic() + timings.reconnect_interval
                now = time.monotonic()
                if self.watchers == 0 and (self.mode is not Mode.EVENTS or now >= self._lease_until):
                    # Queries keep a connected watcher only: polling for them would cost processes.
                    self._retry_at = now + timings.reconnect_interval if self.mode is Mode.POLLING else 0.0
                    return
                deadlines = [memory_due if self.watchers else self._lease_until]
                if self.mode is Mode.POLLING:
                    deadlines.append(poll_due)
                    if self._signals is not None:
                        deadlines.append(reconnect_due)
                await self._wait(min(deadlines) - now, closed)
                if self._signalled:
                    # Let the rest of a burst (a crash emits several) land in the same read.
                    await asyncio.sleep(timings.coalesce)
                self._wake.clear()
                self._signalled = False
                now = time.monotonic()
                if self.mode is Mode.POLLING and self._signals is not None and now >= reconnect_due:
                    closed = await self._connect()
                    reconnect_due = now + timings.reconnect_interval
                memory = self.watchers > 0 and now >= memory_due
                if memory:
                    memory_due = now + timings.memory_interval
                if self._read_wanted or memory or (self.mode is Mode.POLLING and now >= poll_due):
                    self._read_wanted = False
                    poll_due = now + timings.poll_interval
                    await self._read(memory=memory)
        finally:
            try:
                if closed is not None:
                    closed.cancel()
                if self._signals is not None:
                    await self._signals.close()
            finally:
                if self._task is asyncio.current_task():  # it ended itself: nobody stopped it
                    self._task = None
                    self._idle()

    async def _read(self, memory: bool) -> None:
        events = self.mode is Mode.EVENTS
        await self.store.read(memory=memory, trusted=events)
        if events and self._signals is not None:
            # An alias answers for another unit, which systemd signals on that unit's path only.
            units = {name: status.unit_id for name, status in self.store.latest.statuses.items()}
            if await self._signals.follow_units(units):
                self.signal(None)  # a change there before now went unheard

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
        self.store.stale = True
        self.mode, self.mode_detail = Mode.POLLING, reason

    async def _wait(self, timeout: float, closed: asyncio.Task[None] | None) -> None:
        waits = [asyncio.ensure_future(self._wake.wait())]
        if closed is not None:
            waits.append(closed)  # type: ignore[arg-type]
        try:
            await asyncio.wait(waits, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waits[0].cancel()
