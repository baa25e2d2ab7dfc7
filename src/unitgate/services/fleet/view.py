"""The hub's view of every host: what the bucket holds (each host's statuses and what it says of
itself) and when each was last heard from, with a log of changes subscribers read from."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from unitgate.services.fleet import subjects, wire
from unitgate.services.fleet.wire import HostInfo, WireError
from unitgate.services.policy.access import Actor
from unitgate.services.systemd.status import UnitStatus, distinct_units

log = logging.getLogger(__name__)
CHANGES_KEPT = 20_000  # a subscriber further behind than this starts again from the whole view
MAX_SERVICES = 1000  # statuses kept of a host that has not said yet which services it offers


@dataclass
class Host:
    name: str
    info: HostInfo | None = None
    statuses: dict[str, UnitStatus] = field(default_factory=dict)
    last_seen: float | None = None  # time.monotonic() of its last heartbeat or write
    last_seen_wall: datetime | None = None
    online: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    generation: int
    status: UnitStatus | None  # None: a host came or went (see `host`)
    host: str


class FleetView:
    """Applied to by the bucket's watch and the heartbeats (in the hub's one event loop); read by
    queries at once, and by subscribers through `changes_after`."""

    def __init__(self, offline_after: float, clock: Callable[[], float]) -> None:
        self.hosts: dict[str, Host] = {}
        self.offline_after = offline_after
        self._clock = clock
        self.generation = 0
        self._changes: dict[int, Change] = {}  # by generation: a subscriber reads only what is new
        self._changed = asyncio.Event()
        self.ready = asyncio.Event()  # the bucket's current values are all in
        self.version = 0  # moves with every change a query could see (a host's offer too)
        self._snapshot: tuple[int, Mapping[str, UnitStatus]] = (-1, MappingProxyType({}))

    def _host(self, name: str) -> Host:
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = Host(name)
        return host

    def _publish(self, status: UnitStatus | None, host: str) -> None:
        self.version += 1
        self.generation += 1
        self._changes[self.generation] = Change(self.generation, status, host)
        self._changes.pop(self.generation - CHANGES_KEPT, None)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def apply(self, key: str, value: bytes | None) -> None:
        """One entry of the bucket (None: deleted). What no agent of ours would write is dropped
        with a log line: a compromised host gets no further than its own keys (the server
        enforces that) and than what parses."""
        parsed = subjects.parse_key(key)
        if parsed is None:
            log.warning("fleet: ignored a key of no known shape")
            return
        host = self._host(parsed.instance)
        try:
            if parsed.service is None:
                self.version += 1
                host.info = None if value is None else wire.host_from_wire(wire.loads(value))
                if host.info is not None:  # what it no longer offers is no longer kept
                    kept = set(host.info.services)
                    host.statuses = {n: s for n, s in host.statuses.items() if n in kept}
                self._forget_if_empty(host)
                return
            if value is None:
                gone = host.statuses.pop(parsed.service, None)
                if gone is not None:
                    self._publish(None, host.name)
                self._forget_if_empty(host)
                return
            status = wire.status_from_wire(wire.loads(value), host.name)
        except WireError as error:
            log.warning("fleet: ignored what %s wrote: %s", parsed.instance, error)
            return
        if status.name != parsed.service:
            log.warning("fleet: %s wrote a status under another service's key", parsed.instance)
            return
        # A host can write only its own keys (the server sees to that), but as many as it likes:
        # only the services it offers are kept, so a hostile one cannot fill the hub's memory.
        if host.info is not None:
            if status.name not in host.info.services:
                return
        elif status.name not in host.statuses and len(host.statuses) >= MAX_SERVICES:
            return
        previous = host.statuses.get(status.name)
        host.statuses[status.name] = status
        if previous != status:
            self._publish(status, host.name)

    def _forget_if_empty(self, host: Host) -> None:
        """A host whose every key is gone (`fleet remove-host` purges them) is no host at all."""
        if host.info is None and not host.statuses and self.hosts.get(host.name) is host:
            del self.hosts[host.name]
            self._publish(None, host.name)

    def heard_from(self, name: str) -> None:
        """A heartbeat: the host is online (a change, if it was not)."""
        if subjects.instance_problem(name) is not None:
            return
        host = self._host(name)
        host.last_seen = self._clock()
        host.last_seen_wall = datetime.now(UTC)
        if not host.online:
            host.online = True
            self._publish(None, name)

    def expire(self) -> None:
        """Mark offline every host not heard from for `offline_after` seconds."""
        now = self._clock()
        for host in self.hosts.values():
            if host.online and (host.last_seen is None or now - host.last_seen > self.offline_after):
                host.online = False
                self._publish(None, host.name)

    def snapshot(self) -> Mapping[str, UnitStatus]:
        """Every host's statuses as one value, the same object until anything changes: what
        identical queries share their answer by (schema/shared_queries.py)."""
        version, statuses = self._snapshot
        if version != self.version:
            every = {f"{h.name}/{name}": s for h in self.hosts.values() for name, s in h.statuses.items()}
            statuses = MappingProxyType(every)
            self._snapshot = (self.version, statuses)
        return statuses

    def is_current(self, statuses: Mapping[str, UnitStatus]) -> bool:
        version, current = self._snapshot
        return version == self.version and current is statuses

    def known(self, name: str) -> bool:
        return name in self.hosts

    async def changes_after(self, generation: int) -> list[Change] | None:
        """The changes since `generation`, waiting for one if there is none yet; None when the
        subscriber fell so far behind that they are gone (start again from the whole view)."""
        while self.generation <= generation:
            await self._changed.wait()
        if generation + 1 not in self._changes:
            return None
        return [self._changes[g] for g in range(generation + 1, self.generation + 1)]


def shown(host: Host, actor: Actor) -> list[UnitStatus]:
    """A host's installed services the caller sees, within what the host itself offers."""
    offered = set(host.info.services) if host.info is not None else set()
    listed = [
        s
        for _, s in sorted(host.statuses.items())
        if s.installed and s.name in offered and actor.sees(s.name)
    ]
    return distinct_units(listed)
