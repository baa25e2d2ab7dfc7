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
)


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
            return types.RestartFailed(message=message, name=error.name, exit_code=error.exit_code)
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
    return types.ServiceList(services=[types.ServiceStatus.from_unit(s) for s in statuses])


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
        return error_result(error)
    return types.RestartSucceeded(service=types.ServiceStatus.from_unit(status))


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
