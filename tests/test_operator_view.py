"""The operator's view through the real API: logs, reload, and the failure summary."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from tests.helpers import OPERATOR, OPERATOR_TOKEN, RESTART, VIEWER_TOKEN, RunningServer, post
from tests.units import CRASHY, FAILING, HEALTHY, LOGGY, LONG_LINE
from unitgate.services.errors import ActionInProgress
from unitgate.services.policy.control import ServiceControl
from unitgate.services.systemd.status import UnitStatus
from unitgate.services.systemd.units import unit_for

pytestmark = pytest.mark.timeout(60)

LOGS = """query($name: String!, $lines: Int) { serviceLogs(name: $name, lines: $lines) {
  __typename
  ... on ServiceLogs { lines { time priority pid message cursor } }
  ... on Error { message }
} }"""
RELOAD = """mutation($name: String!) { reloadService(name: $name) {
  __typename
  ... on ReloadSucceeded { service { name mainPid canReload } }
  ... on Error { message }
} }"""
FOLLOW = """subscription($name: String!, $after: String) { serviceLogsFollowed(name: $name, afterCursor: $after) {
  __typename
  ... on LogLine { message cursor pid }
  ... on Error { message }
} }"""


async def test_service_logs(server: RunningServer) -> None:
    body = await post(server.url, LOGS, {"name": FAILING, "lines": 20})
    result = body["data"]["serviceLogs"]
    assert result["__typename"] == "ServiceLogs"
    assert 0 < len(result["lines"]) <= 20
    line = result["lines"][-1]
    assert line["time"].endswith("+00:00")
    assert isinstance(line["cursor"], str)
    assert any(entry["message"] == "config test failed" for entry in result["lines"])
    capped = (await post(server.url, LOGS, {"name": FAILING, "lines": 100_000}))["data"]["serviceLogs"]
    assert len(capped["lines"]) <= 500


async def test_logs_need_an_operator(server: RunningServer) -> None:
    spawned = server.control.systemctl._runner.spawned
    result = (await post(server.url, LOGS, {"name": FAILING}, token=VIEWER_TOKEN))["data"]["serviceLogs"]
    assert result == {"__typename": "Forbidden", "message": "the viewer role may not read service logs"}
    assert server.control.systemctl._runner.spawned == spawned


async def test_restart_failed_shows_why(server: RunningServer) -> None:
    query = RESTART.replace(
        "... on RestartFailed { name exitCode }",
        "... on RestartFailed { name exitCode recentLogs { message } }",
    )
    result = (await post(server.url, query, {"name": FAILING}))["data"]["restartService"]
    assert result["__typename"] == "RestartFailed"
    assert "config test failed" in [line["message"] for line in result["recentLogs"]]
    assert len(result["recentLogs"]) <= 10


@pytest.mark.parametrize(
    "protocol", [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL]
)
async def test_follow_logs_over_websockets(server: RunningServer, protocol: str) -> None:
    transport = WebsocketsTransport(
        url=server.ws_url, subprotocols=[protocol], init_payload={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    )
    async with Client(transport=transport) as session:
        stream = session.subscribe(GraphQLRequest(FOLLOW, variable_values={"name": LOGGY, "after": None}))
        first = asyncio.ensure_future(anext(stream))
        while server.control.followers.running == 0:
            await asyncio.sleep(0.01)
        await post(server.url, RESTART, {"name": LOGGY})
        messages = [(await asyncio.wait_for(first, 15))["serviceLogsFollowed"]]
        while LONG_LINE not in [m.get("message") for m in messages]:
            messages.append((await asyncio.wait_for(anext(stream), 15))["serviceLogsFollowed"])
        assert {m["__typename"] for m in messages} == {"LogLine"}
        await stream.aclose()


async def test_follow_logs_refused_for_viewers(server: RunningServer) -> None:
    transport = WebsocketsTransport(
        url=server.ws_url, init_payload={"Authorization": f"Bearer {VIEWER_TOKEN}"}
    )
    async with Client(transport=transport) as session:
        received = [
            event["serviceLogsFollowed"]
            async for event in session.subscribe(GraphQLRequest(FOLLOW, variable_values={"name": LOGGY}))
        ]
    assert received == [{"__typename": "Forbidden", "message": "the viewer role may not read service logs"}]


async def test_reload(server: RunningServer) -> None:
    before = (await post(server.url, RELOAD, {"name": HEALTHY}))["data"]["reloadService"]
    assert before["__typename"] == "ReloadSucceeded"
    assert before["service"]["canReload"] is True
    not_supported = (await post(server.url, RELOAD, {"name": CRASHY}))["data"]["reloadService"]
    assert not_supported == {
        "__typename": "ReloadNotSupported",
        "message": "service 'postfix' does not support reload (CanReload=no)",
    }
    viewer = (await post(server.url, RELOAD, {"name": HEALTHY}, token=VIEWER_TOKEN))["data"]["reloadService"]
    assert viewer["__typename"] == "Forbidden"
    refused = (await post(server.url, RELOAD, {"name": "nginx.service"}))["data"]["reloadService"]
    assert refused["__typename"] == "ServiceNotAllowed"


async def test_reload_shares_the_restart_lock(control: ServiceControl) -> None:
    runner = control.runner
    with control.guard.admit(unit_for(HEALTHY)):  # as a restart in flight holds it
        before = runner.spawned
        with pytest.raises(ActionInProgress):
            await control.reload(HEALTHY, OPERATOR)
        assert runner.spawned <= before + 1  # CanReload was read; nothing was run
    assert isinstance(await control.reload(HEALTHY, OPERATOR), UnitStatus)


async def test_failure_summary(server: RunningServer) -> None:
    query = "{ services { ... on ServiceList { total active failed inactive activating services { activeState } } } }"
    result = (await post(server.url, query))["data"]["services"]
    states = [service["activeState"] for service in result["services"]]
    assert result["total"] == len(states)
    assert result["failed"] == states.count("failed") >= 1
    assert result["active"] == sum(state in ("active", "reloading") for state in states)
    assert result["active"] + result["failed"] + result["inactive"] + result["activating"] == result["total"]


async def test_reload_and_logs_are_one_action_per_document(server: RunningServer) -> None:
    document = 'mutation { a: restartService(name: "nginx") { __typename } b: reloadService(name: "nginx") { __typename } }'
    body: dict[str, Any] = await post(server.url, document)
    assert body["data"] is None
    assert "at most one of" in body["errors"][0]["message"]
