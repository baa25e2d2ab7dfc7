"""Thin resolvers: ask the facade (this host, or a hub's fleet) and map its answer onto a schema type."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, ParamSpec, TypeAlias, TypeVar, cast

import strawberry
from strawberry.dataloader import DataLoader

from unitgate.schema import history, results, types
from unitgate.schema.errors import error_result
from unitgate.schema.limits import take_log_lines
from unitgate.services.errors import UnitgateError
from unitgate.services.facade import Facade, InstanceState
from unitgate.services.policy.access import Actor
from unitgate.services.systemd.logs import MAX_LINES
from unitgate.services.systemd.status import UnitStatus
from unitgate.services.systemd.units import UnitVerb

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@dataclass
class Context:
    control: Facade
    # Set before any resolver runs: by the HTTP auth gate, or on a websocket's connection_init.
    actor: Actor | None = None
    address: str | None = None
    connection_params: object = None
    connection: int = 0  # which websocket (its ASGI scope's id), for admission
    _status_loader: DataLoader[tuple[str | None, str], UnitStatus | UnitgateError] | None = field(
        default=None, repr=False
    )

    @property
    def status_loader(self) -> DataLoader[tuple[str | None, str], UnitStatus | UnitgateError]:
        """Batches every service(name, instance) of one operation into one read per instance
        (one `systemctl show` on a host).

        No cache: over a websocket this context lives as long as the connection, and a cached
        status would be served stale to the next operation. Made on first use, since most
        websocket connections only subscribe and never need one.
        """
        if self._status_loader is None:
            actor = self.require_actor()
            self._status_loader = DataLoader(
                load_fn=lambda keys: load_statuses(self.control, keys, actor), cache=False
            )
        return self._status_loader

    def require_actor(self) -> Actor:
        if self.actor is None:
            # The transports authenticate before executing anything; reaching here is a bug.
            raise PermissionError("operation without an authenticated caller")
        return self.actor


Info: TypeAlias = strawberry.Info[Context, None]


async def load_statuses(
    control: Facade, keys: list[tuple[str | None, str]], actor: Actor
) -> list[UnitStatus | UnitgateError]:
    """One answer per (instance, name), asked of each instance once; an instance's refusal
    (not found, offline) is the answer for each of its names."""
    found: dict[tuple[str | None, str], UnitStatus | UnitgateError] = {}
    for instance in dict.fromkeys(instance for instance, _ in keys):
        names = [name for at, name in keys if at == instance]
        try:
            answers: list[UnitStatus | UnitgateError] = await control.get_many(names, actor, instance)
        except UnitgateError as refused:
            answers = [refused] * len(names)
        found.update(zip(((instance, name) for name in names), answers, strict=True))
    return [found[key] for key in keys]


def typed_errors(resolver: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """A resolver whose services-layer failures become their typed GraphQL errors."""

    @functools.wraps(resolver)
    async def answer(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await resolver(*args, **kwargs)
        except UnitgateError as error:
            # The field's union lists the error types it can return; strawberry checks it.
            return cast(R, error_result(error))

    return answer


class converted(Generic[T, R]):
    """A subscription's events as schema types, typed errors included. Closing it closes the
    source, however the subscriber leaves, so shared watchers and log followers end with their
    last. A small object, not an async generator: each open subscription holds no frame for it."""

    __slots__ = ("_convert", "_events")

    def __init__(self, events: AsyncGenerator[T | UnitgateError, None], convert: Callable[[T], R]) -> None:
        self._events = events
        self._convert = convert

    def __aiter__(self) -> converted[T, R]:
        return self

    async def __anext__(self) -> R:
        event = await self._events.__anext__()
        # As in typed_errors: the field's union lists the error types it can yield.
        return cast(R, error_result(event)) if isinstance(event, UnitgateError) else self._convert(event)

    async def aclose(self) -> None:
        await self._events.aclose()


@typed_errors
async def services(info: Info, instances: list[str] | None = None) -> results.ServicesResult:
    statuses = await info.context.control.list_installed(info.context.require_actor(), instances)
    counts = info.context.control.counts(statuses)
    return types.ServiceList(
        services=[shown(info, s) for s in statuses],
        total=counts.total,
        active=counts.active,
        failed=counts.failed,
        inactive=counts.inactive,
        activating=counts.activating,
    )


@typed_errors
async def service(info: Info, name: str, instance: str | None = None) -> results.ServiceResult:
    info.context.require_actor()
    # The loader hands back a name's own error (not allowed, not found) for that name only.
    status = await info.context.status_loader.load((instance, name))
    if isinstance(status, UnitgateError):
        raise status
    return shown(info, status)


@typed_errors
async def restart_service(info: Info, name: str, instance: str | None = None) -> results.RestartServiceResult:
    status = await info.context.control.act(UnitVerb.RESTART, name, info.context.require_actor(), instance)
    return types.RestartSucceeded(service=shown(info, status))


@typed_errors
async def reload_service(info: Info, name: str, instance: str | None = None) -> results.ReloadServiceResult:
    status = await info.context.control.act(UnitVerb.RELOAD, name, info.context.require_actor(), instance)
    return types.ReloadSucceeded(service=shown(info, status))


@typed_errors
async def start_service(info: Info, name: str, instance: str | None = None) -> results.StartServiceResult:
    status = await info.context.control.act(UnitVerb.START, name, info.context.require_actor(), instance)
    return types.StartSucceeded(service=shown(info, status))


@typed_errors
async def stop_service(info: Info, name: str, instance: str | None = None) -> results.StopServiceResult:
    status = await info.context.control.act(UnitVerb.STOP, name, info.context.require_actor(), instance)
    return types.StopSucceeded(service=shown(info, status))


def shown(info: Info, status: UnitStatus) -> types.ServiceStatus:
    """A status as this instance shows it (its id names the instance). One object per status:
    every subscriber of an event gets the same one, which lets its execution be shared."""
    return _shown(status, status.instance or info.context.control.instance_name)


@functools.lru_cache(maxsize=1024)
def _shown(status: UnitStatus, instance: str) -> types.ServiceStatus:
    return types.ServiceStatus.from_unit(status, instance)


async def instance(info: Info) -> types.Instance:
    actor = info.context.require_actor()
    control = info.context.control
    for state in await control.instances(actor):
        if state.name == control.instance_name:
            return types.Instance.from_state(state)
    return types.Instance(
        name=control.instance_name, systemd_version=await control.manager_version(), scope=control.scope
    )


async def instances(info: Info) -> list[types.Instance]:
    states: list[InstanceState] = await info.context.control.instances(info.context.require_actor())
    return [types.Instance.from_state(state) for state in states]


def me(info: Info) -> types.Me:
    actor = info.context.require_actor()
    return types.Me(
        name=actor.name,
        role=str(actor.role),
        services=info.context.control.visible(actor),
        actions=sorted(str(verb) for verb in actor.actions),
        instances=None if actor.instances is None else list(actor.instances),
    )


@typed_errors
async def service_logs(
    info: Info, name: str, lines: int = 50, instance: str | None = None
) -> results.ServiceLogsResult:
    # The per-call cap first, so that lines: 10000 spends 500 of the operation's budget, not 10000.
    granted = take_log_lines(max(0, min(lines, MAX_LINES)))
    entries = await info.context.control.logs(name, granted, info.context.require_actor(), instance)
    return types.ServiceLogs(lines=[types.LogLine.from_entry(entry) for entry in entries])


@typed_errors
async def service_history(
    info: Info, name: str, instance: str | None = None, since: datetime | None = None, limit: int = 50
) -> results.ServiceHistoryResult:
    granted = take_log_lines(max(0, min(limit, MAX_LINES)))
    found = await info.context.control.history(name, since, granted, info.context.require_actor(), instance)
    return history.ServiceHistory.from_history(found)


async def service_logs_followed(
    info: Info, name: str, after_cursor: str | None = None, instance: str | None = None
) -> AsyncIterator[results.ServiceLogEvent]:
    events = info.context.control.follow_logs(name, info.context.require_actor(), after_cursor, instance)
    return converted(events, types.LogLine.from_entry)


async def instance_status_changed(info: Info) -> AsyncIterator[types.Instance]:
    events = info.context.control.instance_events(info.context.require_actor())
    return converted(events, types.Instance.from_state)


async def service_status_changed(
    info: Info, names: list[str] | None = None, instances: list[str] | None = None
) -> AsyncIterator[results.ServiceStatusEvent]:
    # Returned, not re-yielded: strawberry closes it when the subscriber leaves, and a thousand
    # open subscriptions each hold one generator fewer.
    events = info.context.control.status_events(names, info.context.require_actor(), instances)
    return converted(events, functools.partial(shown, info))
