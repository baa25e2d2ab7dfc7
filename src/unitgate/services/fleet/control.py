"""FleetControl: the facade over every host, for a hub. Queries answer from the view at once;
actions and logs become requests to the host's agent. Policy is checked here with the same code
as on one host (the token's instances, services and actions), and again by the agent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from nats.aio.client import Client

from unitgate.services import errors
from unitgate.services.errors import UnitgateError
from unitgate.services.facade import Health, InstanceState, Internals, require_instance
from unitgate.services.fleet import wire
from unitgate.services.fleet.follow import follow
from unitgate.services.fleet.history_wire import history_from_wire
from unitgate.services.fleet.hub import HubLink
from unitgate.services.fleet.view import FleetView, Host, shown
from unitgate.services.policy.access import Actor
from unitgate.services.policy.audit import AuditLog
from unitgate.services.systemd.history import History
from unitgate.services.systemd.logs import MAX_LINES, LogEntry
from unitgate.services.systemd.status import StateCounts, UnitStatus, count_states
from unitgate.services.systemd.units import UnitVerb

READY_WAIT = 2.0  # a query right after a hub starts waits this long for the bucket's values


class FleetControl:
    scope = "fleet"

    def __init__(
        self,
        *,
        instance_name: str,
        enabled: frozenset[UnitVerb],
        audit: AuditLog,
        servers: Sequence[str],
        seed: str,
        heartbeat_interval: float,
        offline_after: float,
        request_timeout: float,
        action_timeout: float,
        connect: Callable[..., Awaitable[Client]],
    ) -> None:
        self.instance_name = instance_name
        self.enabled = enabled
        self.audit = audit
        self.view = FleetView(offline_after, time.monotonic)
        self.link = HubLink(self.view, heartbeat_interval)
        self._shown_cache: dict[tuple[str, frozenset[str] | None], tuple[int, frozenset[int]]] = {}
        self._servers = list(servers)
        self._seed = seed
        self._connect = connect
        self.request_timeout = request_timeout
        self.action_timeout = action_timeout
        self.streams = 0

    async def start(self) -> None:
        await self.link.start(self._connect, self._servers, self._seed)

    async def aclose(self) -> None:
        await self.link.aclose()

    # --- what the view answers at once

    async def ready(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(READY_WAIT):
                await self.view.ready.wait()

    def _reached(self, actor: Actor, instances: Sequence[str] | None) -> list[Host]:
        return [
            host
            for name, host in sorted(self.view.hosts.items())
            if actor.reaches(name) and (instances is None or name in instances)
        ]

    def _shown_now(self, host: Host, actor: Actor) -> frozenset[int]:
        """The statuses `_shown` gives (by identity: the view keeps each one object), as of the
        view's current version, for every caller with the same services."""
        key = (host.name, actor.services)
        cached = self._shown_cache.get(key)
        if cached is None or cached[0] != self.view.version:
            cached = (self.view.version, frozenset(id(status) for status in shown(host, actor)))
            self._shown_cache[key] = cached
        return cached[1]

    async def list_installed(self, actor: Actor, instances: Sequence[str] | None = None) -> list[UnitStatus]:
        await self.ready()
        return [status for host in self._reached(actor, instances) for status in shown(host, actor)]

    def counts(self, statuses: Sequence[UnitStatus]) -> StateCounts:
        return count_states(statuses)

    def host(self, instance: str | None, actor: Actor) -> Host:
        name = require_instance(self.view.known, instance or "", actor)
        return self.view.hosts[name]

    def _require_service(self, host: Host, name: str, actor: Actor) -> str:
        if host.info is None or name not in host.info.services or not actor.sees(name):
            raise errors.ServiceNotAllowed(name)
        return name

    async def get_many(
        self, names: Sequence[str], actor: Actor, instance: str | None = None
    ) -> list[UnitStatus | UnitgateError]:
        await self.ready()
        host = self.host(instance, actor)
        answers: list[UnitStatus | UnitgateError] = []
        for name in names:
            try:
                self._require_service(host, name, actor)
                status = host.statuses.get(name)
                answers.append(
                    status if status is not None and status.installed else errors.ServiceNotFound(name)
                )
            except UnitgateError as refused:
                answers.append(refused)
        return answers

    def visible(self, actor: Actor) -> list[str]:
        names = {name for host in self._reached(actor, None) if host.info for name in host.info.services}
        return sorted(name for name in names if actor.sees(name))

    def _state(self, host: Host, actor: Actor) -> InstanceState:
        return InstanceState(
            name=host.name,
            online=host.online,
            last_seen=host.last_seen_wall,
            systemd_version=host.info.systemd_version if host.info else None,
            scope=host.info.scope if host.info else "unknown",
            counts=count_states(shown(host, actor)),
        )

    async def instances(self, actor: Actor) -> list[InstanceState]:
        await self.ready()
        return [self._state(host, actor) for host in self._reached(actor, None)]

    async def instance_events(self, actor: Actor) -> AsyncGenerator[InstanceState, None]:
        """Every host the caller reaches as it is, then each again when it goes offline or
        comes back."""
        await self.ready()
        generation = self.view.generation
        for state in await self.instances(actor):
            yield state
        while True:
            changes = await self.view.changes_after(generation)
            generation = self.view.generation
            hosts = set(self.view.hosts) if changes is None else {c.host for c in changes if c.status is None}
            for name in sorted(hosts):
                if actor.reaches(name):  # a host removed from the fleet is last seen offline, empty
                    yield self._state(self.view.hosts.get(name) or Host(name), actor)

    # --- what becomes a request to an agent

    def caller(self, actor: Actor) -> dict[str, Any]:
        return wire.caller_to_wire(
            wire.Caller(
                name=actor.name,
                role=str(actor.role),
                address=actor.address,
                services=None if actor.services is None else tuple(sorted(actor.services)),
                actions=tuple(sorted(str(verb) for verb in actor.actions)),
            )
        )

    async def act(self, verb: UnitVerb, name: str, actor: Actor, instance: str | None = None) -> UnitStatus:
        """The same refusals in the same order as on one host, then the agent's own checks."""
        with self.audit.attempt(str(verb), f"{instance or ''}/{name}", actor):
            if verb not in self.enabled:
                raise errors.ActionNotEnabled(str(verb))
            await self.ready()
            host = self.host(instance, actor)
            self._require_service(host, name, actor)
            if not actor.may(verb):
                scoped = actor.role.may_act()
                raise errors.Forbidden(actor.role, str(verb), actor.name if scoped else None)
            payload = {"caller": self.caller(actor), "name": name}
            answer = await self.link.request(host.name, str(verb), payload, self.action_timeout + 5)
            return wire.parsed(lambda: wire.status_from_wire(answer.get("status") or {}, host.name))

    def require_logs(self, host: Host, name: str, actor: Actor) -> None:
        self._require_service(host, name, actor)
        if not actor.role.may_read_logs():
            raise errors.Forbidden(actor.role, "logs")

    async def logs(self, name: str, lines: int, actor: Actor, instance: str | None = None) -> list[LogEntry]:
        with self.audit.attempt("logs", f"{instance or ''}/{name}", actor):
            await self.ready()
            host = self.host(instance, actor)
            self.require_logs(host, name, actor)
            payload = {"caller": self.caller(actor), "name": name, "lines": lines}
            answer = await self.link.request(host.name, "logs", payload, self.request_timeout)
            return wire.parsed(lambda: wire.lines_from_wire(answer, limit=MAX_LINES))

    async def history(
        self, name: str, since: datetime | None, limit: int, actor: Actor, instance: str | None = None
    ) -> History:
        await self.ready()
        host = self.host(instance, actor)
        self._require_service(host, name, actor)
        when = since.isoformat() if since is not None else None
        payload = {"caller": self.caller(actor), "name": name, "since": when, "limit": limit}
        answer = await self.link.request(host.name, "history", payload, self.request_timeout)
        return wire.parsed(lambda: history_from_wire(answer, name, host.name, limit))

    def follow_logs(
        self, name: str, actor: Actor, after_cursor: str | None = None, instance: str | None = None
    ) -> AsyncGenerator[LogEntry | UnitgateError, None]:
        return follow(self, name, actor, after_cursor, instance)

    # --- live events from the view

    def status_events(
        self, names: Sequence[str] | None, actor: Actor, instances: Sequence[str] | None = None
    ) -> AsyncGenerator[UnitStatus | UnitgateError, None]:
        return self._status_events(names, actor, instances)

    async def _status_events(
        self, names: Sequence[str] | None, actor: Actor, instances: Sequence[str] | None
    ) -> AsyncGenerator[UnitStatus | UnitgateError, None]:
        if names is not None and not names:
            return
        await self.ready()
        wanted = None if names is None else set(names)
        named = None if instances is None else set(instances)

        def follows(status: UnitStatus) -> bool:
            # Run per subscriber per change anywhere in the fleet: the cheap tests first, and
            # what the caller may see of the host computed once per change, not per subscriber.
            host = self.view.hosts.get(status.instance)
            return (
                host is not None
                and (wanted is None or status.name in wanted)
                and (named is None or host.name in named)
                and actor.reaches(host.name)
                and id(status) in self._shown_now(host, actor)
            )

        self.streams += 1
        try:
            generation = self.view.generation
            for host in self._reached(actor, instances):
                for status in shown(host, actor):
                    if wanted is None or status.name in wanted:
                        yield status
            while True:
                changes = await self.view.changes_after(generation)
                generation = self.view.generation
                if changes is None:  # fell behind: everything again
                    for host in self._reached(actor, instances):
                        for status in shown(host, actor):
                            if follows(status):
                                yield status
                    continue
                for change in changes:
                    if change.status is not None and follows(change.status):
                        yield change.status
        finally:
            self.streams -= 1

    # --- the rest of the facade

    def request_arrived(self) -> None:
        pass  # queries answer from the view: there is nothing to begin early

    def status_deadline(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    async def status_snapshot(self) -> Mapping[str, UnitStatus] | None:
        return self.view.snapshot() if self.view.ready.is_set() else None

    def status_snapshot_is(self, statuses: Mapping[str, UnitStatus]) -> bool:
        return self.view.is_current(statuses)

    async def manager_version(self) -> str | None:
        return None

    async def health(self) -> Health:
        connected = self.link.connected
        detail = "connected to NATS" if connected else "not connected to NATS"
        online = sum(host.online for host in self.view.hosts.values())
        return Health(connected, detail, "fleet", f"{online} of {len(self.view.hosts)} instances online")

    def internals(self) -> Internals:
        return Internals(
            watcher_mode="fleet",
            processes_spawned=0,
            process_seconds=0.0,
            streams=self.streams,
            action_outcomes=dict(self.audit.outcomes),
        )
