"""The allowlisted systemctl wrapper against a real systemd user manager."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import HOSTILE_NAMES, OPERATOR, children
from tests.units import FAILING, HANGING, HEALTHY, MISSING
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.errors import (
    CommandTimeout,
    RestartFailed,
    ServiceNotAllowed,
    ServiceNotFound,
    SystemdUnavailable,
)
from unitgate.services.policy.control import ServiceControl
from unitgate.services.systemd.route import RestartVia
from unitgate.services.systemd.runner import ProcessRunner
from unitgate.services.systemd.systemctl import Systemctl, SystemctlOptions
from unitgate.services.systemd.units import Scope, UnitVerb

MakeControl = Callable[..., ServiceControl]


def spawned(control: ServiceControl) -> int:
    runner: ProcessRunner = control.systemctl._runner
    return runner.spawned


async def test_status_matches_systemctl_show(control: ServiceControl, sandbox: UserManagerSandbox) -> None:
    props = (
        "MainPID",
        "ActiveState",
        "SubState",
        "LoadState",
        "Description",
        "NRestarts",
        "UnitFileState",
        "MemoryCurrent",
        "ActiveEnterTimestamp",
    )
    before = sandbox.show(f"{HEALTHY}.service", *props)
    status = await control.get(HEALTHY, OPERATOR)
    after = sandbox.show(f"{HEALTHY}.service", *props)
    unix = sandbox.systemctl(
        "show", "--timestamp=unix", "--property=ActiveEnterTimestamp", f"{HEALTHY}.service"
    ).stdout.strip()

    assert status.name == HEALTHY
    assert status.main_pid == int(before["MainPID"]) == int(after["MainPID"])
    assert status.active_state == before["ActiveState"] == "active"
    assert status.active
    assert status.sub_state == before["SubState"]
    assert status.load_state == before["LoadState"]
    assert status.description == before["Description"] == "Test web server"
    assert status.restart_count == int(before["NRestarts"])
    assert status.unit_file_state == before["UnitFileState"]
    low, high = sorted((int(before["MemoryCurrent"]), int(after["MemoryCurrent"])))
    assert status.memory_bytes is not None
    assert low <= status.memory_bytes <= high
    assert status.active_since == datetime.fromtimestamp(
        int(unix.removeprefix("ActiveEnterTimestamp=@")), UTC
    )
    uptime = status.uptime_seconds(datetime.now(UTC))
    assert uptime is not None
    assert uptime >= 0


async def test_failed_unit_status(control: ServiceControl, sandbox: UserManagerSandbox) -> None:
    status = await control.get(FAILING, OPERATOR)
    assert (status.active_state, status.sub_state) == ("failed", "failed")
    assert not status.active
    assert status.main_pid is None
    assert status.active_since is None
    assert status.uptime_seconds(datetime.now(UTC)) is None


async def test_list_reads_every_unit_in_one_process(control: ServiceControl) -> None:
    before = spawned(control)
    statuses = await control.list_installed(OPERATOR)
    assert spawned(control) == before + 1
    names = [status.name for status in statuses]
    assert names == sorted(names)
    assert {HEALTHY, FAILING, HANGING} <= set(names)
    assert MISSING not in names  # allowlisted, but not installed


async def test_not_installed_is_not_found(control: ServiceControl) -> None:
    with pytest.raises(ServiceNotFound):
        await control.get(MISSING, OPERATOR)
    with pytest.raises(ServiceNotFound):
        await control.restart(MISSING, OPERATOR)


async def test_restart_changes_main_pid(control: ServiceControl) -> None:
    before = await control.get(HEALTHY, OPERATOR)
    after = await control.restart(HEALTHY, OPERATOR)
    assert after.active_state == "active"
    assert after.main_pid is not None
    assert after.main_pid != before.main_pid
    assert (await control.get(HEALTHY, OPERATOR)).main_pid == after.main_pid


async def test_failing_restart_reports_systemctl_exit_code_and_message(control: ServiceControl) -> None:
    with pytest.raises(RestartFailed) as failed:
        await control.restart(FAILING, OPERATOR)
    assert failed.value.exit_code == 1
    assert "php8.2-fpm.service failed" in failed.value.detail


async def test_hanging_restart_times_out_and_is_reaped(
    make_control: MakeControl, sandbox: UserManagerSandbox
) -> None:
    control = make_control(action_timeout=0.5)
    before = children()
    try:
        with pytest.raises(CommandTimeout) as timed_out:
            await control.restart(HANGING, OPERATOR)
        assert timed_out.value.timeout_seconds == 0.5
        assert timed_out.value.command == "systemctl restart"
        assert children() == before
    finally:
        sandbox.systemctl("stop", f"{HANGING}.service")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_names_start_no_process(
    name: str, control: ServiceControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []

    async def forbidden(*args: Any, **kwargs: Any) -> None:
        started.append(args)
        raise AssertionError("a process was started for a name that is not allowed")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", forbidden)
    with pytest.raises(ServiceNotAllowed):
        await control.get(name, OPERATOR)
    with pytest.raises(ServiceNotAllowed):
        await control.restart(name, OPERATOR)
    with pytest.raises(ServiceNotAllowed):
        await control.systemctl.show(["nginx", name])
    events = [event async for event in control.status_events(["nginx", name], OPERATOR)]
    assert len(events) == 1
    assert isinstance(events[0], ServiceNotAllowed)
    assert started == []
    assert spawned(control) == 0
    assert not control.watcher.running


async def test_missing_systemctl_is_unavailable(make_control: MakeControl) -> None:
    control = make_control(systemctl_path="/nonexistent/systemctl")
    with pytest.raises(SystemdUnavailable, match="/nonexistent/systemctl"):
        await control.list_installed(OPERATOR)
    assert not (await control.health()).ok


async def test_no_manager_is_unavailable(make_control: MakeControl, tmp_path: Path) -> None:
    empty = tmp_path / "run"
    empty.mkdir(mode=0o700)
    control = make_control(environ={"XDG_RUNTIME_DIR": str(empty)})
    with pytest.raises(SystemdUnavailable):
        await control.get(HEALTHY, OPERATOR)
    with pytest.raises(SystemdUnavailable):
        await control.restart(HEALTHY, OPERATOR)
    health = await control.health()
    assert not health.ok


async def test_health_names_the_manager(control: ServiceControl) -> None:
    health = await control.health()
    assert health.ok
    assert health.detail.startswith("systemd 2")


class RecordingRunner(ProcessRunner):
    """Records argv and runs the real command, so the sudo line can be checked without sudo."""

    def __init__(self) -> None:
        super().__init__({"PATH": "/usr/bin:/bin"})
        self.argvs: list[list[str]] = []

    async def run(self, argv: Any, *, timeout: float) -> Any:
        self.argvs.append(list(argv))
        return await super().run(["/bin/true"] if argv[0] == "/usr/bin/sudo" else argv, timeout=timeout)


async def test_sudo_restart_runs_exactly_the_sudoers_command_line(make_control: MakeControl) -> None:
    control = make_control()
    runner = RecordingRunner()
    wrapper = Systemctl(control.allowlist, runner, SystemctlOptions(scope=Scope.USER), RestartVia.SUDO)
    with pytest.raises(SystemdUnavailable):  # the recorded `show` reaches no manager: no env given
        await wrapper.act(UnitVerb.RESTART, HEALTHY)
    assert runner.argvs[0] == [
        "/usr/bin/sudo",
        "-n",
        "/usr/bin/systemctl",
        "--user",
        "restart",
        "nginx.service",
    ]


async def test_polkit_restart_runs_systemctl_without_sudo_or_prompt(make_control: MakeControl) -> None:
    control = make_control()
    runner = RecordingRunner()
    options = SystemctlOptions(scope=Scope.SYSTEM)
    with pytest.raises(SystemdUnavailable):
        await Systemctl(control.allowlist, runner, options, RestartVia.POLKIT).act(UnitVerb.RESTART, HEALTHY)
    assert runner.argvs[0] == ["/usr/bin/systemctl", "--no-ask-password", "restart", "nginx.service"]
