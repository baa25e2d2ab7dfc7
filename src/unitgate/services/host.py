"""This host as the facade the GraphQL layer asks: ServiceControl's answers, with the one
instance it is (`instance_name`) named or left out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from unitgate.services.errors import UnitgateError
from unitgate.services.facade import Health, InstanceState, Internals, require_instance
from unitgate.services.policy.access import Actor
from unitgate.services.policy.control import ServiceControl
from unitgate.services.systemd.history import History
from unitgate.services.systemd.logs import LogEntry
from unitgate.services.systemd.status import StateCounts, UnitStatus, count_states
from unitgate.services.systemd.units import UnitVerb


class HostFacade:
    def __init__(self, control: ServiceControl) -> None:
        self.control = control
        self.instance_name = control.instance_name

    def _here(self, instance: str | None, actor: Actor) -> None:
        if instance is not None:
            require_instance(lambda name: name == self.instance_name, instance, actor)

    def _listed(self, instances: Sequence[str] | None, actor: Actor) -> bool:
        named = instances is None or self.instance_name in instances
        return named and actor.reaches(self.instance_name)

    @property
    def scope(self) -> str:
        return self.control.scope

    def request_arrived(self) -> None:
        self.control.request_arrived()

    def status_deadline(self) -> contextlib.AbstractContextManager[None]:
        return self.control.status_deadline()

    async def status_snapshot(self) -> Mapping[str, UnitStatus] | None:
        return await self.control.status_snapshot()

    def status_snapshot_is(self, statuses: Mapping[str, UnitStatus]) -> bool:
        return self.control.status_snapshot_is(statuses)

    async def list_installed(self, actor: Actor, instances: Sequence[str] | None = None) -> list[UnitStatus]:
        return await self.control.list_installed(actor) if self._listed(instances, actor) else []

    def counts(self, statuses: Sequence[UnitStatus]) -> StateCounts:
        return count_states(statuses)

    async def get_many(
        self, names: Sequence[str], actor: Actor, instance: str | None = None
    ) -> list[UnitStatus | UnitgateError]:
        self._here(instance, actor)
        return await self.control.get_many(names, actor)

    async def act(self, verb: UnitVerb, name: str, actor: Actor, instance: str | None = None) -> UnitStatus:
        self._here(instance, actor)
        return await self.control.act(verb, name, actor)

    async def logs(self, name: str, lines: int, actor: Actor, instance: str | None = None) -> list[LogEntry]:
        self._here(instance, actor)
        return await self.control.logs(name, lines, actor)

    async def history(
        self, name: str, since: datetime | None, limit: int, actor: Actor, instance: str | None = None
    ) -> History:
        self._here(instance, actor)
        return replace(await self.control.history(name, since, limit, actor), instance=self.instance_name)

    async def follow_logs(
        self, name: str, actor: Actor, after_cursor: str | None = None, instance: str | None = None
    ) -> AsyncGenerator[LogEntry | UnitgateError, None]:
        try:
            self._here(instance, actor)
        except UnitgateError as refused:
            yield refused
            return
        events = self.control.follow_logs(name, actor, after_cursor)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()  # at once, not when collected: the shared follower counts it

    def status_events(
        self, names: Sequence[str] | None, actor: Actor, instances: Sequence[str] | None = None
    ) -> AsyncGenerator[UnitStatus | UnitgateError, None]:
        # Another instance than this one, or none the caller reaches: nothing to follow.
        return self.control.status_events(names if self._listed(instances, actor) else [], actor)

    def visible(self, actor: Actor) -> list[str]:
        return self.control.visible(actor)

    async def instances(self, actor: Actor) -> list[InstanceState]:
        if not actor.reaches(self.instance_name):
            return []
        try:
            counts = count_states(await self.control.list_installed(actor))
        except UnitgateError:
            counts = count_states([])
        return [
            InstanceState(
                name=self.instance_name,
                online=True,
                last_seen=datetime.now(UTC),
                systemd_version=await self.control.manager_version(),
                scope=self.scope,
                counts=counts,
            )
        ]

    async def instance_events(self, actor: Actor) -> AsyncGenerator[InstanceState, None]:
        """This host as it is; it never goes offline to itself, so nothing follows."""
        for state in await self.instances(actor):
            yield state
        await asyncio.Event().wait()  # open until the subscriber leaves

    async def manager_version(self) -> str | None:
        return await self.control.manager_version()

    async def health(self) -> Health:
        return await self.control.health()

    def internals(self) -> Internals:
        control = self.control
        return Internals(
            watcher_mode=str(control.watcher.mode),
            processes_spawned=control.runner.spawned,
            process_seconds=control.runner.seconds,
            streams=control.streams,
            action_outcomes=dict(control.audit.outcomes),
        )

    async def start(self) -> None:
        pass  # the watcher starts with its first subscriber or query

    async def aclose(self) -> None:
        await self.control.aclose()
