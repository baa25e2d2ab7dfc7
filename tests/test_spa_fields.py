"""What an SPA's cache and cards need: ids, the instance, and why a service stopped, checked
against `systemctl show` for a running, a crashed (exit 3) and a killed (SIGKILL) unit."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import RunningServer, post, wait_until
from tests.units import HEALTHY
from unitgate.sandbox.manager import UserManagerSandbox

CRASHING, KILLED = "ufw", "php8.4-fpm"  # allowlisted, and no other test's
UNITS = {
    CRASHING: "[Unit]\nDescription=Test service that exits 3\n[Service]\nExecStart=/bin/sh -c 'exit 3'\n",
    KILLED: "[Unit]\nDescription=Test service to be killed\n[Service]\nExecStart=/bin/sleep infinity\n",
}
FIELDS = "id name activeState result mainExitStatus cpuSeconds tasks"
SERVICE = f"query($n: String!) {{ service(name: $n) {{ ... on ServiceStatus {{ {FIELDS} }} }} }}"


@pytest.fixture
def ended_units(sandbox: UserManagerSandbox) -> Iterator[None]:
    for name, body in UNITS.items():
        (sandbox.unit_dir / f"{name}.service").write_text(body)
    sandbox.systemctl("daemon-reload")
    try:
        sandbox.systemctl("start", f"{CRASHING}.service", check=False)  # exits 3 at once
        sandbox.systemctl("start", f"{KILLED}.service")
        sandbox.systemctl("kill", "--signal=SIGKILL", f"{KILLED}.service")
        wait_until(
            lambda: all(sandbox.show(f"{n}.service", "ActiveState")["ActiveState"] == "failed" for n in UNITS)
        )
        yield
    finally:
        for name in UNITS:
            sandbox.systemctl("stop", f"{name}.service", check=False)
            (sandbox.unit_dir / f"{name}.service").unlink()
        sandbox.systemctl("daemon-reload")
        sandbox.systemctl("reset-failed", check=False)


def expected_from_show(sandbox: UserManagerSandbox, name: str) -> dict[str, Any]:
    show = sandbox.show(
        f"{name}.service",
        "ActiveState",
        "Result",
        "ExecMainCode",
        "ExecMainStatus",
        "CPUUsageNSec",
        "TasksCurrent",
    )
    return {
        "activeState": show["ActiveState"],
        "result": show["Result"],
        "mainExitStatus": int(show["ExecMainStatus"]) if show["ExecMainCode"] in ("1", "2", "3") else None,
        "cpuSeconds": int(show["CPUUsageNSec"]) / 1e9 if show["CPUUsageNSec"].isdigit() else None,
        "tasks": int(show["TasksCurrent"]) if show["TasksCurrent"].isdigit() else None,
    }


async def test_why_a_service_stopped(
    server: RunningServer, sandbox: UserManagerSandbox, ended_units: None
) -> None:
    for name, state, result, status in (
        (HEALTHY, "active", "success", None),
        (CRASHING, "failed", "exit-code", 3),
        (KILLED, "failed", "signal", 9),
    ):
        got = (await post(server.url, SERVICE, {"n": name}))["data"]["service"]
        want = expected_from_show(sandbox, name)
        if name == HEALTHY and want["cpuSeconds"] is not None:
            # A running unit's CPU time moves between the two reads: near enough is the same.
            assert got["cpuSeconds"] == pytest.approx(want["cpuSeconds"], abs=0.05)
            want["cpuSeconds"] = got["cpuSeconds"]
        assert {k: got[k] for k in want} == want
        assert (got["activeState"], got["result"], got["mainExitStatus"]) == (state, result, status)


async def test_ids_are_stable_and_name_the_instance(server: RunningServer) -> None:
    query = (
        "{ services { ... on ServiceList { services { id name } } } instance { name scope systemdVersion } }"
    )
    first, second = (await post(server.url, query))["data"], (await post(server.url, query))["data"]
    assert first == second
    host = socket.gethostname()
    assert first["instance"]["name"] == host
    assert first["instance"]["scope"] == "user"
    assert first["instance"]["systemdVersion"][:3].isdigit()  # "252.39-1~deb12u2", say
    ids = [service["id"] for service in first["services"]["services"]]
    assert ids == [f"{host}/{service['name']}" for service in first["services"]["services"]]
    assert len(set(ids)) == len(ids)


async def test_the_instance_name_from_the_config(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
) -> None:
    client = await make_client(instance_name="web1")
    body = (
        await client.post(
            "/graphql",
            json={
                "query": f'{{ service(name: "{HEALTHY}") {{ ... on ServiceStatus {{ id }} }} instance {{ name }} }}'
            },
        )
    ).json()
    assert body["data"] == {"service": {"id": f"web1/{HEALTHY}"}, "instance": {"name": "web1"}}
