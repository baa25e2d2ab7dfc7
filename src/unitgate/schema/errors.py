"""The typed errors clients see, and the one table from each services-layer failure to its type.

A new failure is one class in services/errors.py, one type here with its `from_error`, one row
in ERRORS, and its place in the unions of the fields that can return it (schema/results.py).
"""

from __future__ import annotations

from typing import Any, Protocol, Self

import strawberry

from unitgate.schema.types import LogLine
from unitgate.services import errors as service

_ECHO_LIMIT = 256


def echo(name: str) -> str:
    """A client-sent name, safe to send back: bounded in length."""
    return name if len(name) <= _ECHO_LIMIT else name[:_ECHO_LIMIT]


@strawberry.interface(description="Every typed failure carries a human-readable message.")
class Error:
    message: str


@strawberry.type(description="The name is not exactly one of the allowlisted services.")
class ServiceNotAllowed(Error):
    name: str = strawberry.field(description="The name as sent, cut to 256 characters.")

    @classmethod
    def from_error(cls, error: service.ServiceNotAllowed) -> Self:
        return cls(message=str(error), name=echo(error.name))


@strawberry.type(description="The service is allowlisted but not installed on this machine.")
class ServiceNotFound(Error):
    name: str

    @classmethod
    def from_error(cls, error: service.ServiceNotFound) -> Self:
        return cls(message=str(error), name=error.name)


@strawberry.type(
    name="SystemctlTimeout",
    description="systemctl or journalctl did not answer in time; it was killed.",
)
class CommandTimeout(Error):
    command: str = strawberry.field(
        description="What timed out: `systemctl VERB` (show, restart, reload) or `journalctl`."
    )
    timeout_seconds: float

    @classmethod
    def from_error(cls, error: service.CommandTimeout) -> Self:
        return cls(message=str(error), command=error.command, timeout_seconds=error.timeout_seconds)


@strawberry.type(description="systemctl restart failed; exitCode and message are systemctl's.")
class RestartFailed(Error):
    name: str
    exit_code: int
    recent_logs: list[LogLine] = strawberry.field(description="The unit's last journal lines: the why.")

    @classmethod
    def from_error(cls, error: service.ActionFailed) -> Self:
        logs = [LogLine.from_entry(entry) for entry in error.recent_logs]
        return cls(message=str(error), name=error.name, exit_code=error.exit_code, recent_logs=logs)


@strawberry.type(description="systemctl reload failed; exitCode and message are systemctl's.")
class ReloadFailed(RestartFailed):
    pass


@strawberry.type(description="systemctl start failed; exitCode and message are systemctl's.")
class StartFailed(RestartFailed):
    pass


@strawberry.type(description="systemctl stop failed; exitCode and message are systemctl's.")
class StopFailed(RestartFailed):
    pass


@strawberry.type(
    description="This server does not offer the action (its `actions` leave it out); nothing ran."
)
class ActionNotEnabled(Error):
    action: str

    @classmethod
    def from_error(cls, error: service.ActionNotEnabled) -> Self:
        return cls(message=str(error), action=error.action)


@strawberry.type(description="The unit says CanReload=no; nothing ran.")
class ReloadNotSupported(Error):
    name: str

    @classmethod
    def from_error(cls, error: service.ReloadNotSupported) -> Self:
        return cls(message=str(error), name=error.name)


@strawberry.type(description="journalctl is missing or cannot read the journal.")
class JournalUnavailable(Error):
    @classmethod
    def from_error(cls, error: service.JournalUnavailable) -> Self:
        return cls(message=str(error))


@strawberry.type(description="afterCursor is not a cursor the journal gave.")
class InvalidCursor(Error):
    @classmethod
    def from_error(cls, error: service.InvalidCursor) -> Self:
        return cls(message=str(error))


@strawberry.type(description="This log stream fell behind and ended; subscribe again with afterCursor.")
class LogStreamLagged(Error):
    last_cursor: str | None = strawberry.field(description="The last line delivered; resume after it.")

    @classmethod
    def from_error(cls, error: service.LogStreamLagged) -> Self:
        return cls(message=str(error), last_cursor=error.last_cursor)


@strawberry.type(description="systemctl is missing or no systemd manager answers.")
class SystemdUnavailable(Error):
    @classmethod
    def from_error(cls, error: service.SystemdUnavailable) -> Self:
        return cls(message=str(error))


@strawberry.type(
    description="Every process slot is taken and the queue for them is full; nothing new ran. Retry later."
)
class ServerBusy(Error):
    retry_after_seconds: int

    @classmethod
    def from_error(cls, error: service.ServerBusy) -> Self:
        return cls(message=str(error), retry_after_seconds=max(1, int(error.retry_after_seconds)))


@strawberry.type(description="The caller's role may not do this; nothing ran.")
class Forbidden(Error):
    role: str
    action: str = strawberry.field(description="What was refused: restart, reload, start, stop or logs.")

    @classmethod
    def from_error(cls, error: service.Forbidden) -> Self:
        return cls(message=str(error), role=error.role, action=error.action)


@strawberry.type(
    name="RestartInProgress",
    description="A restart or reload of this service is already running; nothing new ran.",
)
class ActionInProgress(Error):
    name: str

    @classmethod
    def from_error(cls, error: service.ActionInProgress) -> Self:
        return cls(message=str(error), name=error.name)


@strawberry.type(description="Too many restarts or reloads of this service lately; nothing ran.")
class RateLimited(Error):
    name: str
    retry_after_seconds: int = strawberry.field(description="Seconds until an action is accepted.")

    @classmethod
    def from_error(cls, error: service.RateLimited) -> Self:
        return cls(message=str(error), name=error.name, retry_after_seconds=int(error.retry_after_seconds))


@strawberry.type(description="No instance by this name that the caller reaches; nothing ran.")
class InstanceNotFound(Error):
    instance: str

    @classmethod
    def from_error(cls, error: service.InstanceNotFound) -> Self:
        return cls(message=str(error), instance=error.instance)


@strawberry.type(description="The instance's agent is not connected now; nothing ran.")
class InstanceOffline(Error):
    instance: str

    @classmethod
    def from_error(cls, error: service.InstanceOffline) -> Self:
        return cls(message=str(error), instance=error.instance)


class _FromError(Protocol):
    @classmethod
    def from_error(cls, error: Any) -> Error: ...


# The one table: which GraphQL type a services-layer failure becomes.
ERRORS: dict[type[service.UnitgateError], type[_FromError]] = {
    service.ServiceNotAllowed: ServiceNotAllowed,
    service.ServiceNotFound: ServiceNotFound,
    service.CommandTimeout: CommandTimeout,
    service.SystemdUnavailable: SystemdUnavailable,
    service.ServerBusy: ServerBusy,
    service.JournalUnavailable: JournalUnavailable,
    service.InvalidCursor: InvalidCursor,
    service.LogStreamLagged: LogStreamLagged,
    service.RestartFailed: RestartFailed,
    service.ReloadFailed: ReloadFailed,
    service.StartFailed: StartFailed,
    service.StopFailed: StopFailed,
    service.ActionNotEnabled: ActionNotEnabled,
    service.ReloadNotSupported: ReloadNotSupported,
    service.Forbidden: Forbidden,
    service.ActionInProgress: ActionInProgress,
    service.RateLimited: RateLimited,
    service.InstanceNotFound: InstanceNotFound,
    service.InstanceOffline: InstanceOffline,
}


def error_result(error: service.UnitgateError) -> Error:
    """The GraphQL type of a services-layer failure."""
    graphql_type = ERRORS.get(type(error))
    if graphql_type is None:
        raise TypeError(f"no GraphQL type for {type(error).__name__}")
    return graphql_type.from_error(error)
