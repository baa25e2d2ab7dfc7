"""Status queries from the watcher's signal-kept snapshot, against real systemd: never stale,
nearly free, and back on the wrapper the moment the bus is gone."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import OPERATOR, bearer, sandbox_settings, started_unit, wait_until
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.server.app import build_control, create_app
from unitgate.services.live.snapshot import Mode
from unitgate.services.policy.control import ServiceControl
from unitgate.services.systemd.bus import SystemdSignals
from unitgate.services.systemd.status import UnitStatus

KILLED = "php8.1-fpm"  # allowlisted, and no other test's
UNIT = (
    "[Unit]\nDescription=Test service killed over and over\nStartLimitIntervalSec=0\n"
    "[Service]\nExecStart=/bin/sleep infinity\nRestart=always\nRestartSec=0\n"
)
QUERY = f'{{ service(name: "{KILLED}") {{ ... on ServiceStatus {{ mainPid activeState memoryBytes }} }} }}'


@pytest.fixture(scope="module")
def killed_unit(sandbox: UserManagerSandbox) -> Iterator[None]:
    with started_unit(sandbox, KILLED, UNIT):
        yield


@pytest.fixture
async def app_control(sandbox: UserManagerSandbox, killed_unit: None) -> AsyncIterator[ServiceControl]:
    control = build_control(sandbox_settings(journal_directory=str(sandbox.journal_directory)), sandbox.env)
    try:
        yield control
    finally:
        await control.aclose()


@pytest.fixture
async def client(app_control: ServiceControl) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(sandbox_settings(), app_control)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost", headers=bearer(), timeout=30
    ) as made:
        yield made


async def status(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": QUERY})
    return dict(response.json()["data"]["service"])


async def running_again(control: ServiceControl, old: int) -> int:
    """Wait, through the watcher's own events, for the unit to run a new main process."""
    events = control.status_events([KILLED], OPERATOR)
    try:
        async with asyncio.timeout(15):
            async for event in events:
                assert isinstance(event, UnitStatus)
                if event.active_state == "active" and event.main_pid not in (None, old):
                    return int(event.main_pid)
    finally:
        await events.aclose()
    raise AssertionError("the stream ended")


async def test_a_query_right_after_a_sigkill_never_returns_the_old_pid(
    client: httpx.AsyncClient, app_control: ServiceControl
) -> None:
    pid = (await status(client))["mainPid"]
    for _ in range(200):
        os.kill(pid, signal.SIGKILL)
        after = await status(client)
        assert after["mainPid"] != pid, after
        pid = await running_again(app_control, pid)
    assert app_control.watcher.mode is Mode.EVENTS  # answered by the snapshot, not by polling


async def test_a_thousand_unchanged_queries_cost_one_read_plus_memory_refreshes(
    client: httpx.AsyncClient, app_control: ServiceControl
) -> None:
    runner = app_control.runner
    before = runner.spawned
    start = time.monotonic()
    answers = [await status(client) for _ in range(1000)]
    elapsed = time.monotonic() - start
    assert {(answer["mainPid"], answer["activeState"]) for answer in answers} == {
        (answers[0]["mainPid"], "active")
    }
    refreshes = math.ceil(elapsed / sandbox_settings().memory_max_age)
    assert runner.spawned - before <= 1 + refreshes, (runner.spawned - before, elapsed)
    assert app_control.watcher.watchers == 0
    assert app_control.watcher.running  # kept by the queries alone


async def test_a_lost_bus_falls_back_to_the_wrapper_at_once(
    client: httpx.AsyncClient, app_control: ServiceControl, sandbox: UserManagerSandbox
) -> None:
    pid = (await status(client))["mainPid"]
    signals = app_control.watcher._signals
    assert isinstance(signals, SystemdSignals)
    assert signals._bus is not None
    assert app_control.watcher.mode is Mode.EVENTS
    signals._bus.disconnect()  # what a dbus-daemon restart looks like from here
    # Its signals can no longer arrive: only a read through the wrapper can see this restart.
    await asyncio.to_thread(sandbox.systemctl, "restart", f"{KILLED}.service")
    runner = app_control.runner
    before = runner.spawned
    after = await status(client)
    assert after["mainPid"] not in (pid, None)
    assert runner.spawned == before + 1
    await asyncio.to_thread(wait_until, lambda: not app_control.watcher.running)  # polls for nobody


async def test_dbus_events_off_reads_through_the_wrapper_every_time(
    sandbox: UserManagerSandbox, killed_unit: None
) -> None:
    control = build_control(sandbox_settings(dbus_events=False), sandbox.env)
    try:
        before = control.runner.spawned
        for _ in range(3):
            await control.get(KILLED, OPERATOR)
        assert control.runner.spawned == before + 3
        assert not control.watcher.running
    finally:
        await control.aclose()


async def test_the_bus_is_let_go_idle_after_the_last_query(
    sandbox: UserManagerSandbox, killed_unit: None
) -> None:
    control = build_control(sandbox_settings(idle_after=0.5), sandbox.env)
    try:
        await control.get(KILLED, OPERATOR)  # connects, and keeps the bus for idle_after
        events = control.status_events([KILLED], OPERATOR)
        await anext(events)
        await events.aclose()  # the last subscriber leaves while the query's lease holds
        assert control.watcher.running
        await asyncio.to_thread(wait_until, lambda: not control.watcher.running, 5)
        assert str(control.watcher.mode) == "idle"
        before = control.runner.spawned
        await control.get(KILLED, OPERATOR)  # and a query brings it back
        assert str(control.watcher.mode) == "events"
        assert control.runner.spawned == before + 1
    finally:
        await control.aclose()


async def test_an_allowlisted_alias_is_never_answered_stale(sandbox: UserManagerSandbox) -> None:
    """systemd signals a unit on its own object path only: with just `mysql` allowlisted, an
    alias of another unit, the watcher must learn to listen there, or a restart would go unseen
    until memory_max_age."""
    body = "[Service]\nExecStart=/bin/sleep infinity\n"
    with started_unit(sandbox, "php8.0-fpm", body):
        alias = sandbox.unit_dir / "mysql.service"
        alias.symlink_to(sandbox.unit_dir / "php8.0-fpm.service")
        sandbox.systemctl("daemon-reload")
        settings = sandbox_settings(allowlist=["mysql"], memory_max_age=3600.0)
        control = build_control(settings, sandbox.env)
        try:
            assert (await control.get("mysql", OPERATOR)).unit_id == "php8.0-fpm.service"
            for _ in range(3):
                # A start kills no process: only the unit's signal can say the snapshot is old.
                await asyncio.to_thread(sandbox.systemctl, "stop", "php8.0-fpm.service")
                assert (await control.get("mysql", OPERATOR)).active_state == "inactive"
                await asyncio.to_thread(sandbox.systemctl, "start", "php8.0-fpm.service")
                assert (await control.get("mysql", OPERATOR)).active_state == "active"
            assert str(control.watcher.mode) == "events"
        finally:
            await control.aclose()
            alias.unlink()
            sandbox.systemctl("daemon-reload")


async def test_the_checks_before_an_action_read_nothing_when_only_memory_is_old(
    sandbox: UserManagerSandbox, killed_unit: None
) -> None:
    """memory_max_age is for memory and CPU, which have no signal. Whether a unit is installed,
    which unit it is and whether it can reload have signals: the checks before an action, logs
    or history take a snapshot of any age the bus vouches for. (A restart after a quiet spell
    cost two reads, one before it for nothing; the benchmark's 5,000 dashboards saw it.)"""
    max_age = 0.2
    control = build_control(sandbox_settings(memory_max_age=max_age), sandbox.env)
    events = control.status_events([KILLED], OPERATOR)
    try:
        await anext(events)  # a subscriber: the watcher runs, on the bus
        snapshot = control.watcher.store.latest
        await asyncio.sleep(snapshot.read_at + 2 * max_age - time.monotonic())  # the clock, not a guess
        reads, spawned = control.watcher.reads, control.runner.spawned
        status = await control.reads.installed(KILLED)
        assert (status.unit_id, status.installed) == (f"{KILLED}.service", True)
        assert (control.watcher.reads, control.runner.spawned) == (reads, spawned)
        # What shows memory reads again: the snapshot was that old.
        await control.reads.statuses([KILLED])
        assert control.watcher.reads == reads + 1
    finally:
        await events.aclose()
        await control.aclose()
