"""What the GraphQL layer asks of services, whoever answers: ServiceControl for this host, or
FleetControl for a hub's many. The shared values, and the one rule for naming an instance."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from unitgate.services.errors import InstanceNotFound, UnitgateError
from unitgate.services.live.singleflight import SingleFlight
from unitgate.services.policy.access import Actor
from unitgate.services.systemd.history import History
from unitgate.services.systemd.logs import LogEntry
from unitgate.services.systemd.status import StateCounts, UnitStatus
from unitgate.services.systemd.units import UnitVerb

HEALTH_MAX_AGE = 5.0  # seconds a health answer is reused


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str
    watcher: str
    watcher_detail: str


@dataclass(frozen=True, slots=True)
class InstanceState:
    """One host as a dashboard lists it."""

    name: str
    online: bool
    last_seen: datetime | None
    systemd_version: str | None
    scope: str
    counts: StateCounts


@dataclass(frozen=True, slots=True)
class Internals:
    """What /metrics tells of unitgate itself (to tokens that reach everything)."""

    watcher_mode: str
    processes_spawned: int
    process_seconds: float
    streams: int
    action_outcomes: Mapping[tuple[str, str], int] = field(default_factory=dict)


def require_instance(known: Callable[[str], bool], instance: str, actor: Actor) -> str:
    """`instance` if it is known and the caller reaches it; else InstanceNotFound, the same for
    both, so a scoped token learns nothing of the hosts outside its scope."""
    if not known(instance) or not actor.reaches(instance):
        raise InstanceNotFound(instance)
    return instance


class CachedCheck:
    """A check anyone may call (a health endpoint, say), run at most once per HEALTH_MAX_AGE
    whatever the number of callers, its failure kept as long as its answer."""

    def __init__(self, check: Callable[[], Coroutine[Any, Any, str]]) -> None:
        self._check = check
        self._flight: SingleFlight[str, str] = SingleFlight()
        self._checked: tuple[float, str | UnitgateError | None] = (0.0, None)

    async def __call__(self) -> str | UnitgateError:
        checked_at, answer = self._checked
        if answer is not None and time.monotonic() - checked_at < HEALTH_MAX_AGE:
            return answer
        try:
            answer = await self._flight.do("check", self._check)
        except UnitgateError as error:
            answer = error
        self._checked = (time.monotonic(), answer)
        return answer


class Facade(Protocol):
    """The questions the GraphQL layer asks. `instance` None means this host (on a hub: every
    host, where a field lists them, else no answer); a named one the caller does not reach, or
    that does not exist, is InstanceNotFound."""

    instance_name: str

    @property
    def scope(self) -> str: ...
    def request_arrived(self) -> None: ...
    def status_deadline(self) -> contextlib.AbstractContextManager[None]: ...
    async def status_snapshot(self) -> Mapping[str, UnitStatus] | None: ...
    def status_snapshot_is(self, statuses: Mapping[str, UnitStatus]) -> bool: ...
    async def list_installed(
        self, actor: Actor, instances: Sequence[str] | None = None
    ) -> list[UnitStatus]: ...
    def counts(self, statuses: Sequence[UnitStatus]) -> StateCounts: ...
    async def get_many(
        self, names: Sequence[str], actor: Actor, instance: str | None = None
    ) -> list[UnitStatus | UnitgateError]: ...
    async def act(
        self, verb: UnitVerb, name: str, actor: Actor, instance: str | None = None
    ) -> UnitStatus: ...
    async def logs(
        self, name: str, lines: int, actor: Actor, instance: str | None = None
    ) -> list[LogEntry]: ...
    def follow_logs(
        self, name: str, actor: Actor, after_cursor: str | None = None, instance: str | None = None
    ) -> AsyncGenerator[LogEntry | UnitgateError, None]: ...
    async def history(
        self, name: str, since: datetime | None, limit: int, actor: Actor, instance: str | None = None
    ) -> History: ...
    def status_events(
        self, names: Sequence[str] | None, actor: Actor, instances: Sequence[str] | None = None
    ) -> AsyncGenerator[UnitStatus | UnitgateError, None]: ...
    def visible(self, actor: Actor) -> list[str]: ...
    async def instances(self, actor: Actor) -> list[InstanceState]: ...
    def instance_events(self, actor: Actor) -> AsyncGenerator[InstanceState, None]: ...
    async def manager_version(self) -> str | None: ...
    async def health(self) -> Health: ...
    def internals(self) -> Internals: ...
    async def start(self) -> None: ...
    async def aclose(self) -> None: ...


class HostControl(Protocol):
    """What an agent serves over NATS: one host's statuses, actions, logs and history
    (ServiceControl on a real host; a simulated one in the fleet benchmark)."""

    instance_name: str
    enabled: frozenset[UnitVerb]

    def status_events(
        self, names: Sequence[str] | None, actor: Actor
    ) -> AsyncGenerator[UnitStatus | UnitgateError, None]: ...
    async def act(self, verb: UnitVerb, name: str, actor: Actor) -> UnitStatus: ...
    async def logs(self, name: str, lines: int, actor: Actor) -> list[LogEntry]: ...
    def follow_logs(
        self, name: str, actor: Actor, after_cursor: str | None = None
    ) -> AsyncGenerator[LogEntry | UnitgateError, None]: ...
    async def history(self, name: str, since: datetime | None, limit: int, actor: Actor) -> History: ...
