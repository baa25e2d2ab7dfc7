"""The fleet with real parts: a nats-server with JetStream, two hosts (each its own systemd user
manager) with an agent each, as processes, and a hub under uvicorn. Nothing fakes NATS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from tests.helpers import (
    FLEET_INIT,
    RunningServer,
    agent_on_sandbox,
    fleet_connect,
    fleet_init,
    free_port,
    serve,
)
from tests.units import CRASHY, HEALTHY, LOGGY, STARTED, UNITS
from unitgate.cli.fleet import build_fleet_control
from unitgate.config.settings import load_settings
from unitgate.sandbox import demo_fleet
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.server.app import create_app
from unitgate.services.fleet import subjects
from unitgate.services.policy.tokens import new_token, token_sha256

pytestmark = pytest.mark.timeout(120)


@dataclass
class Fleet:
    directory: Path
    nats_url: str
    token: str
    hosts: dict[str, UserManagerSandbox]
    agents: dict[str, subprocess.Popen[bytes]]
    nats: subprocess.Popen[bytes]
    hub: RunningServer

    def start_agent(self, name: str) -> None:
        sandbox = self.hosts[name]
        self.agents[name] = subprocess.Popen(
            [sys.executable, "-m", "unitgate", "agent", "--config", str(self.directory / f"{name}.toml")],
            env={**os.environ, **sandbox.env},
            stderr=subprocess.DEVNULL,
        )

    def start_nats(self) -> None:
        self.nats = start_nats(self.directory / "nats-server.conf", self.nats_url)


def start_nats(config: Path, url: str) -> subprocess.Popen[bytes]:
    return demo_fleet.start_nats(config, int(url.rsplit(":", 1)[1]))


def stop(process: subprocess.Popen[bytes], how: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(how)
        process.wait(20)


def hub_server(directory: Path, token: str) -> Any:
    settings = load_settings(directory / "hub.toml", {"port": free_port()})
    control = build_fleet_control(settings)
    return serve(
        create_app(settings, control), cast(Any, control)
    )  # RunningServer.control: ServiceControl elsewhere


@pytest.fixture(scope="module")
def fleet(sandbox: UserManagerSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("fleet")
    url = f"nats://127.0.0.1:{free_port()}"
    token = fleet_init(directory, "web1,web2", url)
    with UserManagerSandbox(UNITS, start=STARTED) as second:
        hosts = {"web1": sandbox, "web2": second}
        for name, host in hosts.items():
            agent_on_sandbox(directory / f"{name}.toml", host)
        nats_process = start_nats(directory / "nats-server.conf", url)
        with hub_server(directory, token) as hub:
            running = Fleet(directory, url, token, hosts, {}, nats_process, hub)
            for name in hosts:
                running.start_agent(name)
            try:
                yield running
            finally:
                for agent in running.agents.values():
                    stop(agent)
        stop(running.nats)


async def ask(fleet: Fleet, query: str, variables: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {fleet.token}"}) as client:
        response = await client.post(fleet.hub.url, json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


INSTANCES = "{ instances { name online systemdVersion counts { total active failed } } }"


async def until(check: Callable[[], Awaitable[bool]], seconds: float) -> float:
    """Ask again until `check` holds (state in other processes offers no event here); how long
    it took. Fails loudly past `seconds`."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def online(fleet: Fleet, *names: str) -> bool:
    states = {i["name"]: i["online"] for i in (await ask(fleet, INSTANCES))["instances"]}
    return all(states.get(name) for name in names)


async def test_the_hub_lists_every_host_with_what_its_systemd_says(fleet: Fleet) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    query = "{ services { ... on ServiceList { services { id name mainPid activeState } } } }"
    expected = {f"{name}/{unit.removesuffix('.service')}" for name in fleet.hosts for unit in STARTED}

    async def complete() -> bool:  # a heartbeat can come before the agent's first statuses
        listed = (await ask(fleet, query))["services"]["services"]
        return expected <= {service["id"] for service in listed}

    await until(complete, 30)
    listed = (await ask(fleet, query))["services"]["services"]
    by_id = {service["id"]: service for service in listed}
    for name, host in fleet.hosts.items():
        for unit in STARTED:
            service = unit.removesuffix(".service")
            shown = host.show(unit, "MainPID", "ActiveState")
            assert by_id[f"{name}/{service}"]["activeState"] == shown["ActiveState"]
            pid = int(shown["MainPID"]) or None
            assert by_id[f"{name}/{service}"]["mainPid"] in (pid, None if pid is None else pid)
    instances = (await ask(fleet, INSTANCES))["instances"]
    assert [i["name"] for i in instances] == ["web1", "web2"]
    assert all(i["systemdVersion"] and i["counts"]["total"] >= len(STARTED) for i in instances)


async def test_a_restart_through_the_hub_changes_that_host_only(fleet: Fleet) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    before = {
        name: host.show(f"{HEALTHY}.service", "MainPID")["MainPID"] for name, host in fleet.hosts.items()
    }
    restart = f'mutation {{ restartService(name: "{HEALTHY}", instance: "web2") {{ __typename ... on RestartSucceeded {{ service {{ id mainPid }} }} }} }}'
    result = (await ask(fleet, restart))["restartService"]
    assert result["__typename"] == "RestartSucceeded", result
    after = {
        name: host.show(f"{HEALTHY}.service", "MainPID")["MainPID"] for name, host in fleet.hosts.items()
    }
    assert after["web1"] == before["web1"]
    assert after["web2"] != before["web2"]
    assert result["service"] == {"id": f"web2/{HEALTHY}", "mainPid": int(after["web2"])}


async def next_data(ws: Any) -> dict[str, Any]:
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "next":
            return dict(message["payload"]["data"])
        assert message["type"] in ("ka", "ping", "pong"), message


async def test_a_sigkill_on_one_host_reaches_a_hub_subscriber(fleet: Fleet) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    host = fleet.hosts["web1"]
    document = f'subscription {{ serviceStatusChanged(names: ["{CRASHY}"], instances: ["web1"]) {{ ... on ServiceStatus {{ id mainPid }} }} }}'
    async with websockets.connect(fleet.hub.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {fleet.token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": document}}))
        first = (await next_data(ws))["serviceStatusChanged"]
        assert first["id"] == f"web1/{CRASHY}"
        killed = int(host.show(f"{CRASHY}.service", "MainPID")["MainPID"])
        assert first["mainPid"] == killed
        os.kill(killed, signal.SIGKILL)
        async with asyncio.timeout(10):
            while (event := (await next_data(ws))["serviceStatusChanged"])["mainPid"] == killed:
                pass
        assert event["id"] == f"web1/{CRASHY}"  # web2's postfix is no event of this subscription


async def test_logs_come_from_the_host_named(fleet: Fleet) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    query = f'query($i: String) {{ serviceLogs(name: "{LOGGY}", instance: $i, lines: 5) {{ ... on ServiceLogs {{ lines {{ pid message }} }} }} }}'
    for name, host in fleet.hosts.items():
        pid = int(host.show(f"{LOGGY}.service", "MainPID")["MainPID"])
        lines = (await ask(fleet, query, {"i": name}))["serviceLogs"]["lines"]
        assert lines
        assert pid in {line["pid"] for line in lines}


async def test_history_comes_from_the_host_named(fleet: Fleet) -> None:
    """A restart through the hub on web2 is in web2's history as its agent read it from web2's
    journal, and not in web1's."""
    await until(lambda: online(fleet, "web1", "web2"), 30)
    since = datetime.now(UTC).isoformat()
    restart = f'mutation {{ restartService(name: "{HEALTHY}", instance: "web2") {{ __typename }} }}'
    assert (await ask(fleet, restart))["restartService"]["__typename"] == "RestartSucceeded"
    query = (
        "query($n: String!, $i: String, $s: DateTime) { serviceHistory(name: $n, instance: $i, since: $s) {"
        " __typename ... on ServiceHistory { instance complete journalStart events { kind } } } }"
    )
    web2 = (await ask(fleet, query, {"n": HEALTHY, "i": "web2", "s": since}))["serviceHistory"]
    web1 = (await ask(fleet, query, {"n": HEALTHY, "i": "web1", "s": since}))["serviceHistory"]
    assert web2["instance"] == "web2"
    assert [event["kind"] for event in reversed(web2["events"])] == [
        "STOPPING",
        "STOPPED",
        "STARTING",
        "STARTED",
    ]
    assert web2["complete"]
    assert web2["journalStart"] is not None
    assert (web1["instance"], web1["events"]) == ("web1", [])


async def subscribed(fleet: Fleet, document: str) -> Any:
    ws = await websockets.connect(fleet.hub.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")])
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {fleet.token}"}})
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": document}}))
    return ws


async def test_a_running_agent_holds_no_pydantic(fleet: Fleet) -> None:
    """The agent read its config in a child that has ended (cli/agent.py): its own process
    maps no pydantic_core, which it would otherwise hold all its life."""
    await until(lambda: online(fleet, "web1"), 30)
    maps = await asyncio.to_thread(Path(f"/proc/{fleet.agents['web1'].pid}/maps").read_text)
    assert "dbus_fast" in maps  # what it does load shows here
    assert "pydantic_core" not in maps


async def test_a_dead_agent_is_offline_in_time_and_comes_back(fleet: Fleet) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    ws = await subscribed(fleet, "subscription { instanceStatusChanged { name online } }")
    try:
        first = [(await next_data(ws))["instanceStatusChanged"] for _ in range(2)]
        assert first == [{"name": "web1", "online": True}, {"name": "web2", "online": True}]
        stop(fleet.agents["web2"], signal.SIGKILL)
        killed = time.monotonic()
        try:
            async with asyncio.timeout(10):  # the bound: offline within 10 s
                assert (await next_data(ws))["instanceStatusChanged"] == {"name": "web2", "online": False}
            offline_after = time.monotonic() - killed
            restart = f'mutation {{ restartService(name: "{HEALTHY}", instance: "web2") {{ __typename }} }}'
            started = time.monotonic()
            assert (await ask(fleet, restart))["restartService"]["__typename"] == "InstanceOffline"
            assert time.monotonic() - started < 1.0  # the server's no-responders reply, not a timeout
            assert await online(fleet, "web1")
        finally:
            fleet.start_agent("web2")
        async with asyncio.timeout(30):  # it comes back by itself
            assert (await next_data(ws))["instanceStatusChanged"] == {"name": "web2", "online": True}
        assert offline_after <= 10
    finally:
        await ws.close()


async def not_online(fleet: Fleet, name: str) -> bool:
    return not await online(fleet, name)


async def test_unknown_and_unreached_instances_are_not_found(fleet: Fleet) -> None:
    query = f'{{ service(name: "{HEALTHY}", instance: "db9") {{ __typename ... on InstanceNotFound {{ instance }} }} }}'
    assert (await ask(fleet, query))["service"] == {"__typename": "InstanceNotFound", "instance": "db9"}


async def test_an_agent_cannot_pose_as_another_or_hear_its_commands(fleet: Fleet) -> None:
    violations: list[str] = []

    async def errored(error: Exception) -> None:
        violations.append(str(error))

    web1 = await fleet_connect(fleet.directory)(
        [fleet.nats_url],
        nkeys_seed=str(fleet.directory / "web1.nk"),
        inbox_prefix=subjects.inbox_prefix("web1"),
        error_cb=errored,
    )
    try:
        kv = await web1.jetstream().key_value(subjects.BUCKET)
        # Refused by the server: the put itself only times out; the error callback says why.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(kv.put(subjects.status_key("web2", HEALTHY), b"{}"), 2)
        await web1.subscribe(f"{subjects.PREFIX}.web2.cmd.>")
        await web1.publish(subjects.heartbeat("web2"), b"")
        await web1.flush()
        await until(lambda: has(violations, 3), 5)
    finally:
        await web1.close()
    assert any(f'publish to "$kv.{subjects.BUCKET}.web2.' in v.lower() for v in violations), violations
    assert any('subscription to "unitgate.web2.cmd.>"' in v for v in violations), violations
    assert any('publish to "unitgate.web2.heartbeat"' in v for v in violations), violations


async def has(found: list[str], count: int) -> bool:
    return len(found) >= count


SERVICES = "{ services { ... on ServiceList { services { id activeState mainPid } } } }"


async def test_a_new_hub_is_complete_at_once_from_the_bucket(fleet: Fleet) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    expected = (await ask(fleet, SERVICES))["services"]["services"]
    started = time.monotonic()
    with hub_server(fleet.directory, fleet.token) as second:
        ready = time.monotonic() - started
        async with httpx.AsyncClient(
            timeout=30, headers={"Authorization": f"Bearer {fleet.token}"}
        ) as client:
            answer = (await client.post(second.url, json={"query": SERVICES})).json()
    # A second hub beside the first: no coordination, the same answer, from the bucket alone.
    assert answer["data"]["services"]["services"] == expected
    assert ready < 2.0, ready  # the bound for a cold start (a contract, not a benchmark)


async def test_a_restarted_nats_server_leaves_no_state_behind(fleet: Fleet) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    host = fleet.hosts["web1"]
    stop(fleet.nats)
    try:
        # While NATS is away, web1's nginx stops: the agent could not write that.
        host.systemctl("stop", f"{HEALTHY}.service")
    finally:
        fleet.start_nats()
    try:

        async def nginx_inactive() -> bool:
            listed = (await ask(fleet, SERVICES))["services"]["services"]
            return {s["id"]: s["activeState"] for s in listed}.get(f"web1/{HEALTHY}") == "inactive"

        await until(nginx_inactive, 30)
        await until(lambda: online(fleet, "web1", "web2"), 30)
        restart = f'mutation {{ restartService(name: "{HEALTHY}", instance: "web1") {{ __typename }} }}'
        assert (await ask(fleet, restart))["restartService"]["__typename"] == "RestartSucceeded"
    finally:
        host.systemctl("start", f"{HEALTHY}.service")


SCOPED: dict[str, dict[str, Any]] = {
    "web1-ops": {"role": "operator", "instances": ["web1"]},
    "web-star": {"role": "operator", "instances": ["web*"], "services": [HEALTHY]},
    "viewer": {"role": "viewer"},
}


@pytest.fixture(scope="module")
def scoped_hub(fleet: Fleet) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    """A second hub whose tokens are scoped: by instance, by service, by role."""
    tokens = {name: new_token() for name in SCOPED}
    entries = [
        {"name": name, "sha256": token_sha256(tokens[name]), **scope} for name, scope in SCOPED.items()
    ]
    settings = load_settings(fleet.directory / "hub.toml", {"port": free_port(), "tokens": entries})
    control = build_fleet_control(settings)
    with serve(create_app(settings, control), cast(Any, control)) as hub:
        yield hub, tokens


@pytest.mark.parametrize(
    ("token", "field", "instance", "service", "expected"),
    [
        ("web1-ops", "restartService", "web1", HEALTHY, "RestartSucceeded"),
        ("web1-ops", "restartService", "web2", HEALTHY, "InstanceNotFound"),  # as if it did not exist
        ("web1-ops", "service", "web2", HEALTHY, "InstanceNotFound"),
        ("web1-ops", "serviceLogs", "web2", LOGGY, "InstanceNotFound"),
        ("web-star", "restartService", "web2", HEALTHY, "RestartSucceeded"),  # a pattern
        ("web-star", "restartService", "web2", CRASHY, "ServiceNotAllowed"),  # its services scope
        ("web-star", "service", "web1", CRASHY, "ServiceNotAllowed"),
        ("viewer", "restartService", "web1", HEALTHY, "Forbidden"),
        ("viewer", "serviceLogs", "web1", LOGGY, "Forbidden"),
        ("viewer", "service", "web1", HEALTHY, "ServiceStatus"),
        ("viewer", "restartService", "db9", HEALTHY, "InstanceNotFound"),
        ("viewer", "serviceHistory", "web1", HEALTHY, "ServiceHistory"),  # history is not logs
        ("web1-ops", "serviceHistory", "web2", HEALTHY, "InstanceNotFound"),
        ("web-star", "serviceHistory", "web2", CRASHY, "ServiceNotAllowed"),
    ],
)
async def test_the_hub_checks_instances_services_and_actions_before_any_request(
    fleet: Fleet,
    scoped_hub: tuple[RunningServer, dict[str, str]],
    token: str,
    field: str,
    instance: str,
    service: str,
    expected: str,
) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    hub, tokens = scoped_hub
    kind = "mutation" if field.endswith("Service") else "query"
    document = f"{kind}($n: String!, $i: String) {{ {field}(name: $n, instance: $i) {{ __typename }} }}"
    link = cast(Any, hub.control).link
    before = link.requests
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {tokens[token]}"}) as client:
        body = (
            await client.post(hub.url, json={"query": document, "variables": {"n": service, "i": instance}})
        ).json()
    assert body["data"][field]["__typename"] == expected, body
    asked_an_agent = expected in ("RestartSucceeded", "ServiceHistory") or (
        field == "serviceLogs" and expected == "ServiceLogs"
    )
    assert link.requests - before == (1 if asked_an_agent else 0)


async def test_a_scoped_token_lists_and_hears_only_its_instances(
    fleet: Fleet, scoped_hub: tuple[RunningServer, dict[str, str]]
) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    hub, tokens = scoped_hub
    query = "{ instances { name } services { ... on ServiceList { services { id } } } me { instances } }"
    async with httpx.AsyncClient(
        timeout=30, headers={"Authorization": f"Bearer {tokens['web1-ops']}"}
    ) as client:
        data = (await client.post(hub.url, json={"query": query})).json()["data"]
    assert data["instances"] == [{"name": "web1"}]
    assert {service["id"].split("/")[0] for service in data["services"]["services"]} == {"web1"}
    assert data["me"]["instances"] == ["web1"]


def test_fleet_init_refuses_a_cluster_without_its_routes(tmp_path: Path) -> None:
    init = subprocess.run(
        [
            *FLEET_INIT,
            str(tmp_path),
            "--instances",
            "web1",
            "--nats-url",
            "nats://a:4222,nats://b:4222",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 2
    assert "a cluster needs --routes" in init.stderr
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.fixture
def cluster(sandbox: UserManagerSandbox, tmp_path: Path) -> Iterator[Fleet]:
    """Three nats-server nodes in one cluster, an agent for web1 (the session's host), a hub."""
    clients, routes = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    urls = ",".join(f"nats://127.0.0.1:{port}" for port in clients)
    hops = ",".join(f"nats-route://127.0.0.1:{port}" for port in routes)
    token = fleet_init(tmp_path, "web1", urls, "--routes", hops)
    agent_on_sandbox(tmp_path / "web1.toml", sandbox)
    nodes = [
        start_nats(tmp_path / f"nats-server-{node}.conf", f"nats://127.0.0.1:{port}")
        for node, port in enumerate(clients, start=1)
    ]
    running = Fleet(tmp_path, urls, token, {"web1": sandbox}, {}, nodes[0], cast(Any, None))
    try:
        running.start_agent("web1")
        with hub_server(tmp_path, token) as hub:
            running.hub = hub
            yield running
    finally:
        for agent in running.agents.values():
            stop(agent)
        for node in nodes:
            stop(node)


async def test_a_three_node_cluster_loses_no_change_when_a_node_dies(cluster: Fleet) -> None:
    host = cluster.hosts["web1"]
    await until(lambda: online(cluster, "web1"), 60)
    hub = await fleet_connect(cluster.directory)(
        cluster.nats_url.split(","),
        nkeys_seed=str(cluster.directory / "hub.nk"),
        inbox_prefix=subjects.inbox_prefix(subjects.HUB_USER),
    )
    try:  # the bucket is kept on all three, so no node holds the only copy
        assert (await hub.jetstream().stream_info(subjects.STREAM)).config.num_replicas == 3
    finally:
        await hub.close()
    stop(cluster.nats, signal.SIGKILL)  # one node of three, with whatever it led or served
    killed = int(host.show(f"{CRASHY}.service", "MainPID")["MainPID"])
    os.kill(killed, signal.SIGKILL)  # a change made while the cluster is one node short

    async def seen() -> bool:
        listed = (await ask(cluster, SERVICES))["services"]["services"]
        return {s["id"]: s["mainPid"] for s in listed}.get(f"web1/{CRASHY}") not in (None, killed)

    await until(seen, 30)
    restart = f'mutation {{ restartService(name: "{HEALTHY}", instance: "web1") {{ __typename }} }}'
    assert (await ask(cluster, restart))["restartService"]["__typename"] == "RestartSucceeded"


async def test_a_log_follow_through_the_hub_comes_from_the_host_named(fleet: Fleet) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    host = fleet.hosts["web2"]
    tail = f'{{ serviceLogs(name: "{LOGGY}", instance: "web2", lines: 1) {{ ... on ServiceLogs {{ lines {{ cursor }} }} }} }}'
    (last,) = (await ask(fleet, tail))["serviceLogs"]["lines"]
    # From that cursor on: whenever the follow begins, nothing after it is missed.
    document = (
        f'subscription {{ serviceLogsFollowed(name: "{LOGGY}", instance: "web2", afterCursor: "{last["cursor"]}") '
        "{ __typename ... on LogLine { pid message } ... on Error { message } } }"
    )
    ws = await subscribed(fleet, document)
    try:
        host.systemctl("restart", f"{LOGGY}.service")  # it writes "started" as it starts
        pid = int(host.show(f"{LOGGY}.service", "MainPID")["MainPID"])
        async with asyncio.timeout(20):
            while True:
                line = (await next_data(ws))["serviceLogsFollowed"]
                assert line["__typename"] == "LogLine", line
                if line["message"] == "started" and line["pid"] == pid:
                    break
    finally:
        await ws.close()


async def test_the_hubs_metrics_label_every_series_with_its_host(fleet: Fleet) -> None:
    await until(lambda: online(fleet, "web1", "web2"), 30)
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {fleet.token}"}) as client:
        text = (await client.get(fleet.hub.url.replace("/graphql", "/metrics"))).text
    for name in fleet.hosts:
        assert f'unitgate_service_up{{instance_name="{name}",service="{HEALTHY}"}} 1.0' in text


def beating_once_a_minute(config: Path) -> None:
    """The [fleet] table's heartbeat at its slowest (and offline only after ten minutes)."""
    config.write_text(
        config.read_text().replace("[fleet]\n", "[fleet]\nheartbeat_interval = 60.0\noffline_after = 600.0\n")
    )


async def test_a_starting_hub_asks_who_is_there_rather_than_wait_for_heartbeats(
    sandbox: UserManagerSandbox, tmp_path: Path
) -> None:
    """An agent that beats once a minute, long since started: a hub started again hears of it
    only through its roll call (each host the bucket names asked once, answered at once). The
    wait below guards a hang: the agent's next heartbeat is a minute away."""
    url = f"nats://127.0.0.1:{free_port()}"
    token = fleet_init(tmp_path, "solo", url)
    agent_on_sandbox(tmp_path / "solo.toml", sandbox)
    for name in ("solo.toml", "hub.toml"):
        beating_once_a_minute(tmp_path / name)
    nats_process = start_nats(tmp_path / "nats-server.conf", url)
    agent = None
    try:
        with hub_server(tmp_path, token) as hub:  # the first one makes the bucket
            solo = Fleet(tmp_path, url, token, {"solo": sandbox}, {}, nats_process, hub)
            solo.start_agent("solo")
            agent = solo.agents["solo"]
            await until(lambda: online(solo, "solo"), 30)
        with hub_server(tmp_path, token) as again:
            solo.hub = again
            await until(lambda: online(solo, "solo"), 30)
            listed = await ask(solo, '{ services(instances: ["solo"]) { ... on ServiceList { total } } }')
            assert listed["services"]["total"] > 0
    finally:
        if agent is not None:
            stop(agent)
        stop(nats_process)
