"""The typed failures of the services layer; resolvers map each to a GraphQL type."""

from __future__ import annotations


class UnitgateError(Exception):
    """Base of every failure a client may see; `str(error)` is safe to show to it."""


class ServiceNotAllowed(UnitgateError):
    def __init__(self, name: str) -> None:
        self.name = name
        # The name is hostile input: never echo it raw (it may hold control characters or 10 kB).
        super().__init__(f"service {_shorten(name)!r} is not in the allowlist")


class ServiceNotFound(UnitgateError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"service {name!r} is not installed")


class SystemctlTimeout(UnitgateError):
    def __init__(self, command: str, timeout_seconds: float) -> None:
        self.command = command
        self.timeout_seconds = timeout_seconds
        super().__init__(f"systemctl {command} did not answer within {timeout_seconds:g} s")


class SystemdUnavailable(UnitgateError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"systemd is unavailable: {reason}")


class ActionFailed(UnitgateError):
    """systemctl restart/reload exited non-zero; `recent_logs` is filled in by the caller."""

    verb = "action"

    def __init__(self, name: str, exit_code: int, detail: str) -> None:
        self.name = name
        self.exit_code = exit_code
        self.detail = detail
        self.recent_logs: list[object] = []
        super().__init__(f"{self.verb} of {name!r} failed (exit code {exit_code}): {detail}")


class RestartFailed(ActionFailed):
    verb = "restart"


class ReloadFailed(ActionFailed):
    verb = "reload"


class ReloadNotSupported(UnitgateError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"service {name!r} does not support reload (CanReload=no)")


class LogStreamLagged(UnitgateError):
    """A log follower fell too far behind; it resumes without a gap from `last_cursor`."""

    def __init__(self, last_cursor: str | None) -> None:
        self.last_cursor = last_cursor
        super().__init__("the log stream fell behind; subscribe again with afterCursor set to lastCursor")


def _shorten(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class Forbidden(UnitgateError):
    def __init__(self, role: str, action: str) -> None:
        self.role = role
        self.action = action
        super().__init__(f"the {role} role may not {action}")


class RestartInProgress(UnitgateError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a restart or reload of {name!r} is already in progress")


class RateLimited(UnitgateError):
    def __init__(self, name: str, retry_after_seconds: float) -> None:
        self.name = name
        self.retry_after_seconds = retry_after_seconds
        super().__init__(f"too many restarts or reloads of {name!r}; retry in {retry_after_seconds:.0f} s")


class JournalUnavailable(UnitgateError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the journal is unavailable: {reason}")


class InvalidCursor(UnitgateError):
    def __init__(self) -> None:
        super().__init__("the cursor is not one the journal gave")
