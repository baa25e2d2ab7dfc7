"""The log budget: repeats that differ only by an address or a number are one kind, every child
logger is guarded, and all kinds together have a ceiling."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from unitgate.server import log_hygiene
from unitgate.server.log_hygiene import RateLimitRepeats, kind_of


def record(name: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)


def test_lines_differing_by_an_address_or_a_number_are_one_kind() -> None:
    first = record("asyncio", "Task exception was never retrieved\nfuture: <Task name='Task-12' at 0x7f3a1c>")
    second = record(
        "asyncio", "Task exception was never retrieved\nfuture: <Task name='Task-913' at 0x7f99e0>"
    )
    assert kind_of(first) == kind_of(second)
    assert kind_of(first) != kind_of(record("asyncio", "Unclosed client session"))


def test_the_budget_counts_repeats_and_caps_all_kinds_together() -> None:
    now = [0.0]
    budget = RateLimitRepeats(burst=5, window=10.0, total=20, clock=lambda: now[0])
    repeats = [budget.filter(record("unitgate.x", f"task at 0x{i:x} failed")) for i in range(100)]
    assert sum(repeats) == 5
    distinct = [
        budget.filter(record("unitgate.x", f"kind {chr(65 + i % 26)}{chr(97 + i // 26)}")) for i in range(100)
    ]
    assert sum(distinct) == 20 - 5  # the ceiling for all kinds, the repeats' five included
    now[0] = 11.0
    later = record("unitgate.x", "task at 0x1 failed")
    assert budget.filter(later)
    assert "more lines left out" in str(later.msg)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What a handler on unitgate's child logger and on asyncio's writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    loggers = [logging.getLogger("unitgate.test_log_hygiene.child"), logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addHandler(handler)
    yield stream
    for logger in loggers:
        logger.removeHandler(handler)


def test_install_guards_child_loggers_and_asyncio(captured: io.StringIO) -> None:
    child = logging.getLogger("unitgate.test_log_hygiene.child")  # made before install, as modules do
    log_hygiene.install()
    for i in range(1000):
        child.error("GET /graphql?token=ugt_secret%d from 127.0.0.%d", i, i % 250)
        logging.getLogger("asyncio").error("Task exception was never retrieved\nfuture: <Task at 0x%x>", i)
    written = captured.getvalue()
    assert written.count("GET /graphql") <= 5
    assert written.count("Task exception") <= 5
    assert "ugt_secret" not in written
