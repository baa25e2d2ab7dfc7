"""Marks for every test, from the fixtures it uses, so `make test-fast` knows what needs no
systemd, browser or node without anybody having to remember."""

from __future__ import annotations

import pytest

# What a test needs, read off every fixture it uses, directly or through other fixtures.
FIXTURE_MARKS: dict[str, str] = {
    "own_systemd": "systemd",  # boots a systemd manager (the sandbox, the demo, the benchmark)
    "chromium": "browser",
    "node": "node",
    "quick_benchmark": "slow",
    "system_container": "systemd",  # e2e/: systemd as PID 1 in a throwaway container
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, mark in FIXTURE_MARKS.items():
            if fixture in names:
                item.add_marker(mark)
