"""Shared reads through the real API: aliases batch, concurrent queries share, nothing goes stale."""

from __future__ import annotations

import asyncio
import json

import websockets

from tests.helpers import OPERATOR_TOKEN, RESTART, RunningServer, post
from tests.units import HEALTHY
from unitgate.services.systemd.allowlist import DEFAULT_ALLOWLIST


async def test_fourteen_aliases_cost_one_process(server: RunningServer) -> None:
    runner = server.control.systemctl._runner
    names = sorted(DEFAULT_ALLOWLIST)
    fields = " ".join(
        f'a{i}: service(name: "{name}") {{ __typename ... on ServiceStatus {{ mainPid }} }}'
        for i, name in enumerate(names)
    )
    document = f'{{ {fields} bad: service(name: "sshd") {{ __typename }} }}'
    await post(server.url, document)  # the watcher may have been idle: it connects and reads
    before = runner.spawned
    body = await post(server.url, document)
    # From the snapshot (none), or one read when a signal or memory_max_age made it stale.
    assert runner.spawned <= before + 1
    kinds = {body["data"][f"a{i}"]["__typename"] for i in range(len(names))}
    assert kinds == {"ServiceStatus", "ServiceNotFound"}
    assert body["data"]["bad"]["__typename"] == "ServiceNotAllowed"


async def test_concurrent_queries_share_reads(server: RunningServer) -> None:
    runner = server.control.systemctl._runner
    before = runner.spawned
    results = await asyncio.gather(*(post(server.url, "{ services { __typename } }") for _ in range(64)))
    assert all(result == {"data": {"services": {"__typename": "ServiceList"}}} for result in results)
    # Requests that overlap share one `systemctl show`; 64 processes would mean no sharing at all.
    assert runner.spawned - before < 64


async def test_no_status_is_cached_across_operations_on_one_websocket(server: RunningServer) -> None:
    query = f'{{ service(name: "{HEALTHY}") {{ ... on ServiceStatus {{ mainPid }} }} }}'
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"

        async def pid(operation: str) -> int:
            await ws.send(json.dumps({"id": operation, "type": "subscribe", "payload": {"query": query}}))
            message = json.loads(await ws.recv())
            assert json.loads(await ws.recv())["type"] == "complete"
            return int(message["payload"]["data"]["service"]["mainPid"])

        first = await pid("1")
        restarted = (await post(server.url, RESTART, {"name": HEALTHY}))["data"]["restartService"]["service"][
            "mainPid"
        ]
        assert await pid("2") == restarted != first


async def test_an_event_is_executed_once_for_every_subscriber_of_one_document(server: RunningServer) -> None:
    shared = server.app.state.graphql.schema.shared
    query = f'subscription {{ serviceStatusChanged(names: ["{HEALTHY}"]) {{ ... on ServiceStatus {{ mainPid }} }} }}'
    sockets = []
    try:
        for number in range(20):
            ws = await websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
            sockets.append(ws)
            auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": auth}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": f"op{number}", "type": "subscribe", "payload": {"query": query}}))
            await ws.recv()  # the current status
        executed, handed_out = shared.executed, shared.shared
        restarted = (await post(server.url, RESTART, {"name": HEALTHY}))["data"]["restartService"]["service"]
        texts = []
        for number, ws in enumerate(sockets):
            text = str(await ws.recv())
            assert (
                json.loads(text)["payload"]["data"]["serviceStatusChanged"]["mainPid"] == restarted["mainPid"]
            )
            texts.append(text.replace(f'"op{number}"', '"op"'))
        assert len(set(texts)) == 1  # the same bytes, but for each operation's own id
        # One execution for twenty subscribers (two if a second of uptime ticked during the
        # fan-out: the answer is then made anew, as it must be).
        assert shared.executed - executed <= 2
        assert shared.shared - handed_out >= 18
    finally:
        for ws in sockets:
            await ws.close()
