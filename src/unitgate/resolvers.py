"""Thin resolvers: call a ServiceControl method and map its outcome onto a schema type."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TypeAlias

import strawberry
from strawberry.dataloader import DataLoader

from unitgate.schema import types
from unitgate.services import errors
from unitgate.services.access import Actor
from unitgate.services.control import ServiceControl
from unitgate.services.journal import LogEntry
from unitgate.services.status import UnitStatus


@dataclass
class Context:
    control: ServiceControl
    # Set before any resolver runs: by the HTTP auth gate, or on a websocket's connection_init.
    actor: Actor | None = None
    address: str | None = None
    connection_params: object = None
    _status_loader: DataLoader[str, UnitStatus | errors.UnitgateError] | None = field(
        default=None, repr=False
    )

    @property
    def status_loader(self) -> DataLoader[str, UnitStatus | errors.UnitgateError]:
        """Batches every service(name) of one operation into one `systemctl show`.

        No cache: over a websocket this context lives as long as the connection, and a cached
        status would be served stale to the next operation. Made on first use, since most
        websocket connections only subscribe and never need one.
        """
        if self._status_loader is None:
            self._status_loader = DataLoader(load_fn=self.control.get_many, cache=False)
        return self._status_loader

    def require_actor(self) -> Actor:
        if self.actor is None:
            # The transports authenticate before executing anything; reaching here is a bug.
            raise PermissionError("operation without an authenticated caller")
        return self.actor


Info: TypeAlias = strawberry.Info[Context, None]

ErrorType: TypeAlias = (
    types.ServiceNotAllowed
    | types.ServiceNotFound
    | types.SystemctlTimeout
    | types.RestartFailed
    | types.SystemdUnavailable
    | types.Forbidden
    | types.RestartInProgress
    | types.RateLimited
    | types.ReloadFailed
    | types.ReloadNotSupported
    | types.JournalUnavailable
    | types.InvalidCursor
    | types.LogStreamLagged
)


def _log_lines(entries: object) -> list[types.LogLine]:
    return [types.LogLine.from_entry(entry) for entry in entries if isinstance(entry, LogEntry)]  # type: ignore[attr-defined]


def error_result(error: errors.UnitgateError) -> ErrorType:
    """The GraphQL type of a services-layer failure."""
    message = str(error)
    match error:
        case errors.ServiceNotAllowed():
            return types.ServiceNotAllowed(message=message, name=types.echo(error.name))
        case errors.ServiceNotFound():
            return types.ServiceNotFound(message=message, name=error.name)
        case errors.SystemctlTimeout():
            return types.SystemctlTimeout(
                message=message, command=error.command, timeout_seconds=error.timeout_seconds
            )
        case errors.RestartFailed():
            return types.RestartFailed(
                message=message,
                name=error.name,
                exit_code=error.exit_code,
                recent_logs=_log_lines(error.recent_logs),
            )
        case errors.ReloadFailed():
            return types.ReloadFailed(
                message=message,
                name=error.name,
                exit_code=error.exit_code,
                recent_logs=_log_lines(error.recent_logs),
            )
        case errors.ReloadNotSupported():
            return types.ReloadNotSupported(message=message, name=error.name)
        case errors.JournalUnavailable():
            return types.JournalUnavailable(message=message)
        case errors.InvalidCursor():
            return types.InvalidCursor(message=message)
        case errors.LogStreamLagged():
            return types.LogStreamLagged(message=message, last_cursor=error.last_cursor)
        case errors.SystemdUnavailable():
            return types.SystemdUnavailable(message=message)
        case errors.Forbidden():
            return types.Forbidden(message=message, role=error.role)
        case errors.RestartInProgress():
            return types.RestartInProgress(message=message, name=error.name)
        case errors.RateLimited():
            return types.RateLimited(
                message=message, name=error.name, retry_after_seconds=int(error.retry_after_seconds)
            )
    raise TypeError(f"no GraphQL type for {type(error).__name__}")


async def services(info: Info) -> types.ServicesResult:
    info.context.require_actor()
    try:
        statuses = await info.context.control.list_installed()
    except (errors.SystemctlTimeout, errors.SystemdUnavailable) as error:
        return error_result(error)  # type: ignore[return-value]
    counts = info.context.control.counts(statuses)
    return types.ServiceList(
        services=[types.ServiceStatus.from_unit(s) for s in statuses],
        total=counts.total,
        active=counts.active,
        failed=counts.failed,
        inactive=counts.inactive,
        activating=counts.activating,
    )


async def service(info: Info, name: str) -> types.ServiceResult:
    info.context.require_actor()
    try:
        # The loader raises a name's own error (not allowed, not found) for that name only.
        status = await info.context.status_loader.load(name)
    except (
        errors.ServiceNotAllowed,
        errors.ServiceNotFound,
        errors.SystemctlTimeout,
        errors.SystemdUnavailable,
    ) as error:
        return error_result(error)  # type: ignore[return-value]
    assert isinstance(status, UnitStatus)
    return types.ServiceStatus.from_unit(status)


async def restart_service(info: Info, name: str) -> types.RestartServiceResult:
    try:
        status = await info.context.control.restart(name, info.context.require_actor())
    except errors.UnitgateError as error:
        return error_result(error)  # type: ignore[return-value]
    return types.RestartSucceeded(service=types.ServiceStatus.from_unit(status))


async def reload_service(info: Info, name: str) -> types.ReloadServiceResult:
    try:
        status = await info.context.control.reload(name, info.context.require_actor())
    except errors.UnitgateError as error:
        return error_result(error)  # type: ignore[return-value]
    return types.ReloadSucceeded(service=types.ServiceStatus.from_unit(status))


async def service_logs(info: Info, name: str, lines: int = 50) -> types.ServiceLogsResult:
    try:
        entries = await info.context.control.logs(name, lines, info.context.require_actor())
    except errors.UnitgateError as error:
        return error_result(error)  # type: ignore[return-value]
    return types.ServiceLogs(lines=[types.LogLine.from_entry(entry) for entry in entries])


async def service_logs_followed(
    info: Info, name: str, after_cursor: str | None = None
) -> AsyncGenerator[types.ServiceLogEvent, None]:
    events = info.context.control.follow_logs(name, info.context.require_actor(), after_cursor)
    try:
        async for event in events:
            if isinstance(event, errors.UnitgateError):
                yield error_result(event)  # type: ignore[misc]
            else:
                yield types.LogLine.from_entry(event)
    finally:
        # The shared journalctl -f ends with its last follower, however that follower left.
        await events.aclose()


async def service_status_changed(
    info: Info, names: list[str] | None = None
) -> AsyncGenerator[types.ServiceStatusEvent, None]:
    info.context.require_actor()
    events = info.context.control.status_events(names)
    try:
        async for event in events:
            if isinstance(event, errors.UnitgateError):
                yield error_result(event)  # type: ignore[misc]
            else:
                yield types.ServiceStatus.from_unit(event)
    finally:
        # Closing the inner generator leaves the shared watcher even when the client vanishes.
        await events.aclose()
