"""Live status events from the shared watcher, against a real systemd user manager."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import pytest

from tests.helpers import OPERATOR
from tests.units import CRASHY, FAILING, HANGING, HEALTHY, LOGGY, MISSING
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.errors import ServiceNotAllowed, ServiceNotFound
from unitgate.services.policy.control import ServiceControl, StatusEvent
from unitgate.services.systemd.status import UnitStatus

pytestmark = pytest.mark.timeout(30)


async def next_status(events: AsyncGenerator[StatusEvent, None]) -> UnitStatus:
    async with asyncio.timeout(10):
        event = await anext(events)
    assert isinstance(event, UnitStatus), event
    return event


def assert_stopped_or_leased(control: ServiceControl) -> None:
    """The last subscriber gone, the watcher stops, unless a status query's lease keeps it: a
    restart's own look at the unit is such a query."""
    assert not control.watcher.running or control.watcher.lease_until > time.monotonic()


async def test_snapshot_then_event_after_restart(control: ServiceControl) -> None:
    events = control.status_events([HEALTHY], OPERATOR)
    try:
        snapshot = await next_status(events)
        assert snapshot.name == HEALTHY
        assert snapshot.active
        restarted = await control.restart(HEALTHY, OPERATOR)
        change = await next_status(events)
        while change.main_pid != restarted.main_pid:  # a read may land mid-restart
            change = await next_status(events)
        assert change.name == HEALTHY
    finally:
        await events.aclose()
    assert_stopped_or_leased(control)


async def test_event_after_main_process_is_killed(
    control: ServiceControl, sandbox: UserManagerSandbox
) -> None:
    events = control.status_events([CRASHY], OPERATOR)
    try:
        snapshot = await next_status(events)
        while not snapshot.active or snapshot.main_pid is None:
            snapshot = await next_status(events)  # still coming back from an earlier kill
        sandbox.systemctl("kill", "--kill-whom=main", "--signal=SIGKILL", f"{CRASHY}.service")
        change = await next_status(events)
        assert change.name == CRASHY
        assert (change.main_pid, change.active_state) != (snapshot.main_pid, snapshot.active_state)
    finally:
        await events.aclose()


async def test_no_names_follows_every_installed_service(control: ServiceControl) -> None:
    events = control.status_events(None, OPERATOR)
    try:
        names = [(await next_status(events)).name for _ in range(5)]
    finally:
        await events.aclose()
    assert names == sorted([CRASHY, HANGING, HEALTHY, FAILING, LOGGY])


@pytest.mark.parametrize(
    ("names", "error"),
    [([HEALTHY, MISSING], ServiceNotFound), ([HEALTHY, "nginx.service"], ServiceNotAllowed)],
)
async def test_bad_name_yields_its_error_and_ends(
    control: ServiceControl, names: list[str], error: type[Exception]
) -> None:
    events = [event async for event in control.status_events(names, OPERATOR)]
    assert len(events) == 1
    assert isinstance(events[0], error)
    assert not control.watcher.running


async def test_subscribers_share_one_watcher(control: ServiceControl) -> None:
    runner = control.systemctl._runner
    streams = [control.status_events([HEALTHY], OPERATOR) for _ in range(20)]
    try:
        for stream in streams:
            await next_status(stream)
        assert control.watcher.watchers == 20
        reads_before, spawned_before = control.watcher.reads, runner.spawned
        await control.restart(HEALTHY, OPERATOR)  # one restart + one status read for the restart itself
        for stream in streams:
            await next_status(stream)
        # Every subscriber got the change from the same reads: processes track reads, not subscribers.
        reads = control.watcher.reads - reads_before
        assert runner.spawned - spawned_before == 2 + reads
        assert reads <= 3
    finally:
        for stream in streams:
            await stream.aclose()
    assert control.watcher.watchers == 0
    assert_stopped_or_leased(control)


async def test_duplicate_names_are_followed_once(control: ServiceControl) -> None:
    events = control.status_events([HEALTHY, HEALTHY, HEALTHY], OPERATOR)
    try:
        first = await next_status(events)
        restarted = await control.restart(HEALTHY, OPERATOR)
        # The next event is a change, not the snapshot again for the repeated names.
        second = await next_status(events)
        assert second.change_key != first.change_key
        while second.main_pid != restarted.main_pid:
            second = await next_status(events)
    finally:
        await events.aclose()


async def test_empty_name_list_ends_at_once(control: ServiceControl) -> None:
    assert [event async for event in control.status_events([], OPERATOR)] == []
    assert control.systemctl._runner.spawned == 0
