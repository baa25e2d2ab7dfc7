"""Marks for every test, from the fixtures it uses, so `make test-fast` knows what needs no
systemd, browser or node without anybody having to remember."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import pytest

# What a test needs, read off every fixture it uses, directly or through other fixtures.
FIXTURE_MARKS: dict[str, str] = {
    "own_systemd": "systemd",  # boots a systemd manager (the sandbox, the demo, the benchmark)
    "chromium": "browser",
    "node": "node",
    "quick_benchmark": "slow",
    "system_container": "systemd",  # e2e/: systemd as PID 1 in a throwaway container
}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped with SIGTERM (a CI timeout, `kill`) tears down like Ctrl-C: every fixture's
    finalizer runs, so no systemd manager, container or server outlives it."""
    if sys.platform == "linux":
        signal.signal(signal.SIGTERM, _interrupt)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, mark in FIXTURE_MARKS.items():
            if fixture in names:
                item.add_marker(mark)
