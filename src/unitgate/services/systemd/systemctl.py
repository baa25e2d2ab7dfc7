"""The allowlisted wrapper around systemctl: every call checks names first, then runs one process."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from unitgate.services.errors import (
    ActionFailed,
    ReloadFailed,
    RestartFailed,
    ServiceNotFound,
    StartFailed,
    StopFailed,
    SystemdUnavailable,
)
from unitgate.services.systemd.allowlist import Allowlist
from unitgate.services.systemd.route import RestartVia
from unitgate.services.systemd.runner import CompletedCommand, ProcessRunner, service_errors
from unitgate.services.systemd.status import (
    SHOW_PROPERTIES,
    ClockReading,
    UnitStatus,
    parse_show_output,
)
from unitgate.services.systemd.units import Scope, UnitVerb, unit_for

_MESSAGE_CAP = 2000


_FAILURES: dict[UnitVerb, type[ActionFailed]] = {
    UnitVerb.RESTART: RestartFailed,
    UnitVerb.RELOAD: ReloadFailed,
    UnitVerb.START: StartFailed,
    UnitVerb.STOP: StopFailed,
}


@dataclass(frozen=True, slots=True)
class SystemctlOptions:
    scope: Scope = Scope.SYSTEM
    systemctl_path: str = "/usr/bin/systemctl"
    sudo_path: str = "/usr/bin/sudo"
    status_timeout: float = 5.0
    action_timeout: float = 30.0


def systemctl_environment(scope: Scope, inherited: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment a child gets: C locale, UTC, no pager, no colour, no prompts."""
    source = os.environ if inherited is None else inherited
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C",
        "LANG": "C",
        "TZ": "UTC",
        "SYSTEMD_PAGER": "",
        "PAGER": "cat",
        "SYSTEMD_COLORS": "0",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    if scope is Scope.USER:
        # The user manager is found through these; nothing else of the caller's leaks through.
        for key in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"):
            if source.get(key):
                env[key] = source[key]
    return env


class Systemctl:
    def __init__(
        self,
        allowlist: Allowlist,
        runner: ProcessRunner,
        options: SystemctlOptions,
        route: RestartVia = RestartVia.DIRECT,
    ) -> None:
        """`route` is how actions get their privilege: route.choose_route decides it."""
        self.allowlist = allowlist
        self.options = options
        self._runner = runner
        self._restart_via = route

    @property
    def restart_via(self) -> RestartVia:
        return self._restart_via

    def _argv(self, *args: str) -> list[str]:
        argv = [self.options.systemctl_path]
        if self.options.scope is Scope.USER:
            argv.append("--user")
        argv.extend(args)
        return argv

    async def show(self, names: Sequence[str]) -> list[UnitStatus]:
        """Status of every name, in order, from a single `systemctl show`."""
        checked = [self.allowlist.require(name) for name in names]
        if not checked:
            return []
        argv = self._argv(
            "show", "--no-pager", f"--property={','.join(SHOW_PROPERTIES)}", *map(unit_for, checked)
        )
        result = await self._run(argv, "show", self.options.status_timeout)
        clock = ClockReading(realtime=time.time(), monotonic=time.monotonic())
        if result.returncode != 0:
            raise SystemdUnavailable(_first_line(result) or f"systemctl exited {result.returncode}")
        return parse_show_output(result.stdout.decode("utf-8", "replace"), checked, clock)

    async def act(self, verb: UnitVerb, name: str) -> UnitStatus:
        """Restart or reload one unit and return its status once systemd reports the job done."""
        checked = self.allowlist.require(name)
        unit = unit_for(checked)
        if self._restart_via is RestartVia.SUDO:
            # Exactly the command line the generated sudoers rule allows, nothing more.
            argv = [self.options.sudo_path, "-n", self.options.systemctl_path]
            if self.options.scope is Scope.USER:
                argv.append("--user")
            argv += [str(verb), unit]
        else:
            argv = self._argv("--no-ask-password", str(verb), unit)
        result = await self._run(argv, str(verb), self.options.action_timeout)
        # One look decides both "what went wrong" and "what is it now".
        (status,) = await self.show([checked])
        if not status.installed:
            raise ServiceNotFound(checked)
        if result.returncode != 0:
            raise _FAILURES[verb](checked, result.returncode, _message(result))
        if left_down(verb, status):
            # systemd finished the job, and the unit is dead all the same (a reload that killed
            # its main process, say): that is no success to show on a dashboard.
            detail = f"systemctl finished, but the unit is {status.active_state} ({status.sub_state})"
            raise _FAILURES[verb](checked, result.returncode, detail)
        return status

    async def manager_version(self) -> str:
        """The manager's version; proves that systemctl runs and a manager answers."""
        result = await self._run(
            self._argv("show", "--no-pager", "--property=Version"),
            "show",
            self.options.status_timeout,
        )
        if result.returncode != 0:
            raise SystemdUnavailable(_first_line(result) or f"systemctl exited {result.returncode}")
        return result.stdout.decode("utf-8", "replace").strip().removeprefix("Version=")

    async def _run(self, argv: list[str], verb: str, timeout: float) -> CompletedCommand:
        with service_errors(f"systemctl {verb}", SystemdUnavailable):
            return await self._runner.run(argv, timeout=timeout)


def left_down(verb: UnitVerb, status: UnitStatus) -> bool:
    """Whether an action that should leave the unit running left it inactive or failed."""
    return verb is not UnitVerb.STOP and status.active_state in ("inactive", "failed")


def _first_line(result: CompletedCommand) -> str:
    text = result.stderr.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:_MESSAGE_CAP] if text else ""


def _message(result: CompletedCommand) -> str:
    text = (
        result.stderr.decode("utf-8", "replace").strip() or result.stdout.decode("utf-8", "replace").strip()
    )
    return text[:_MESSAGE_CAP] or f"systemctl exited {result.returncode}"
