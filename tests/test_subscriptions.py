"""serviceStatusChanged over websockets, with real third-party clients, on a real systemd."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
import websockets
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from tests.helpers import OPERATOR_TOKEN, RESTART, RunningServer, post, wait_until
from tests.units import CRASHY, HEALTHY, MISSING
from unitgate.sandbox.manager import UserManagerSandbox

pytestmark = pytest.mark.timeout(60)

AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
PROTOCOLS = [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL]
SUBSCRIPTION = """subscription($names: [String!]) { serviceStatusChanged(names: $names) {
  __typename
  ... on ServiceStatus { name activeState subState mainPid loadState }
  ... on Error { message }
} }"""


async def events(session: Any, names: list[str] | None) -> AsyncGenerator[dict[str, Any], None]:
    request = GraphQLRequest(SUBSCRIPTION, variable_values={"names": names})
    async for result in session.subscribe(request):
        yield result["serviceStatusChanged"]


async def next_event(stream: AsyncGenerator[dict[str, Any], None]) -> dict[str, Any]:
    async with asyncio.timeout(15):
        return await anext(stream)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_snapshot_then_restart_event(server: RunningServer, protocol: str) -> None:
    transport = WebsocketsTransport(url=server.ws_url, subprotocols=[protocol], init_payload=AUTH)
    async with Client(transport=transport) as session:
        stream = events(session, [HEALTHY])
        snapshot = await next_event(stream)
        assert snapshot["__typename"] == "ServiceStatus"
        assert snapshot["name"] == HEALTHY
        assert snapshot["activeState"] == "active"
        restarted = (await post(server.url, RESTART, {"name": HEALTHY}))["data"]["restartService"]
        new_pid = restarted["service"]["mainPid"]
        change = await next_event(stream)
        while change["mainPid"] != new_pid:
            change = await next_event(stream)
        assert change["activeState"] == "active"
        await stream.aclose()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_event_after_main_process_is_killed(
    server: RunningServer, sandbox: UserManagerSandbox, protocol: str
) -> None:
    transport = WebsocketsTransport(url=server.ws_url, subprotocols=[protocol], init_payload=AUTH)
    async with Client(transport=transport) as session:
        stream = events(session, [CRASHY])
        snapshot = await next_event(stream)
        while snapshot["activeState"] != "active" or snapshot["mainPid"] is None:
            snapshot = await next_event(stream)  # still coming back from an earlier kill
        sandbox.systemctl("kill", "--kill-whom=main", "--signal=SIGKILL", f"{CRASHY}.service")
        change = await next_event(stream)
        assert change["name"] == CRASHY
        assert (change["mainPid"], change["activeState"]) != (snapshot["mainPid"], snapshot["activeState"])
        await stream.aclose()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("name", "typename"), [(MISSING, "ServiceNotFound"), ("../nginx", "ServiceNotAllowed")]
)
async def test_bad_name_gets_a_typed_error_and_the_stream_ends(
    server: RunningServer, protocol: str, name: str, typename: str
) -> None:
    transport = WebsocketsTransport(url=server.ws_url, subprotocols=[protocol], init_payload=AUTH)
    async with Client(transport=transport) as session:
        received = [event async for event in events(session, [HEALTHY, name])]
    assert [event["__typename"] for event in received] == [typename]


async def count_tasks() -> int:
    return len(asyncio.all_tasks())


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_vanishing_subscriber_leaves_no_task(server: RunningServer, protocol: str) -> None:
    # Recent queries may keep the watcher running (idle_after); then it runs on after this test too.
    wait_until(lambda: server.control.watcher.watchers == 0)
    baseline = server.call(count_tasks())
    async with websockets.connect(server.ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        await ws.send(json.dumps({"id": "1", "type": start, "payload": {"query": SUBSCRIPTION}}))
        message = json.loads(await ws.recv())
        while message["type"] == "ka":
            message = json.loads(await ws.recv())
        assert message["payload"]["data"]["serviceStatusChanged"]["__typename"] == "ServiceStatus"
        assert server.control.watcher.watchers == 1
    # The socket closed without a "complete": the server must still unwind everything.
    wait_until(lambda: server.control.watcher.watchers == 0)
    wait_until(lambda: server.call(count_tasks()) <= baseline)
