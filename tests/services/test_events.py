"""Event-driven status: systemd's D-Bus signals, the polling fallback, and shared reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import pytest

from tests.helpers import OPERATOR, sandbox_settings
from tests.units import CRASHY, HEALTHY, STARTED, UNITS
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.server.app import build_control
from unitgate.services.live.snapshot import Mode
from unitgate.services.policy.control import ServiceControl, StatusEvent
from unitgate.services.systemd.allowlist import DEFAULT_ALLOWLIST
from unitgate.services.systemd.bus import SystemdSignals, bus_address, unit_object_path
from unitgate.services.systemd.bus_sync import BusUnavailable
from unitgate.services.systemd.status import UnitStatus
from unitgate.services.systemd.units import Scope

pytestmark = pytest.mark.timeout(60)
MakeControl = Callable[..., ServiceControl]


def mode_of(control: ServiceControl) -> Mode:
    """Read afresh each time: the watcher moves between modes while a test awaits."""
    return control.watcher.mode


async def next_status(events: AsyncGenerator[StatusEvent, None], timeout: float = 10) -> UnitStatus:
    async with asyncio.timeout(timeout):
        event = await anext(events)
    assert isinstance(event, UnitStatus), event
    return event


def test_object_paths_are_systemds(sandbox: UserManagerSandbox) -> None:
    for unit in ("nginx.service", "php8.2-fpm.service", "postfix.service"):
        path = sandbox.systemctl("show", "--property=Id", unit).stdout  # loads the unit
        assert path
        introspect = sandbox_busctl(sandbox, "introspect", "org.freedesktop.systemd1", unit_object_path(unit))
        assert "org.freedesktop.systemd1.Unit" in introspect


def sandbox_busctl(sandbox: UserManagerSandbox, *args: str) -> str:
    import os
    import subprocess

    return subprocess.run(
        ["busctl", "--user", "--no-pager", *args],
        env={**os.environ, **sandbox.env},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


async def test_signals_arrive_for_allowlisted_units_only(sandbox: UserManagerSandbox) -> None:
    signals = SystemdSignals(Scope.USER, bus_address(Scope.USER, sandbox.env), [HEALTHY])
    changed: asyncio.Queue[str | None] = asyncio.Queue()
    await signals.connect(changed.put_nowait)
    try:
        await asyncio.to_thread(sandbox.systemctl, "restart", f"{CRASHY}.service")
        await asyncio.to_thread(sandbox.systemctl, "restart", f"{HEALTHY}.service")
        async with asyncio.timeout(10):
            assert await changed.get() == HEALTHY  # postfix's signals were never delivered
    finally:
        await signals.close()


async def test_unreachable_bus() -> None:
    signals = SystemdSignals(Scope.USER, "unix:path=/nonexistent/bus", DEFAULT_ALLOWLIST)
    with pytest.raises(BusUnavailable, match="/nonexistent/bus"):
        await signals.connect(lambda name: None)
    with pytest.raises(BusUnavailable, match="no user bus"):
        await SystemdSignals(Scope.USER, None, DEFAULT_ALLOWLIST).connect(lambda name: None)


async def test_kill_is_seen_through_signals_not_polling(
    control: ServiceControl, sandbox: UserManagerSandbox
) -> None:
    assert control.watcher.timings.poll_interval == 3600
    events = control.status_events([CRASHY], OPERATOR)
    try:
        snapshot = await next_status(events)
        while not snapshot.active or snapshot.main_pid is None:
            snapshot = await next_status(events)
        assert control.watcher.mode is Mode.EVENTS
        reads = control.watcher.reads
        sandbox.systemctl("kill", "--kill-whom=main", "--signal=SIGKILL", f"{CRASHY}.service")
        change = await next_status(events)
        assert change.main_pid != snapshot.main_pid
        assert control.watcher.reads > reads
    finally:
        await events.aclose()


async def test_no_bus_falls_back_to_polling_and_says_so(
    make_control: MakeControl, sandbox: UserManagerSandbox, tmp_path: Path
) -> None:
    # The manager is reachable (systemctl uses its private socket) but there is no bus.
    control = make_control(
        environ={**sandbox.env, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/nobus"}, poll_interval=0.1
    )
    events = control.status_events([HEALTHY], OPERATOR)
    try:
        snapshot = await next_status(events)
        assert control.watcher.mode is Mode.POLLING
        health = await control.health()
        assert health.watcher == "polling"
        assert "nobus" in health.watcher_detail
        sandbox.systemctl("restart", f"{HEALTHY}.service")  # not through the API: no refresh
        change = await next_status(events)
        assert change.main_pid != snapshot.main_pid
    finally:
        await events.aclose()
    assert (await control.health()).watcher == "idle"


async def test_watcher_returns_to_events_when_the_bus_comes_back() -> None:
    with UserManagerSandbox(UNITS, start=STARTED) as own:
        settings = sandbox_settings(bus_reconnect_interval=0.2)  # and polling every hour
        control = build_control(settings, own.env)
        events = control.status_events([HEALTHY], OPERATOR)
        try:
            await next_status(events)
            assert mode_of(control) is Mode.EVENTS
            own.systemctl("stop", "dbus.socket", "dbus.service")
            while mode_of(control) is not Mode.POLLING:
                await asyncio.sleep(0.01)
            own.systemctl("start", "dbus.socket")
            while mode_of(control) is not Mode.EVENTS:
                await asyncio.sleep(0.01)
            # Subscribed again on the new connection: signals flow, and nothing else could read.
            before = (await control.get(HEALTHY, OPERATOR)).main_pid
            await asyncio.to_thread(own.systemctl, "restart", f"{HEALTHY}.service")
            change = await next_status(events)
            while change.main_pid in (before, None):
                change = await next_status(events)
            assert control.watcher.mode is Mode.EVENTS
        finally:
            await events.aclose()
            await control.aclose()


async def test_concurrent_reads_share_one_process(control: ServiceControl) -> None:
    runner = control.systemctl._runner
    before = runner.spawned
    results = await asyncio.gather(*(control.list_installed(OPERATOR) for _ in range(64)))
    assert runner.spawned == before + 1
    assert all(result == results[0] for result in results)


async def test_restart_through_the_api_costs_one_read_for_all_subscribers(control: ServiceControl) -> None:
    streams = [control.status_events([HEALTHY], OPERATOR) for _ in range(50)]
    try:
        for stream in streams:
            await next_status(stream)
        reads = control.watcher.reads
        restarted = await control.restart(HEALTHY, OPERATOR)
        for stream in streams:
            change = await next_status(stream)
            assert change.main_pid == restarted.main_pid
        assert control.watcher.reads == reads + 1
    finally:
        for stream in streams:
            await stream.aclose()


async def test_memory_refreshes_on_its_own_interval(make_control: MakeControl) -> None:
    control = make_control(memory_interval=0.2)
    events = control.status_events([HEALTHY], OPERATOR)
    try:
        await next_status(events)
        reads = control.watcher.reads
        # No state change and no poll (an hour): only memory reads happen.
        while control.watcher.reads < reads + 2:
            await asyncio.sleep(0.05)
    finally:
        await events.aclose()
    after = control.watcher.reads
    await asyncio.sleep(0.5)
    assert control.watcher.reads == after  # and none once nobody watches
