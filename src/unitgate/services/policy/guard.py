"""Action safety: one action at a time per service, and a per-service rate limit on actions."""

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
    """At most `count` actions (restarts and reloads together) on one service in any `window_seconds`."""

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
    """Admits an action on a service or says why not; the check and the claim happen without an
    await between them, so fifty simultaneous requests admit exactly one."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._in_flight: set[str] = set()
        self._attempts: dict[str, deque[float]] = {}

    def in_flight(self, name: str) -> bool:
        return name in self._in_flight

    @contextlib.contextmanager
    def admit(self, name: str) -> Iterator[None]:
        if name in self._in_flight:
            raise ActionInProgress(name)
        now = self._clock()
        attempts = self._attempts.setdefault(name, deque())
        wait = retry_after(attempts, self.limit, now)
        if wait is not None:
            raise RateLimited(name, max(1, math.ceil(wait)))
        attempts.append(now)
        self._in_flight.add(name)
        try:
            yield
        finally:
            self._in_flight.discard(name)
