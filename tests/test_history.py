"""serviceHistory against the sandbox's real journal: a SIGKILL, the automatic restart that
follows, a failed start, a reload and an action by a named token each appear once, in order, with
who asked; and a viewer sees history only where its token reaches."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import OPERATOR, started_unit, wait_until
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.errors import ServiceNotAllowed
from unitgate.services.policy.access import Role, scoped_actor
from unitgate.services.policy.control import ServiceControl
from unitgate.services.systemd.history import EventKind
from unitgate.services.systemd.units import UnitVerb

HISTORIC = "php7.4-fpm"  # allowlisted, and no other test's
UNIT = (
    "[Unit]\nDescription=Test pool with a history\nStartLimitIntervalSec=0\n"
    "[Service]\nExecStart=/bin/sleep infinity\nExecReload=/bin/true\nRestart=on-failure\nRestartSec=100ms\n"
)


async def after_its_start(control: ServiceControl) -> datetime:
    """Just after the unit's start as the journal has it: journald receives the manager's
    "Started" a moment after `systemctl start` returns, so a clock read then may precede it."""
    deadline = time.monotonic() + 10
    while True:
        newest = (await control.history(HISTORIC, None, 1, OPERATOR)).events
        if newest and newest[0].kind is EventKind.STARTED:
            return newest[0].time + timedelta(microseconds=1)
        assert time.monotonic() < deadline, "the start never reached the journal"
        await asyncio.sleep(0.02)  # journald is another process: nothing to await but its files


def main_pid(sandbox: UserManagerSandbox) -> int:
    return int(sandbox.show(f"{HISTORIC}.service", "MainPID")["MainPID"])


async def test_a_units_life_in_order(
    sandbox: UserManagerSandbox, make_control: Callable[..., ServiceControl], tmp_path: Path
) -> None:
    control = make_control(audit_file=str(tmp_path / "audit.log"))
    with started_unit(sandbox, HISTORIC, UNIT):
        since = await after_its_start(control)
        await control.act(UnitVerb.RELOAD, HISTORIC, OPERATOR)
        killed = main_pid(sandbox)
        os.kill(killed, signal.SIGKILL)
        await asyncio.to_thread(wait_until, lambda: main_pid(sandbox) not in (0, killed))
        broken = sandbox.unit_dir / f"{HISTORIC}.service.d"
        broken.mkdir()
        (broken / "broken.conf").write_text("[Service]\nExecStartPre=/bin/false\nRestart=no\n")
        sandbox.systemctl("daemon-reload")
        sandbox.systemctl("restart", f"{HISTORIC}.service", check=False)
        history = await control.history(HISTORIC, since, 100, OPERATOR)
        (broken / "broken.conf").unlink()
        broken.rmdir()
    oldest_first = list(reversed(history.events))
    assert [event.kind for event in oldest_first] == [
        # A reload asked by a named token, and systemd's record of it.
        EventKind.ACTION,
        EventKind.RELOADING,
        EventKind.RELOADED,
        # The SIGKILL, and the automatic restart that followed it.
        EventKind.PROCESS_EXITED,
        EventKind.FAILED,
        EventKind.RESTART_SCHEDULED,
        EventKind.STOPPED,
        EventKind.STARTED,
        # A restart whose start failed (its ExecStartPre exits 1).
        EventKind.STOPPING,
        EventKind.STOPPED,
        EventKind.STARTING,
        EventKind.PROCESS_EXITED,
        EventKind.FAILED,
        EventKind.START_FAILED,
    ]
    action, kill, failure, scheduled, failed_start = (oldest_first[i] for i in (0, 3, 4, 5, 12))
    assert (action.actor, action.action, action.outcome) == ("test-operator", "reload", "succeeded")
    assert (kill.signal, kill.exit_code) == (9, None)
    assert failure.result == "signal"
    assert scheduled.restarts == 1
    assert (failed_start.result, oldest_first[11].exit_code) == ("exit-code", 1)
    assert [event.time for event in oldest_first] == sorted(event.time for event in oldest_first)
    assert history.complete
    assert history.journal_start is not None
    assert history.journal_start <= since


async def test_the_limit_keeps_the_newest_and_says_the_rest_is_cut(
    sandbox: UserManagerSandbox, make_control: Callable[..., ServiceControl], tmp_path: Path
) -> None:
    control = make_control(audit_file=str(tmp_path / "audit.log"))
    with started_unit(sandbox, HISTORIC, UNIT):
        since = await after_its_start(control)
        for _ in range(3):
            await control.act(UnitVerb.RELOAD, HISTORIC, OPERATOR)
        whole = await control.history(HISTORIC, since, 100, OPERATOR)
        cut = await control.history(HISTORIC, since, 4, OPERATOR)
        later = await control.history(HISTORIC, datetime.now(UTC), 100, OPERATOR)
    assert len(whole.events) == 9  # three actions, each with its reloading and reloaded
    assert whole.complete
    assert cut.events == whole.events[:4]
    assert not cut.complete
    assert later.events == ()
    assert later.complete


async def test_nothing_runs_for_a_name_outside_the_allowlist(
    make_control: Callable[..., ServiceControl],
) -> None:
    control = make_control()
    spawned = control.runner.spawned
    with pytest.raises(ServiceNotAllowed):
        await control.history("../../etc/passwd", None, 10, OPERATOR)
    with pytest.raises(ServiceNotAllowed):
        await control.history("nginx", None, 10, scoped_actor("php", Role.VIEWER, None, (), ("fail2ban",)))
    assert control.runner.spawned == spawned
