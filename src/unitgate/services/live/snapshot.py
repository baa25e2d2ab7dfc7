"""What the status watcher knows and how it is tuned: snapshot, mode, timings, signal source."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from unitgate.services.errors import UnitgateError
from unitgate.services.systemd.status import UnitStatus

ReadAll = Callable[[], Awaitable[list[UnitStatus]]]
StatusEvent = UnitStatus | UnitgateError


class UnitSignals(Protocol):
    """A source of "this unit changed" hints (systemd's D-Bus signals, in production)."""

    @property
    def describe(self) -> str: ...
    async def connect(self, on_change: Callable[[str | None], None]) -> None: ...
    def begin_sync(self) -> asyncio.Future[None]:
        """A round trip begun now: when it ends, every signal the manager sent before this call
        has been handed to on_change; it fails when the connection is gone. Shared: shield it."""

    async def follow_units(self, units: Mapping[str, str]) -> bool:
        """Also listen where each name's unit (as read) is signalled; True if that is new."""

    async def wait_closed(self) -> None: ...
    async def close(self) -> None: ...


class Mode(enum.StrEnum):
    IDLE = "idle"  # nobody watches or reads: no reads, no bus connection
    EVENTS = "events"  # D-Bus signals say when to read
    POLLING = "polling"  # no bus: read every poll_interval


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the watcher knew after one read: every unit's status, or why it could not read."""

    generation: int
    statuses: Mapping[str, UnitStatus] = field(default_factory=dict)
    error: UnitgateError | None = None
    # Memory moves without a signal; on these reads subscribers also hear of memory changes.
    memory_refresh: bool = False
    read_at: float = 0.0  # time.monotonic() when the read behind it started

    def names_dead(self, dying: Callable[[int], bool]) -> bool:
        """Whether a main process it names is dead or killed: one systemd has not handled yet (it
        will, and signal it, within a millisecond or two)."""
        return any(s.main_pid is not None and dying(s.main_pid) for s in self.statuses.values())


@dataclass(frozen=True, slots=True)
class WatcherTimings:
    poll_interval: float = 2.0  # in polling mode
    memory_interval: float = 30.0  # reads for MemoryCurrent, which has no change signal
    coalesce: float = 0.02  # a burst of signals within this window makes one read
    reconnect_interval: float = 5.0  # how often polling mode tries the bus again
    idle_after: float = 60.0  # how long the last status query keeps the bus connection
    status_timeout: float = 5.0  # systemctl show's; a new subscriber's first snapshot takes at most
    # that plus READ_GRACE, however the bus connection, the read and the process queue stack
