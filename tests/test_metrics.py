"""GET /metrics against the sandbox, checked by promtool; the alert rules, unit-tested by promtool."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import VIEWER_TOKEN, RunningServer, bearer
from tests.units import CRASHY, FAILING, HEALTHY, MISSING
from unitgate.sandbox.manager import UserManagerSandbox

ROOT = Path(__file__).parents[1]
RULES = ROOT / "deploy" / "prometheus" / "unitgate-alerts.yml"
RULE_TESTS = Path(__file__).parent / "prometheus" / "unitgate-alerts.test.yml"


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "make test installs Debian's prometheus (promtool)"
    return path


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def scrape(server: RunningServer, token: str | None = None) -> httpx.Response:
    headers = bearer(token) if token else {}
    async with httpx.AsyncClient() as client:
        return await client.get(server.url.replace("/graphql", "/metrics"), headers=headers)


async def test_metrics_need_a_token_and_pass_promtool(server: RunningServer, promtool: str) -> None:
    assert (await scrape(server)).status_code == 401
    response = await scrape(server, VIEWER_TOKEN)  # any role
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    check = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=response.text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


async def test_the_documented_series_for_the_units(
    server: RunningServer, sandbox: UserManagerSandbox
) -> None:
    values = samples((await scrape(server, VIEWER_TOKEN)).text)
    for name in (HEALTHY, CRASHY, FAILING):
        assert ("unitgate_service_restarts_total", (("service", name),)) in values
        # CPU where systemd accounts it (a user manager does not by default), never a made-up 0.
        accounted = sandbox.show(f"{name}.service", "CPUUsageNSec")["CPUUsageNSec"].isdigit()
        assert (("unitgate_service_cpu_seconds_total", (("service", name),)) in values) == accounted
    assert values["unitgate_service_up", (("service", HEALTHY),)] == 1
    assert values["unitgate_service_up", (("service", FAILING),)] == 0
    assert values["unitgate_service_state", (("service", HEALTHY), ("state", "active"))] == 1
    assert values["unitgate_service_state", (("service", FAILING), ("state", "failed"))] == 1
    assert (
        sum(
            v
            for (n, labels), v in values.items()
            if n == "unitgate_service_state" and ("service", HEALTHY) in labels
        )
        == 1
    )
    assert values["unitgate_service_memory_bytes", (("service", HEALTHY),)] > 0
    assert values["unitgate_service_start_time_seconds", (("service", HEALTHY),)] > 1.7e9
    assert not [key for key in values if ("service", MISSING) in key[1]]  # not installed: no series
    assert sum(v for (n, _), v in values.items() if n == "unitgate_watcher_mode") == 1
    assert ("unitgate_processes_spawned_total", ()) in values
    assert ("unitgate_websockets_open", ()) in values


async def test_own_counters_move(server: RunningServer) -> None:
    before = samples((await scrape(server, VIEWER_TOKEN)).text)
    async with httpx.AsyncClient(headers=bearer()) as client:
        await client.post(server.url, json={"query": "{ __typename }"})
        await client.post(server.url, json={"query": "{ nope }"})
    after = samples((await scrape(server, VIEWER_TOKEN)).text)
    ok = ("unitgate_requests_total", (("operation_type", "query"), ("outcome", "ok")))
    failed = ("unitgate_requests_total", (("operation_type", "query"), ("outcome", "error")))
    assert after[ok] - before.get(ok, 0) == 1
    assert after[failed] - before.get(failed, 0) == 1


async def test_concurrent_scrapes_share_one_systemctl(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
) -> None:
    client = await make_client()
    runner_before = (await client.get("/metrics")).text  # warms the app; also a scrape
    spawned = samples(runner_before)["unitgate_processes_spawned_total", ()]
    responses = await asyncio.gather(*(client.get("/metrics") for _ in range(20)))
    assert all(r.status_code == 200 for r in responses)
    after = samples((await client.get("/metrics")).text)["unitgate_processes_spawned_total", ()]
    # 21 scrapes: the 20 concurrent ones shared one `systemctl show`, the last made its own.
    assert after - spawned <= 2


async def test_public_metrics_and_the_instance_label(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
) -> None:
    client = await make_client(metrics_public=True, instance_name="web1")
    del client.headers["authorization"]
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'unitgate_service_up{instance_name="web1",service="nginx"} 1.0' in response.text


def test_alert_rules_pass_promtool(promtool: str) -> None:
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 4 rules found" in check.stdout


def test_each_alert_fires_and_stays_silent_when_healthy(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name], capture_output=True, text=True, cwd=RULE_TESTS.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_scrapes_answer_from_the_signal_kept_snapshot(server: RunningServer) -> None:
    runner = server.control.runner
    assert (await scrape(server, VIEWER_TOKEN)).status_code == 200  # connects the watcher: one read
    before = runner.spawned
    for _ in range(5):
        assert (await scrape(server, VIEWER_TOKEN)).status_code == 200
    # Signals vouch that the watcher's last read is current: no systemctl, unless these scrapes
    # outlast memory_max_age (2 s); one process per scrape would be 5.
    assert runner.spawned - before <= 1
