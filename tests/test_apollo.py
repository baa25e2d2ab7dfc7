"""A real Apollo Client's normalized cache merges live events into the services list by id."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import OPERATOR_TOKEN, RunningServer
from tests.units import HEALTHY

APOLLO = Path(__file__).parent / "apollo"


@pytest.mark.timeout(120)
def test_apollo_merges_subscription_events_into_the_list(server: RunningServer, node: str) -> None:
    assert (APOLLO / "node_modules" / "@apollo" / "client").is_dir(), (
        "make test installs it (npm in tests/apollo)"
    )
    result = subprocess.run(
        [node, str(APOLLO / "cache.mjs"), server.url, server.ws_url, OPERATOR_TOKEN, HEALTHY],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["after"] != seen["before"]
    # The list query, read from the cache alone, has the subscription's new process.
    assert seen["cached"] == seen["after"]
