"""Log lines that can neither leak nor flood: no query string (where a careless client puts its
token) in any line, and a line repeated faster than a human reads it is counted, not written."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

# A request target as uvicorn logs it: "/graphql?token=..." loses everything from the "?".
_QUERY = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")
# Loggers whose lines can carry a client's URL, or repeat once per connection under attack.
GUARDED_LOGGERS = (
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn",
    "asyncio",
    "strawberry.execution",
    "unitgate",
)


def strip_query(text: str) -> str:
    return _QUERY.sub(r"\1?…", text)


class StripQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = strip_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(strip_query(a) if isinstance(a, str) else a for a in record.args)
        return True


class RateLimitRepeats(logging.Filter):
    """At most `burst` lines of one kind (logger and message template) per `window` seconds; the
    next line of that kind after a quiet window says how many were left out."""

    def __init__(
        self, burst: int = 5, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}  # start, written, dropped

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:200])
        now = self._clock()
        start, written, dropped = self._seen.get(key, (now, 0, 0))
        if now - start >= self.window:
            if dropped:
                record.msg = f"{record.msg} (and {dropped} more like it in the last {self.window:g} s)"
            start, written, dropped = now, 0, 0
        if written >= self.burst:
            self._seen[key] = (start, written, dropped + 1)
            return False
        self._seen[key] = (start, written + 1, dropped)
        if len(self._seen) > 1000:  # kinds are few; this only bounds a pathological mix
            self._seen.clear()
        return True


def install() -> None:
    """Guard the loggers above; safe to call again (after uvicorn configures its logging)."""
    for name in GUARDED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, StripQueryStrings) for f in logger.filters):
            logger.addFilter(StripQueryStrings())
            logger.addFilter(RateLimitRepeats())
