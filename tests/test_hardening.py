"""The second attack pass's smaller holes, each tried: a trusted document run without a token,
an alias as a second budget, one token using up another's, scoped metrics, health that costs a
process, a config file others may read, a forwarded address believed. (The subscription cap's
4429: test_limits.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from tests.helpers import (
    OPERATOR,
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    Served,
    bearer,
    sandbox_settings,
    stderr_lines,
)
from tests.units import HEALTHY
from unitgate.config.file import file_mode_problem
from unitgate.deploy.install import Report, write
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.server.app import create_app
from unitgate.services.errors import ActionInProgress, RateLimited
from unitgate.services.policy.access import Role, scoped_actor
from unitgate.services.policy.control import ServiceControl
from unitgate.services.policy.guard import ActionGuard, RateLimit
from unitgate.services.policy.tokens import new_token, token_sha256
from unitgate.services.systemd.units import UnitVerb
from unitgate.view.trusted_documents import document_hash
from unitgate.view.ws_admission import EVICTED_REASON

SCOPED_TOKEN = new_token()


# --- A trusted document by its hash is an operation: it needs a token, page or not.


@pytest.fixture
async def app_client(
    make_control: Callable[..., ServiceControl], tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[tuple[httpx.AsyncClient, ServiceControl]]]]:
    """The app in process with these settings, a client with no token, and its control."""
    clients: list[httpx.AsyncClient] = []

    async def make(**overrides: Any) -> tuple[httpx.AsyncClient, ServiceControl]:
        control = make_control(**overrides)
        app = create_app(sandbox_settings(**overrides), control)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")
        clients.append(client)
        return client, control

    yield make
    for client in clients:
        await client.aclose()


async def test_a_browser_get_naming_a_trusted_document_needs_a_token(
    app_client: Callable[..., Awaitable[tuple[httpx.AsyncClient, ServiceControl]]], tmp_path: Path
) -> None:
    document = "query Me { me { name } }"
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({document_hash(document): document}))
    client, _ = await app_client(trusted_documents=str(manifest))
    html = {"Accept": "text/html"}
    for params in (
        {"documentId": document_hash(document)},
        {"documentId": "0" * 64},  # and nobody learns whether a hash is in the manifest
        {"query": "{ me { name } }"},
        {"extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": document_hash(document)}})},
    ):
        response = await client.get("/graphql", params=params, headers=html)
        assert response.status_code == 401, (params, response.text)
    page = await client.get("/graphql", headers=html)
    assert page.status_code == 200
    assert "<html" in page.text.lower()
    with_token = await client.get(
        "/graphql", params={"documentId": document_hash(document)}, headers=bearer()
    )
    assert with_token.json() == {"data": {"me": {"name": "test-operator"}}}


# --- Locks and budgets belong to the unit, and each caller has a budget of its own.


def test_each_caller_has_a_budget_of_its_own_on_a_unit() -> None:
    now = [0.0]
    guard = ActionGuard(RateLimit(2, 60), RateLimit(3, 60), clock=lambda: now[0])
    for _ in range(2):
        with guard.admit("nginx.service", "nginx", "php-team"):
            pass
    with pytest.raises(RateLimited), guard.admit("nginx.service", "nginx", "php-team"):
        pass
    with guard.admit("nginx.service", "nginx", "admins"):  # not locked out by php-team
        pass
    # Three in all on the unit: a fourth caller waits for the unit's budget.
    with pytest.raises(RateLimited) as limited, guard.admit("nginx.service", "nginx", "status-page"):
        pass
    assert limited.value.retry_after_seconds == 60
    now[0] = 60.0
    with guard.admit("nginx.service", "nginx", "status-page"):
        pass


def test_a_unit_is_one_lock_under_any_name() -> None:
    guard = ActionGuard(RateLimit(10, 60))
    with guard.reserve("mysql"), guard.admit("mariadb.service", "mysql", "a"):
        assert guard.in_flight("mysql")
        assert guard.in_flight("mariadb.service")
        with pytest.raises(ActionInProgress), guard.reserve("mysql"):  # before it reads
            pass
        with guard.reserve("mariadb"), pytest.raises(ActionInProgress):  # once it has read
            with guard.admit("mariadb.service", "mariadb", "b"):
                pass
    assert not guard.in_flight("mysql")


@pytest.fixture
def aliased(sandbox: UserManagerSandbox) -> Iterator[tuple[str, str]]:
    """netdata.service, and ufw.service as an alias of it (both allowlisted names)."""
    unit = sandbox.unit_dir / "netdata.service"
    alias = sandbox.unit_dir / "ufw.service"
    unit.write_text("[Unit]\nDescription=Aliased\n[Service]\nExecStart=/bin/sleep infinity\n")
    alias.symlink_to(unit)
    sandbox.systemctl("daemon-reload")
    sandbox.systemctl("start", "netdata.service")
    try:
        yield "netdata", "ufw"
    finally:
        sandbox.systemctl("stop", "netdata.service", check=False)
        alias.unlink()
        unit.unlink()
        sandbox.systemctl("daemon-reload")


async def test_an_alias_shares_its_units_lock_and_budget(
    make_control: Callable[..., ServiceControl], aliased: tuple[str, str]
) -> None:
    name, alias = aliased
    control = make_control(action_limit=1, unit_action_limit=2, action_window=3600)
    # At the same moment under both names: one runs, the other finds the unit busy.
    outcomes = await asyncio.gather(
        control.restart(name, OPERATOR), control.restart(alias, OPERATOR), return_exceptions=True
    )
    kinds = sorted(type(outcome).__name__ for outcome in outcomes)
    assert kinds == ["ActionInProgress", "UnitStatus"], outcomes
    with pytest.raises(RateLimited):  # the caller's one action on that unit, under either name
        await control.restart(alias, OPERATOR)
    other = scoped_actor("php-team", Role.OPERATOR, "127.0.0.1", UnitVerb)
    assert (await control.restart(alias, other)).unit_id == "netdata.service"
    third = scoped_actor("admins", Role.OPERATOR, "127.0.0.1", UnitVerb)
    with pytest.raises(RateLimited):  # the unit's two are spent
        await control.restart(name, third)


# --- /metrics and /healthz: what a scoped token sees, what anyone costs.


def scoped_tokens() -> list[dict[str, Any]]:
    return [
        {"name": "test-operator", "role": "operator", "sha256": token_sha256(OPERATOR_TOKEN)},
        {"name": "test-viewer", "role": "viewer", "sha256": token_sha256(VIEWER_TOKEN)},
        {"name": "nginx-only", "role": "viewer", "sha256": token_sha256(SCOPED_TOKEN), "services": [HEALTHY]},
    ]


INTERNALS = (
    "unitgate_actions_total",
    "unitgate_requests_total",
    "unitgate_processes_spawned_total",
    "unitgate_subscriptions_active",
    "unitgate_websockets_open",
    "unitgate_watcher_mode",
)


async def test_a_scoped_token_scrapes_its_services_and_nothing_of_the_rest(
    app_client: Callable[..., Awaitable[tuple[httpx.AsyncClient, ServiceControl]]],
) -> None:
    client, _ = await app_client(tokens=scoped_tokens())
    await client.post("/graphql", json={"query": "{ __typename }"}, headers=bearer())
    full = (await client.get("/metrics", headers=bearer(VIEWER_TOKEN))).text
    scoped = (await client.get("/metrics", headers=bearer(SCOPED_TOKEN))).text
    assert all(series in full for series in INTERNALS)
    assert not [series for series in INTERNALS if series in scoped]
    services = {
        line.split('service="')[1].split('"')[0] for line in scoped.splitlines() if 'service="' in line
    }
    assert services == {HEALTHY}


async def test_health_costs_one_process_however_many_ask_and_keeps_internals_to_operators(
    app_client: Callable[..., Awaitable[tuple[httpx.AsyncClient, ServiceControl]]],
) -> None:
    client, control = await app_client(tokens=scoped_tokens())
    await client.get("/healthz")
    before = control.runner.spawned
    answers = [await client.get("/healthz") for _ in range(100)]
    assert {answer.json()["status"] for answer in answers} == {"ok"}
    assert control.runner.spawned - before == 0  # the first check is reused
    anyone = answers[0].json()
    assert set(anyone) == {"status"}
    viewer = (await client.get("/healthz", headers=bearer(VIEWER_TOKEN))).json()
    assert viewer["detail"].startswith("systemd ")
    assert "watcherDetail" not in viewer
    assert "watcher" not in viewer
    operator = (await client.get("/healthz", headers=bearer())).json()
    assert {"detail", "watcher", "watcherDetail"} <= set(operator)


# --- The config file: private, or no server.


@pytest.mark.parametrize(
    ("mode", "tokens", "problem"),
    [
        (0o640, True, None),
        (0o600, True, None),
        (0o644, False, None),  # nothing secret in it, and only its owner writes it
        (0o644, True, "readable by every user"),
        (0o660, True, "writable by others"),
        (0o666, False, "writable by others"),
    ],
)
def test_which_config_modes_are_refused(mode: int, tokens: bool, problem: str | None) -> None:
    found = file_mode_problem(stat.S_IFREG | mode, tokens)
    assert found is None if problem is None else problem in (found or "")


def test_serve_refuses_a_config_every_user_may_read(tmp_path: Path) -> None:
    config = tmp_path / "unitgate.toml"
    config.write_text(f'[[tokens]]\nname = "x"\nrole = "viewer"\nsha256 = "{"a" * 64}"\n')
    config.chmod(0o644)
    serve = subprocess.run(
        [sys.executable, "-m", "unitgate", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode == 2
    assert f"chmod 640 {config}" in serve.stderr
    assert "Traceback" not in serve.stderr


def test_setup_puts_a_right_files_wrong_mode_right(tmp_path: Path) -> None:
    path = tmp_path / "unitgate.toml"
    path.write_text("port = 8000\n")
    os.chmod(path, 0o666)  # noqa: S103 - the content is what setup wants, the mode is not
    report = Report(dry_run=False)
    assert write(report, path, "port = 8000\n", 0o640)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert report.lines == [f"chmod 640 {path} (was 666)"]
    again = Report(dry_run=False)
    assert not write(again, path, "port = 8000\n", 0o640)
    assert again.lines == [f"unchanged: {path}"]


async def test_a_forwarded_for_header_names_no_one(serve_process: Callable[..., Served]) -> None:
    """No proxy is trusted: a local process that sends X-Forwarded-For is audited, and counted by
    the per-address websocket limits, as the address it connects from."""
    served = serve_process(max_pending_websockets_per_address=2)
    forged = {"X-Forwarded-For": "203.0.113.99", "Forwarded": "for=203.0.113.99"}
    reload = f'mutation {{ reloadService(name: "{HEALTHY}") {{ __typename }} }}'
    async with httpx.AsyncClient(headers={**bearer(), **forged}, timeout=30) as client:
        answer = await client.post(served.url, json={"query": reload})
    assert answer.json() == {"data": {"reloadService": {"__typename": "ReloadSucceeded"}}}
    ws_url = served.url.replace("http", "ws")
    # Silent sockets "from" three addresses, all from 127.0.0.1: its limit of 2 holds, and the
    # third evicts the first (it would not, were the header believed).
    held = [
        await websockets.connect(
            ws_url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            additional_headers={"X-Forwarded-For": address},
        )
        for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3")
    ]
    await asyncio.wait_for(held[0].wait_closed(), timeout=10)
    assert held[0].close_reason == EVICTED_REASON
    for ws in held:
        await ws.close()
    audit = [json.loads(line) for line in stderr_lines(served) if line.startswith('{"time"')]
    assert [line["client"] for line in audit] == ["127.0.0.1"]
