"""Log lines that can neither leak nor flood: no query string (where a careless client puts its
token) in any line, a line repeated faster than a human reads it is counted, not written, and so
is every line past a budget for all of them together; on every logger unitgate and its libraries
write through, children included."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

# A request target as uvicorn logs it: "/graphql?token=..." loses everything from the "?".
_QUERY = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")
# What differs between two lines of one kind: addresses, task numbers, ports, counts.
_VARYING = re.compile(r"0x[0-9a-fA-F]+|\d+")
# Loggers (and their children) whose lines can carry a client's URL, or repeat once per
# connection under attack.
GUARDED_LOGGERS = ("uvicorn", "asyncio", "strawberry", "starlette", "websockets", "dbus_fast", "unitgate")


def strip_query(text: str) -> str:
    return _QUERY.sub(r"\1?…", text)


class StripQueryStrings(logging.Filter):
    """Strips the line as it will be written, template and arguments together: a query string
    can span both (`"?token=%s"`), and stripping a template alone can eat its placeholders."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken template: logging reports it, not us
            return True
        if "?" in message:
            record.msg, record.args = strip_query(message), None
        return True


def kind_of(record: logging.LogRecord) -> tuple[str, str]:
    """Which lines count as repeats of each other: the logger, and the message with what varies
    between them (a task's address, a port) taken out."""
    return (record.name, _VARYING.sub("#", str(record.msg)[:200]))


class RateLimitRepeats(logging.Filter):
    """At most `burst` lines of one kind per `window` seconds, and at most `total` lines of all
    kinds together; the next line written after a quiet window says how many were left out."""

    _ALL = ("", "")  # the key of the budget for all kinds together

    def __init__(
        self,
        burst: int = 5,
        window: float = 10.0,
        total: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.total = total
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}  # start, written, dropped

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        key = kind_of(record)
        notes = []
        for budget_key, budget in ((key, self.burst), (self._ALL, self.total)):
            start, written, dropped = self._seen.get(budget_key, (now, 0, 0))
            if now - start >= self.window:
                if dropped:
                    notes.append(dropped)
                start, written, dropped = now, 0, 0
            if written >= budget:
                self._seen[budget_key] = (start, written, dropped + 1)
                return False
            self._seen[budget_key] = (start, written, dropped)
        for budget_key in (key, self._ALL):
            start, written, dropped = self._seen[budget_key]
            self._seen[budget_key] = (start, written + 1, dropped)
        if notes:
            record.msg = f"{record.msg} (and {max(notes)} more lines left out in the last {self.window:g} s)"
        if len(self._seen) > 1000:  # kinds are few; this only bounds a pathological mix
            self._seen.clear()
        return True


def install() -> None:
    """Guard every logger unitgate and its libraries write through, children included (a
    logger's filters see only the lines made on it, never its children's), and the handlers that
    write unitgate's own stderr; safe to call again (after uvicorn configures its logging, and
    once every module has made its logger). One budget for all of them together."""
    names = [
        name
        for name in list(logging.Logger.manager.loggerDict)
        if any(name == prefix or name.startswith(f"{prefix}.") for prefix in GUARDED_LOGGERS)
    ]
    loggers: list[logging.Filterer] = [logging.getLogger(name) for name in {*GUARDED_LOGGERS, *names}]
    handlers: list[logging.Filterer] = list(logging.getLogger("uvicorn").handlers)
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)  # what writes a logger with no handler of its own
    for group in (loggers, handlers):
        budget = _shared_budget(group)
        for filterer in group:
            if not any(isinstance(f, StripQueryStrings) for f in filterer.filters):
                filterer.addFilter(budget)  # first: it tells kinds apart by their template
                filterer.addFilter(StripQueryStrings())


def _shared_budget(filterers: list[logging.Filterer]) -> RateLimitRepeats:
    """The budget these already share, or a new one (a line passes a logger, then a handler:
    each of the two groups counts it once)."""
    for filterer in filterers:
        for existing in filterer.filters:
            if isinstance(existing, RateLimitRepeats):
                return existing
    return RateLimitRepeats()
