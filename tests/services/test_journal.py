"""The journal: pure parsing of `journalctl -o json`, then the real journal of the sandbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.helpers import OPERATOR, VIEWER
from tests.units import FAILING, HEALTHY, LOGGY, LONG_LINE, MISSING
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.errors import (
    Forbidden,
    InvalidCursor,
    JournalUnavailable,
    LogStreamLagged,
    RestartFailed,
    ServiceNotAllowed,
    ServiceNotFound,
)
from unitgate.services.live.log_follower import QUEUE_LIMIT, LogSubscription
from unitgate.services.policy.control import LogEvent, ServiceControl
from unitgate.services.systemd.logs import LogEntry, check_cursor, parse_entry

pytestmark = pytest.mark.timeout(60)
MakeControl = Callable[..., ServiceControl]
CURSOR = "s=bbe2c572aa5f4d60846c3ea02227bac4;i=15;b=a1e7b0f005ed44a6bdf514e2bfb2076a;m=af79c1b4;t=661349e1c027f;x=11e159e4150b9ddd"


def line(**fields: Any) -> bytes:
    return json.dumps({"__CURSOR": CURSOR, "__REALTIME_TIMESTAMP": "1795728479093375", **fields}).encode()


def test_parse_entry() -> None:
    entry = parse_entry(line(MESSAGE="hello", PRIORITY="3", _PID="1420"))
    assert entry == LogEntry(
        time=datetime(2026, 11, 26, 21, 27, 59, 93375, tzinfo=UTC),
        priority=3,
        pid=1420,
        message="hello",
        cursor=CURSOR,
    )


def test_invalid_utf8_comes_as_bytes_and_is_replaced() -> None:
    entry = parse_entry(line(MESSAGE=[98, 97, 100, 32, 255, 254]))
    assert entry is not None
    assert entry.message == "bad \ufffd\ufffd"


@pytest.mark.parametrize("message", [None, 5, [300], ["a"], {"x": 1}])
def test_odd_messages_do_not_crash(message: object) -> None:
    entry = parse_entry(line(MESSAGE=message))
    assert entry is not None
    assert entry.message == ""


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[1, 2]", b"\xff\xfe", json.dumps({"MESSAGE": "no cursor"}).encode()]
)
def test_non_entries_are_skipped(raw: bytes) -> None:
    assert parse_entry(raw) is None


@pytest.mark.parametrize("cursor", ["", "a" * 600, "s=1;i=2 --flag", "$(id)", "s=1\n", "../../etc"])
def test_hostile_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        check_cursor(cursor)
    assert check_cursor(CURSOR) == CURSOR


def test_a_slow_follower_is_ended_with_where_to_resume() -> None:
    subscription = LogSubscription()
    for number in range(QUEUE_LIMIT + 5):
        subscription.offer(LogEntry(datetime.now(UTC), 6, 1, f"line {number}", f"c{number}"))
    items = [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())]
    assert len(items) == QUEUE_LIMIT + 1
    lagged = items[-1]
    assert isinstance(lagged, LogStreamLagged)
    assert lagged.last_cursor == f"c{QUEUE_LIMIT - 1}"


async def next_line(events: AsyncGenerator[LogEvent, None]) -> LogEntry:
    async with asyncio.timeout(15):
        event = await anext(events)
    assert isinstance(event, LogEntry), event
    return event


async def restart_loggy(control: ServiceControl) -> list[LogEntry]:
    """Restart the chatty unit while following its log; return what it wrote."""
    events = control.follow_logs(LOGGY, OPERATOR)
    try:
        first = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0)
        while control.followers.running == 0:
            await asyncio.sleep(0.01)
        await control.restart(LOGGY, OPERATOR)
        seen = [await asyncio.wait_for(first, 15)]
        while not any(entry.message.startswith("bad ") for entry in seen if isinstance(entry, LogEntry)):
            seen.append(await next_line(events))
    finally:
        await events.aclose()
    return [entry for entry in seen if isinstance(entry, LogEntry)]


async def test_follow_then_recent(control: ServiceControl) -> None:
    written = await restart_loggy(control)
    messages = [entry.message for entry in written]
    assert "started" in messages
    assert LONG_LINE in messages  # whole: -a keeps fields over 4 kB
    assert "bad \ufffd\ufffd bytes" in messages
    recent = await control.logs(LOGGY, 3, OPERATOR)
    assert [entry.message for entry in recent] == ["started", LONG_LINE, "bad \ufffd\ufffd bytes"]
    assert all(entry.pid for entry in recent)
    assert len(await control.logs(LOGGY, 10_000, OPERATOR)) <= 500
    assert await control.logs(LOGGY, -5, OPERATOR) == []
    assert control.followers.running == 0  # the follower ended with its last subscriber


async def test_one_follower_process_is_shared(control: ServiceControl) -> None:
    runner = control.systemctl._runner
    streams = [control.follow_logs(LOGGY, OPERATOR) for _ in range(5)]
    pending = [asyncio.ensure_future(anext(stream)) for stream in streams]
    try:
        while control.followers.running == 0 or not all(
            len(f.subscribers) == 5 for f in control.followers._followers.values()
        ):
            await asyncio.sleep(0.01)
        before = runner.spawned
        await control.restart(LOGGY, OPERATOR)
        for future in pending:
            assert isinstance(await asyncio.wait_for(future, 15), LogEntry)
        assert control.followers.running == 1
        assert runner.spawned == before + 2  # the restart and its status read; no new follower
    finally:
        for stream in streams:
            await stream.aclose()
    assert control.followers.running == 0


async def test_resume_after_cursor_misses_nothing(control: ServiceControl) -> None:
    written = await restart_loggy(control)
    cursor = written[-1].cursor
    # While nobody follows, the unit writes more: two more runs, each waited for until it has
    # written all its lines. (A bare restart returns once systemd has forked the unit; a second
    # one could kill the first run before it wrote anything, and this test would then wait for
    # lines that never existed.)
    await restart_loggy(control)
    await restart_loggy(control)
    assert control.followers.running == 0
    events = control.follow_logs(LOGGY, OPERATOR, after_cursor=cursor)
    resumed: list[LogEntry] = []
    try:
        while sum(entry.message.startswith("bad ") for entry in resumed) < 2:
            resumed.append(await next_line(events))
    finally:
        await events.aclose()
    own = [
        entry.message
        for entry in resumed
        if entry.message in ("started", LONG_LINE) or entry.message.startswith("bad ")
    ]
    # Both runs' lines, in order, once each: no gap, no repeat.
    assert own == ["started", LONG_LINE, "bad \ufffd\ufffd bytes"] * 2
    assert cursor not in {entry.cursor for entry in resumed}
    assert len({entry.cursor for entry in resumed}) == len(resumed)


async def test_restart_failed_carries_the_reason(control: ServiceControl) -> None:
    with pytest.raises(RestartFailed) as failed:
        await control.restart(FAILING, OPERATOR)
    messages = [entry.message for entry in failed.value.recent_logs if isinstance(entry, LogEntry)]
    assert len(messages) <= 10
    assert "config test failed" in messages


@pytest.mark.parametrize(
    ("name", "actor", "error"),
    [
        (LOGGY, VIEWER, Forbidden),
        ("../etc", OPERATOR, ServiceNotAllowed),
        (MISSING, OPERATOR, ServiceNotFound),
    ],
)
async def test_log_refusals(control: ServiceControl, name: str, actor: Any, error: type[Exception]) -> None:
    spawned = control.systemctl._runner.spawned
    with pytest.raises(error):
        await control.logs(name, 5, actor)
    events = [event async for event in control.follow_logs(name, actor)]
    assert len(events) == 1
    assert isinstance(events[0], error)
    if error is not ServiceNotFound:
        assert control.systemctl._runner.spawned == spawned


async def test_bad_cursors(control: ServiceControl) -> None:
    spawned = control.systemctl._runner.spawned
    events = [event async for event in control.follow_logs(HEALTHY, OPERATOR, after_cursor="$(reboot)")]
    assert [type(event) for event in events] == [InvalidCursor]
    assert control.systemctl._runner.spawned == spawned
    well_formed_but_unknown = "s=0;i=1;b=2;m=3;t=4;x=5"
    events = [
        event async for event in control.follow_logs(HEALTHY, OPERATOR, after_cursor=well_formed_but_unknown)
    ]
    assert len(events) >= 1
    assert isinstance(events[-1], InvalidCursor | LogEntry)


async def test_journal_unavailable(make_control: MakeControl) -> None:
    control = make_control(journalctl_path="/nonexistent/journalctl")
    with pytest.raises(JournalUnavailable):
        await control.logs(HEALTHY, 5, OPERATOR)


async def test_log_reads_are_audited(
    make_control: MakeControl, sandbox: UserManagerSandbox, tmp_path: Any
) -> None:
    audit = tmp_path / "audit.log"
    control = make_control(audit_file=str(audit), journal_directory=str(sandbox.journal_directory))
    await control.logs(HEALTHY, 1, OPERATOR)
    with pytest.raises(Forbidden):
        await control.logs(HEALTHY, 1, VIEWER)
    lines = [json.loads(text) for text in audit.read_text().splitlines()]
    assert [(entry["action"], entry["outcome"], entry["role"]) for entry in lines] == [
        ("logs", "succeeded", "operator"),
        ("logs", "forbidden", "viewer"),
    ]
