"""A three-node cluster as `fleet init` writes it (TLS routes, verified both ways, and their own
password), and real nats-servers that try to join it: one with no TLS, one with the fleet's own
certificate and key (a node's files leaked) but no route password. Neither joins, and what a
client of theirs publishes on a host's action subject reaches no agent."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.errors import NoRespondersError

from tests.helpers import agent_on_sandbox, fleet_connect, fleet_init, free_port
from tests.test_fleet import start_nats, stop, until
from unitgate.sandbox import demo_fleet
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.fleet import plan as plans
from unitgate.services.fleet import subjects

pytestmark = pytest.mark.timeout(120)


@dataclass
class Cluster:
    directory: Path
    clients: list[str]
    routes: list[int]


@pytest.fixture(scope="module")
def cluster(sandbox: UserManagerSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("routes")
    clients, routes = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    urls = [f"nats://127.0.0.1:{port}" for port in clients]
    hops = ",".join(f"nats-route://127.0.0.1:{port}" for port in routes)
    fleet_init(directory, "web1", ",".join(urls), "--routes", hops)
    agent_on_sandbox(directory / "web1.toml", sandbox)
    nodes = [start_nats(directory / f"nats-server-{n}.conf", url) for n, url in enumerate(urls, start=1)]
    agent = subprocess.Popen(
        [sys.executable, "-m", "unitgate", "agent", "--config", str(directory / "web1.toml")],
        env={**os.environ, **sandbox.env},
        stderr=subprocess.DEVNULL,
    )
    try:
        yield Cluster(directory, urls, routes)
    finally:
        stop(agent)
        for node in nodes:
            stop(node)


async def answers(nc: Any, subject: str) -> bool:
    """Whether anyone serves `subject` as seen from `nc`'s server."""
    try:
        await nc.request(subject, b"{}", timeout=5)
    except NoRespondersError:
        return False
    return True


HISTORY = subjects.command("web1", "history")  # harmless to ask: a read the agent answers


async def test_a_client_on_another_node_reaches_the_agent_over_the_tls_routes(cluster: Cluster) -> None:
    node3 = await fleet_connect(cluster.directory)(
        [cluster.clients[2]],
        nkeys_seed=str(cluster.directory / "hub.nk"),
        inbox_prefix=subjects.inbox_prefix(subjects.HUB_USER),
    )
    try:
        await until(lambda: answers(node3, HISTORY), 60)
    finally:
        await node3.close()
    config = (cluster.directory / "nats-server-1.conf").read_text()
    assert "verify: true" in config
    password = plans.load(cluster.directory).route_password
    assert password is not None
    assert password in config


def rogue_config(directory: Path, tls: str, route: str) -> tuple[Path, int, int]:
    client, monitor = free_port(), free_port()
    path = directory / f"rogue-{client}.conf"
    path.write_text(
        f'listen: "127.0.0.1:{client}"\nhttp: "127.0.0.1:{monitor}"\nserver_name: "rogue-{client}"\n'
        f'cluster {{ name: "unitgate", listen: "127.0.0.1:{free_port()}", {tls} routes: [{json.dumps(route)}] }}\n'
    )
    return path, client, monitor


def start_rogue(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen([str(demo_fleet.NATS_SERVER), "-c", str(config)], stderr=sink)


def rogue_routes(monitor: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{monitor}/routez", timeout=5).json()["num_routes"])


@pytest.mark.parametrize("kind", ["no TLS, no password", "the fleet's own certificate, no password"])
async def test_a_server_without_the_route_credentials_cannot_join_or_reach_an_agent(
    cluster: Cluster, kind: str, tmp_path: Path
) -> None:
    target = f"nats-route://127.0.0.1:{cluster.routes[0]}"
    tls = ""
    if "certificate" in kind:
        d = cluster.directory
        tls = f'tls {{ cert_file: "{d}/nats-server.pem", key_file: "{d}/nats-server-key.pem", ca_file: "{d}/ca.pem" }}, '
    config, client, monitor = rogue_config(tmp_path, tls, target)
    log = tmp_path / "rogue.log"
    rogue = start_rogue(config, log)
    try:
        # The real node's hub-side control: the agent answers through the cluster.
        legit = await fleet_connect(cluster.directory)(
            [cluster.clients[0]],
            nkeys_seed=str(cluster.directory / "hub.nk"),
            inbox_prefix=subjects.inbox_prefix(subjects.HUB_USER),
        )
        await until(lambda: answers(legit, HISTORY), 60)
        heard: list[bytes] = []
        spy = await fleet_connect(cluster.directory)(  # as the agent's own key: what reaches web1
            [cluster.clients[0]],
            nkeys_seed=str(cluster.directory / "web1.nk"),
            inbox_prefix=subjects.inbox_prefix("web1"),
        )

        async def record(msg: Any) -> None:
            heard.append(msg.data)

        await spy.subscribe(subjects.command("web1", "restart"), cb=record)
        await spy.flush()

        async def refused() -> bool:  # the rogue dialled and was turned away, at least once
            text = log.read_text(errors="replace")
            return "Router connection closed" in text or "Authorization Violation" in text

        await until(refused, 30)
        assert rogue_routes(monitor) == 0
        intruder = await nats.connect([f"nats://127.0.0.1:{client}"], allow_reconnect=False)
        try:
            # Had it joined, web1's interest would have reached it, and the agent answered.
            assert not await answers(intruder, subjects.command("web1", "restart"))
            await intruder.publish(subjects.command("web1", "restart"), b"rogue")
            await intruder.flush()
        finally:
            await intruder.close()
        await legit.publish(subjects.command("web1", "restart"), b"marker")
        await legit.flush()
        await until(lambda: asyncio.sleep(0, b"marker" in heard), 10)
        assert b"rogue" not in heard
        assert rogue_routes(monitor) == 0
        await spy.close()
        await legit.close()
    finally:
        stop(rogue)
