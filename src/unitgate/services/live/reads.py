"""Status reads: from the signal-kept snapshot when it vouches, else one shared `systemctl show`."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from typing import Protocol

from unitgate.services.errors import CommandTimeout, ServiceNotAllowed, ServiceNotFound, UnitgateError
from unitgate.services.live.singleflight import SingleFlight
from unitgate.services.systemd.allowlist import Allowlist
from unitgate.services.systemd.status import UnitStatus
from unitgate.services.systemd.systemctl import Systemctl

# A status read answers within status_timeout and this much, however its paths stack: the round
# trip to systemd, the watcher's read, then the wrapper's, each behind the process queue. (The
# promise to clients is status_timeout plus one second; the rest is for the event loop.)
READ_GRACE = 0.5
# When the status reads of the operation running in this context must have answered (the event
# loop's clock), from `StatusReads.deadline`; without one, each read has a budget of its own.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("status_deadline", default=None)


class FreshSnapshot(Protocol):
    """Every unit's status as systemd has it now, or None when nothing vouches for a snapshot;
    with `read` False, None too where vouching would take a read. With `memory` False, memory
    and CPU may be as old as the snapshot (they have no signal); the rest is vouched for as ever."""

    def __call__(
        self, read: bool = True, memory: bool = True
    ) -> Awaitable[Mapping[str, UnitStatus] | None]: ...


class StatusReads:
    def __init__(
        self,
        systemctl: Systemctl,
        snapshot: FreshSnapshot | None = None,
        flights: SingleFlight[tuple[str, ...], list[UnitStatus]] | None = None,
    ) -> None:
        self.systemctl = systemctl
        self._snapshot = snapshot
        self.flights: SingleFlight[tuple[str, ...], list[UnitStatus]] = flights or SingleFlight()

    def with_snapshot(self, snapshot: FreshSnapshot) -> StatusReads:
        """These reads, answered from `snapshot` whenever it vouches; the wrapper reads it falls
        back on share their flights with these."""
        return StatusReads(self.systemctl, snapshot, self.flights)

    @contextlib.contextmanager
    def deadline(self) -> Iterator[None]:
        """Every status read in this context, until the block ends, shares one budget of
        status_timeout + READ_GRACE from now: an operation that peeks at the snapshot, then reads,
        then reads again for a second field, still answers within it."""
        loop = asyncio.get_running_loop()
        token = _DEADLINE.set(loop.time() + self.systemctl.options.status_timeout + READ_GRACE)
        try:
            yield
        finally:
            _DEADLINE.reset(token)

    def _deadline(self) -> float:
        deadline = _DEADLINE.get()
        if deadline is None:
            return asyncio.get_running_loop().time() + self.systemctl.options.status_timeout + READ_GRACE
        return deadline

    async def snapshot(self) -> Mapping[str, UnitStatus] | None:
        """Every unit's status from the snapshot when it vouches for it with no read; else None
        (also when vouching takes longer than the deadline allows)."""
        if self._snapshot is None:
            return None
        try:
            async with asyncio.timeout_at(self._deadline()):
                return await self._snapshot(read=False)
        except TimeoutError:
            return None

    @property
    def allowlist(self) -> Allowlist:
        return self.systemctl.allowlist

    async def statuses(self, names: Sequence[str], memory: bool = True) -> list[UnitStatus]:
        """Status of allowlisted `names` (checked first), in order: from the snapshot when it
        vouches, else from one `systemctl show` shared with every concurrent caller asking for the
        same set. `memory` False: a caller that looks at no memory or CPU figure."""
        checked = [self.allowlist.require(name) for name in names]
        try:
            async with asyncio.timeout_at(self._deadline()):
                return await self._statuses(checked, memory)
        except TimeoutError:
            raise CommandTimeout("systemctl show", self.systemctl.options.status_timeout) from None

    async def _statuses(self, checked: list[str], memory: bool) -> list[UnitStatus]:
        if self._snapshot is not None:
            statuses = await self._snapshot(memory=memory)
            if statuses is not None and all(name in statuses for name in checked):
                return [statuses[name] for name in checked]
        key = tuple(sorted(set(checked)))
        by_name = {
            status.name: status for status in await self.flights.do(key, lambda: self.systemctl.show(key))
        }
        return [by_name[name] for name in checked]

    async def installed(self, name: str) -> UnitStatus:
        """One allowlisted service's status; ServiceNotFound when systemd has no such unit. For
        the checks before an action, logs or history: whether it is installed, its unit, whether
        it can reload. Those have signals, so a snapshot older than memory_max_age still vouches
        for them: no read before each action on a quiet host. Its memory and CPU may be old."""
        (status,) = await self.statuses([name], memory=False)
        if not status.installed:
            raise ServiceNotFound(status.name)
        return status

    async def read_all(self) -> list[UnitStatus]:
        """Every allowlisted unit, installed or not, sorted by name."""
        return await self.statuses(self.allowlist.sorted())

    async def get_many(self, names: Sequence[str]) -> list[UnitStatus | UnitgateError]:
        """One outcome per name, from at most one `systemctl show` for the allowed ones: what a
        DataLoader batch needs, where one bad name must not fail the others."""
        outcomes: dict[str, UnitStatus | UnitgateError] = {}
        allowed = []
        for name in names:
            if name in self.allowlist:
                allowed.append(name)
            else:
                outcomes[name] = ServiceNotAllowed(name)
        if allowed:
            for status in await self.statuses(allowed):
                outcomes[status.name] = status if status.installed else ServiceNotFound(status.name)
        return [outcomes[name] for name in names]
