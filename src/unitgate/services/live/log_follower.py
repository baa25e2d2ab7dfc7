"""One `journalctl -f` per unit, shared by all who follow that unit's log, ended with the last."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from unitgate.services.errors import JournalUnavailable, LogStreamLagged, UnitgateError
from unitgate.services.systemd.journal import Journal
from unitgate.services.systemd.logs import LogEntry, parse_entry

log = logging.getLogger(__name__)

_LINE_LIMIT = 4 * 1024 * 1024  # -a prints whole fields; a longer line is skipped, not fatal
QUEUE_LIMIT = 1000  # lines a slow follower may be behind before it is told to resume


class LogSubscription:
    """What one follower receives: entries, then perhaps one error that ends it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[LogEntry | UnitgateError] = asyncio.Queue(maxsize=QUEUE_LIMIT + 1)
        self.last_cursor: str | None = None
        self.closed = False
        # Cursors a catch-up read already delivered; the live stream may still bring them.
        self._delivered: set[str] = set()

    def offer(self, item: LogEntry | UnitgateError) -> None:
        if self.closed:
            return
        if self._delivered and isinstance(item, LogEntry):
            if item.cursor in self._delivered:
                return
            # The live stream is in journal order: past the first new line, none can repeat.
            self._delivered = set()
        if isinstance(item, UnitgateError) or self.queue.qsize() >= QUEUE_LIMIT:
            # Bounded: a follower that cannot keep up is ended with where to resume from.
            if not isinstance(item, UnitgateError):
                item = LogStreamLagged(self.last_cursor)
            self.closed = True
        else:
            self.last_cursor = item.cursor
        self.queue.put_nowait(item)

    def skip_delivered(self, cursors: set[str]) -> None:
        """Drop live lines with these cursors until the first line that is not one of them."""
        self._delivered = set(cursors)

    async def __aiter__(self) -> AsyncIterator[LogEntry | UnitgateError]:
        while True:
            item = await self.queue.get()
            yield item
            if isinstance(item, UnitgateError):
                return


class _Follower:
    def __init__(self, name: str, journal: Journal) -> None:
        self.name = name
        self.subscribers: set[LogSubscription] = set()
        self._journal = journal
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Start right after the newest entry there is, so nothing written from now on is missed.
        newest = await self._journal.recent(self.name, 1)
        extra = [f"--after-cursor={newest[-1].cursor}"] if newest else ["-n", "all"]
        self._process = await self._journal.spawn_follower(self.name, *extra, line_limit=_LINE_LIMIT)
        self._reader = asyncio.create_task(self._read(self._process), name=f"unitgate-logs-{self.name}")

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:  # longer than _LINE_LIMIT: drop what is left of it
                with contextlib.suppress(Exception):
                    await process.stdout.readuntil(b"\n")
                continue
            if not line:
                break
            entry = parse_entry(line)
            if entry is not None:
                for subscriber in list(self.subscribers):
                    subscriber.offer(entry)
        await process.wait()
        for subscriber in list(self.subscribers):
            subscriber.offer(JournalUnavailable(f"journalctl -f exited {process.returncode}"))

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._process is not None:
            await self._journal.terminate(self._process)


class LogFollowers:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._followers: dict[str, _Follower] = {}
        self._starting: dict[str, asyncio.Future[_Follower]] = {}

    @property
    def subscribers(self) -> int:
        """Followers now, over every unit."""
        return sum(len(follower.subscribers) for follower in self._followers.values())

    @property
    def running(self) -> int:
        """How many `journalctl -f` processes run now (one per followed unit)."""
        return len(self._followers)

    async def aclose(self) -> None:
        """End every follower process (at shutdown), and every stream reading from one."""
        followers, self._followers = list(self._followers.values()), {}
        for follower in followers:
            for subscription in list(follower.subscribers):
                subscription.offer(JournalUnavailable("unitgate is shutting down"))
            await follower.stop()

    @contextlib.asynccontextmanager
    async def follow(self, name: str, after_cursor: str | None = None) -> AsyncIterator[LogSubscription]:
        """Subscribe to `name`'s new lines; with `after_cursor`, first the lines since then
        (read after subscribing, and deduplicated, so the two join without a gap)."""
        follower = await self._follower(name)
        subscription = LogSubscription()
        follower.subscribers.add(subscription)
        try:
            if after_cursor is not None:
                await self._catch_up(name, after_cursor, subscription)
            yield subscription
        finally:
            follower.subscribers.discard(subscription)
            if not follower.subscribers and self._followers.get(name) is follower:
                del self._followers[name]
                await follower.stop()

    async def _follower(self, name: str) -> _Follower:
        follower = self._followers.get(name)
        if follower is not None:
            return follower
        starting = self._starting.get(name)
        if starting is not None:  # someone else is starting it: share theirs
            return await asyncio.shield(starting)
        future: asyncio.Future[_Follower] = asyncio.get_running_loop().create_future()
        self._starting[name] = future
        try:
            follower = _Follower(name, self._journal)
            await follower.start()
            self._followers[name] = follower
            future.set_result(follower)
            return follower
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        finally:
            del self._starting[name]

    async def _catch_up(self, name: str, after_cursor: str, subscription: LogSubscription) -> None:
        backlog, complete = await self._journal.since(name, after_cursor)
        live = []
        while not subscription.queue.empty():
            live.append(subscription.queue.get_nowait())
        subscription.last_cursor = None
        for entry in backlog:
            subscription.offer(entry)
        if not complete:
            subscription.offer(LogStreamLagged(subscription.last_cursor))
            return
        # The follower's lines overlap the backlog from where it started to where the backlog
        # read stopped, whether they arrived before this read (in `live`) or arrive after it.
        subscription.skip_delivered({entry.cursor for entry in backlog})
        for item in live:
            subscription.offer(item)


__all__ = ["QUEUE_LIMIT", "LogFollowers", "LogSubscription"]
