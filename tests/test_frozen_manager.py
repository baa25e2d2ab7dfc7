"""A manager stopped by SIGSTOP: every read path gives its typed error within status_timeout plus
one second, however its waits stack (the round trip to systemd, the watcher's read, the wrapper's,
the process queue), and everything works again once the manager does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from tests.helpers import OPERATOR_TOKEN, RunningServer, bearer, post
from tests.units import HEALTHY
from unitgate.sandbox.manager import UserManagerSandbox

pytestmark = pytest.mark.timeout(120)

STATUS_TIMEOUT = 2.0
# The promise the README makes (status_timeout plus one second); a contract, not a benchmark.
PROMISE = STATUS_TIMEOUT + 1.0

SERVICES = "{ services { __typename ... on SystemctlTimeout { command timeoutSeconds } } }"
SERVICE = f'{{ service(name: "{HEALTHY}") {{ __typename }} }}'
RESTART = f'mutation {{ restartService(name: "{HEALTHY}") {{ __typename }} }}'
WATCH = f'subscription {{ serviceStatusChanged(names: ["{HEALTHY}"]) {{ __typename }} }}'


@contextlib.contextmanager
def frozen(sandbox: UserManagerSandbox) -> Iterator[None]:
    pid = sandbox.pid
    assert pid is not None
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "systemd"
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def timed(what: Awaitable[Any]) -> tuple[Any, float]:
    started = time.monotonic()
    answer = await what
    return answer, time.monotonic() - started


async def first_event(server: RunningServer) -> str:
    async with websockets.connect(server.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": WATCH}}))
        message = json.loads(await ws.recv())
        assert message["type"] == "next", message
        return str(message["payload"]["data"]["serviceStatusChanged"]["__typename"])


async def scrape(server: RunningServer) -> int:
    async with httpx.AsyncClient(headers=bearer(), timeout=30) as client:
        return (await client.get(server.url.replace("/graphql", "/metrics"))).status_code


def typename(body: dict[str, Any]) -> str:
    (field,) = body["data"].values()
    return str(field["__typename"])


@pytest.mark.parametrize("warm", [False, True], ids=["watcher idle", "watcher connected"])
async def test_every_read_path_answers_a_frozen_manager_in_time(
    make_server: Callable[..., RunningServer], sandbox: UserManagerSandbox, warm: bool
) -> None:
    server = make_server(status_timeout=STATUS_TIMEOUT, max_processes=2)
    if warm:  # the watcher connected and trusted, as a busy server has it
        assert typename(await post(server.url, SERVICES)) == "ServiceList"
    with frozen(sandbox):
        paths: dict[str, Awaitable[Any]] = {
            "services": post(server.url, SERVICES),
            "service": post(server.url, SERVICE),
            "restart": post(server.url, RESTART),
            "metrics": scrape(server),
            "first snapshot": first_event(server),
        }
        # All at once, so that they also queue behind each other's processes (two slots).
        names = list(paths)
        results = await asyncio.gather(*(timed(paths[name]) for name in names))
        answers = dict(zip(names, results, strict=True))
    slow = {name: round(seconds, 2) for name, (_, seconds) in answers.items() if seconds > PROMISE}
    assert not slow, slow
    assert typename(answers["services"][0]) == "SystemctlTimeout"
    assert answers["services"][0]["data"]["services"]["timeoutSeconds"] == STATUS_TIMEOUT
    assert typename(answers["service"][0]) == "SystemctlTimeout"
    assert typename(answers["restart"][0]) == "SystemctlTimeout"
    assert answers["metrics"][0] == 503
    # A connected watcher's snapshot needs no read: a new subscriber starts from it (the frozen
    # manager has changed nothing since its last signal). With none, the read times out.
    assert answers["first snapshot"][0] == ("ServiceStatus" if warm else "SystemctlTimeout")
    # Thawed, the same server answers again, from a read made after the thaw.
    assert typename(await post(server.url, SERVICES)) == "ServiceList"
    assert await first_event(server) == "ServiceStatus"
