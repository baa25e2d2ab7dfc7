"""Shared log followers through their seam, a fake journal: sharing, catch-up, lag, no process."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from unitgate.services.errors import JournalUnavailable, LogStreamLagged, UnitgateError
from unitgate.services.live.log_follower import LogFollowers
from unitgate.services.systemd.journal import Journal
from unitgate.services.systemd.logs import LogEntry

pytestmark = pytest.mark.timeout(10)


def entry(number: int) -> LogEntry:
    return LogEntry(datetime(2026, 1, 1, tzinfo=UTC), 6, 1, f"line {number}", f"c{number:04d}")


def json_line(item: LogEntry) -> bytes:
    realtime = int(item.time.timestamp() * 1_000_000)
    fields = {
        "__CURSOR": item.cursor,
        "__REALTIME_TIMESTAMP": str(realtime),
        "MESSAGE": item.message,
        "PRIORITY": str(item.priority),
        "_PID": str(item.pid),
    }
    return json.dumps(fields).encode() + b"\n"


class FakeFollowProcess:
    """Stands in for `journalctl -f`: the test writes its output lines and ends it."""

    def __init__(self) -> None:
        self.stdout = asyncio.StreamReader()
        self.returncode: int | None = None
        self._ended = asyncio.Event()

    def write(self, item: LogEntry) -> None:
        self.stdout.feed_data(json_line(item))

    def end(self, code: int) -> None:
        self.returncode = code
        self.stdout.feed_eof()
        self._ended.set()

    async def wait(self) -> int:
        await self._ended.wait()
        assert self.returncode is not None
        return self.returncode


class FakeJournal:
    """The journal as a list; `since` can be told to run something the moment it has read."""

    def __init__(self, *entries: LogEntry) -> None:
        self.entries = list(entries)
        self.processes: list[FakeFollowProcess] = []
        self.terminated = 0
        self.after_since_read: Any = None
        self.since_complete = True

    async def recent(self, name: str, lines: int) -> list[LogEntry]:
        return self.entries[-lines:] if lines else []

    async def since(self, name: str, after_cursor: str) -> tuple[list[LogEntry], bool]:
        if self.after_since_read is not None:
            self.after_since_read()  # a line written while the read runs is in what it reads
        return [e for e in self.entries if e.cursor > after_cursor], self.since_complete

    async def spawn_follower(self, name: str, *extra: str, line_limit: int) -> FakeFollowProcess:
        process = FakeFollowProcess()
        self.processes.append(process)
        return process

    async def terminate(self, process: FakeFollowProcess) -> None:
        self.terminated += 1
        if process.returncode is None:
            process.end(-9)

    def write(self, item: LogEntry) -> None:
        """journald writes a line: it is in the journal, and every running follower prints it."""
        self.entries.append(item)
        for process in self.processes:
            if process.returncode is None:
                process.write(item)


def followers(journal: FakeJournal) -> LogFollowers:
    return LogFollowers(cast(Journal, journal))


async def next_item(subscription: Any) -> LogEntry | UnitgateError:
    async with asyncio.timeout(2):
        item: LogEntry | UnitgateError = await subscription.queue.get()
        return item


async def test_followers_of_one_unit_share_one_process_that_ends_with_the_last() -> None:
    journal = FakeJournal(entry(1))
    shared = followers(journal)
    async with shared.follow("nginx") as first, shared.follow("nginx") as second:
        assert len(journal.processes) == 1
        assert shared.running == 1
        journal.write(entry(2))
        assert await next_item(first) == entry(2)
        assert await next_item(second) == entry(2)
    assert shared.running == 0
    assert journal.terminated == 1


async def test_resume_has_no_gap_and_no_repeat_when_live_lines_arrive_after_the_backlog() -> None:
    journal = FakeJournal(entry(1), entry(2), entry(3))
    shared = followers(journal)
    async with shared.follow("nginx"):  # a follower already runs, from line 3 on
        journal.write(entry(4))
        # Line 5 is written while the backlog is read: the backlog has it, and journalctl -f
        # prints it too, but only after the catch-up has finished.
        pending: list[LogEntry] = []

        def written_during_read() -> None:
            journal.entries.append(entry(5))
            pending.append(entry(5))

        journal.after_since_read = written_during_read
        async with shared.follow("nginx", after_cursor=entry(1).cursor) as resumed:
            journal.after_since_read = None
            journal.processes[0].write(pending[0])
            journal.write(entry(6))
            got = [await next_item(resumed) for _ in range(5)]
            assert got == [entry(2), entry(3), entry(4), entry(5), entry(6)]
            assert resumed.queue.empty()


async def test_a_backlog_too_long_for_one_read_ends_with_where_to_resume() -> None:
    journal = FakeJournal(entry(1), entry(2), entry(3))
    journal.since_complete = False
    shared = followers(journal)
    async with shared.follow("nginx", after_cursor=entry(1).cursor) as resumed:
        assert [await next_item(resumed) for _ in range(2)] == [entry(2), entry(3)]
        lagged = await next_item(resumed)
        assert isinstance(lagged, LogStreamLagged)
        assert lagged.last_cursor == entry(3).cursor


async def test_journalctl_exiting_ends_every_follower_with_the_reason() -> None:
    journal = FakeJournal()
    shared = followers(journal)
    async with shared.follow("nginx") as subscription:
        journal.processes[0].end(1)
        failure = await next_item(subscription)
        assert isinstance(failure, JournalUnavailable)
        assert "exited 1" in str(failure)


async def test_shutdown_ends_every_stream() -> None:
    journal = FakeJournal()
    shared = followers(journal)
    async with shared.follow("nginx") as subscription:
        await shared.aclose()
        failure = await next_item(subscription)
        assert isinstance(failure, JournalUnavailable)
    assert journal.terminated == 1
