"""Action safety: one action at a time per unit, and rate limits per caller and unit and per unit."""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from unitgate.services.errors import ActionInProgress, RateLimited


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `count` actions (restarts, reloads, starts and stops together) in any `window_seconds`."""

    count: int
    window_seconds: float


def retry_after(attempts: deque[float], limit: RateLimit, now: float) -> float | None:
    """Seconds until one more attempt fits in the window, or None if it fits now.

    `attempts` holds past attempt times, oldest first; those outside the window are dropped.
    """
    while attempts and attempts[0] <= now - limit.window_seconds:
        attempts.popleft()
    if len(attempts) < limit.count:
        return None
    return attempts[0] + limit.window_seconds - now


class ActionGuard:
    """Admits an action or says why not. Everything is keyed by the systemd unit, never by the
    name it was asked under: `mysql` and `mariadb` are one unit, one lock and one budget.

    Two budgets must both admit it: the caller's own on that unit (`per_caller`), so that no
    token can use up what the others need, and the unit's over all callers (`per_unit`), so that
    all of them together cannot drive it into systemd's start limit.

    The name is reserved first, before anything is awaited (`reserve`), then the unit once the
    name is resolved to it (`admit`): each check and its claim happen without an await between
    them, so fifty simultaneous requests admit exactly one, under one name or under several."""

    def __init__(
        self,
        per_caller: RateLimit,
        per_unit: RateLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_caller = per_caller
        self.per_unit = per_unit or RateLimit(2 * per_caller.count, per_caller.window_seconds)
        self._clock = clock
        self._in_flight: set[str] = set()  # units
        self._names_in_flight: set[str] = set()  # the names those units were asked under
        self._attempts: dict[tuple[str, str | None], deque[float]] = {}  # (unit, caller or None)

    def in_flight(self, name: str) -> bool:
        """Whether an action asked under `name` (or on the unit `name`) is running."""
        return name in self._names_in_flight or name in self._in_flight

    @contextlib.contextmanager
    def reserve(self, name: str) -> Iterator[None]:
        """The name, claimed at once: a second action asked under it is refused before it reads."""
        if name in self._names_in_flight:
            raise ActionInProgress(name)
        self._names_in_flight.add(name)
        try:
            yield
        finally:
            self._names_in_flight.discard(name)

    @contextlib.contextmanager
    def admit(self, unit: str, name: str | None = None, caller: str = "") -> Iterator[None]:
        name = unit if name is None else name
        if unit in self._in_flight:
            raise ActionInProgress(name)
        now = self._clock()
        budgets = (
            (self._attempts.setdefault((unit, caller), deque()), self.per_caller),
            (self._attempts.setdefault((unit, None), deque()), self.per_unit),
        )
        waits = [
            wait for attempts, limit in budgets if (wait := retry_after(attempts, limit, now)) is not None
        ]
        if waits:
            raise RateLimited(name, max(1, math.ceil(max(waits))))
        for attempts, _ in budgets:
            attempts.append(now)
        self._in_flight.add(unit)
        try:
            yield
        finally:
            self._in_flight.discard(unit)
