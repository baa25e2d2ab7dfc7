"""The typed failures of the services layer; each maps to one GraphQL type (schema/errors.py).

UnitgateError                   str(error) is safe to show to a client
├── ServiceNotAllowed           the name is not exactly an allowlisted name; nothing ran
├── ServiceNotFound             allowlisted, but systemd has no such unit
├── CommandTimeout              systemctl or journalctl did not answer in time; it was killed
├── SystemdUnavailable          systemctl is missing, or no manager answers
├── ServerBusy                  every process slot is taken and the queue for them is full
├── JournalUnavailable          journalctl is missing, or cannot read the journal
├── InvalidCursor               a journal cursor that the journal did not give
├── LogStreamLagged             a log follower fell behind and was ended
├── ActionFailed                systemctl restart/reload/start/stop exited non-zero
│   ├── RestartFailed
│   ├── ReloadFailed
│   ├── StartFailed
│   └── StopFailed
├── ActionNotEnabled            the server does not offer this action; nothing ran
├── ReloadNotSupported          the unit says CanReload=no; nothing ran
├── Forbidden                   the caller's role may not do this; nothing ran
├── ActionInProgress            an action on this service is already running; nothing ran
├── RateLimited                 too many actions on this service lately; nothing ran
├── InstanceNotFound            no such instance (or none the caller reaches); nothing ran
└── InstanceOffline             the instance's agent is not connected; nothing ran
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: logs.py raises InvalidCursor from here
    from unitgate.services.systemd.log_entry import LogEntry


class UnitgateError(Exception):
    """Base of every failure a client may see; `str(error)` is safe to show to it."""


def _shorten(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class ServiceNotAllowed(UnitgateError):
    def __init__(self, name: str) -> None:
        self.name = name
        # The name is hostile input: never echo it raw (it may hold control characters or 10 kB).
        super().__init__(f"service {_shorten(name)!r} is not in the allowlist")


class ServiceNotFound(UnitgateError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"service {name!r} is not installed")


class CommandTimeout(UnitgateError):
    """`command` names what timed out as it ran: "systemctl show", "systemctl restart", "journalctl"."""

    def __init__(self, command: str, timeout_seconds: float) -> None:
        self.command = command
        self.timeout_seconds = timeout_seconds
        super().__init__(f"{command} did not answer within {timeout_seconds:g} s")


class SystemdUnavailable(UnitgateError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"systemd is unavailable: {reason}")


class ServerBusy(UnitgateError):
    """Too many systemctl and journalctl processes run or wait already; nothing new started."""

    def __init__(self, retry_after_seconds: float) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(f"unitgate is busy; retry in {retry_after_seconds:.0f} s")


class JournalUnavailable(UnitgateError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the journal is unavailable: {reason}")


class InvalidCursor(UnitgateError):
    def __init__(self) -> None:
        super().__init__("the cursor is not one the journal gave")


class LogStreamLagged(UnitgateError):
    """A log follower fell too far behind; it resumes without a gap from `last_cursor`."""

    def __init__(self, last_cursor: str | None) -> None:
        self.last_cursor = last_cursor
        super().__init__("the log stream fell behind; subscribe again with afterCursor set to lastCursor")


class ActionFailed(UnitgateError):
    """systemctl restart/reload exited non-zero; `recent_logs` says why, when the journal could."""

    verb = "action"

    def __init__(self, name: str, exit_code: int, detail: str, recent_logs: Sequence[LogEntry] = ()) -> None:
        self.name = name
        self.exit_code = exit_code
        self.detail = detail
        self.recent_logs: tuple[LogEntry, ...] = tuple(recent_logs)
        super().__init__(f"{self.verb} of {name!r} failed (exit code {exit_code}): {detail}")

    def with_logs(self, recent_logs: Sequence[LogEntry]) -> ActionFailed:
        """The same failure, carrying the unit's last journal lines."""
        return type(self)(self.name, self.exit_code, self.detail, recent_logs)


class RestartFailed(ActionFailed):
    verb = "restart"


class ReloadFailed(ActionFailed):
    verb = "reload"


class StartFailed(ActionFailed):
    verb = "start"


class StopFailed(ActionFailed):
    verb = "stop"


class ActionNotEnabled(UnitgateError):
    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(f"this server does not offer {action} (it is not in its `actions`)")


class ReloadNotSupported(UnitgateError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"service {name!r} does not support reload (CanReload=no)")


class Forbidden(UnitgateError):
    """`action` is a verb (restart, reload, start, stop) or "logs"; `token` is named when the
    token's scope, not its role, is what refuses."""

    def __init__(self, role: str, action: str, token: str | None = None) -> None:
        self.role = role
        self.action = action
        self.token = token
        who = f"the {role} role" if token is None else f"the {role} token {token!r}"
        what = "read service logs" if action == "logs" else f"{action} services"
        super().__init__(f"{who} may not {what}")


class ActionInProgress(UnitgateError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"an action on {name!r} is already in progress")


class RateLimited(UnitgateError):
    def __init__(self, name: str, retry_after_seconds: float) -> None:
        self.name = name
        self.retry_after_seconds = retry_after_seconds
        super().__init__(f"too many actions on {name!r}; retry in {retry_after_seconds:.0f} s")


class InstanceNotFound(UnitgateError):
    """No instance by this name; one outside the caller's scope answers the same."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        super().__init__(f"instance {_shorten(instance)!r} is not known here")


class InstanceOffline(UnitgateError):
    """The instance is known, and its agent is not connected now: nobody answered."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        super().__init__(f"instance {instance!r} is offline: its agent is not connected")
