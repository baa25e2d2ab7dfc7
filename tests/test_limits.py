"""Every abuse limit, reached and answered as specified."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from tests.helpers import OPERATOR, OPERATOR_TOKEN, RESTART, RunningServer, bearer, post
from tests.units import HEALTHY, starts
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.errors import ActionInProgress, RateLimited
from unitgate.services.policy.control import ServiceControl
from unitgate.services.policy.guard import ActionGuard, RateLimit, retry_after

AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def error_messages(body: dict[str, Any]) -> list[str]:
    assert body.get("data") is None
    return [error["message"] for error in body["errors"]]


async def ask(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    return response.json()


async def test_depth_limit(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]], sandbox: UserManagerSandbox
) -> None:
    client = await make_client(max_query_depth=1)
    before = starts(sandbox.runtime_dir)
    body = await ask(
        client, 'mutation { restartService(name: "nginx") { ... on RestartSucceeded { service { name } } } }'
    )
    assert any("exceeds maximum operation depth of 1" in message for message in error_messages(body))
    assert starts(sandbox.runtime_dir) == before


async def test_nested_introspection_is_refused(server: RunningServer) -> None:
    # strawberry's depth limiter skips introspection, where each fields{type{fields... multiplies
    # the answer; graphql-core's MaxIntrospectionDepthRule (a default rule) must stay in force.
    bomb = "{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }"
    body = await post(server.url, bomb)
    assert error_messages(body) == ["Maximum introspection depth exceeded"]
    via_fragment = "{ __schema { types { ...F } } } fragment F on __Type { fields { type { fields { type { interfaces { name } } } } } }"
    assert error_messages(await post(server.url, via_fragment)) == ["Maximum introspection depth exceeded"]


async def test_graphiql_introspection_still_works(server: RunningServer) -> None:
    from graphql import get_introspection_query

    body = await post(server.url, get_introspection_query(descriptions=True))
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_alias_limit(server: RunningServer) -> None:
    runner = server.control.systemctl._runner
    before = runner.spawned
    aliases = " ".join(f'a{i}: service(name: "nginx") {{ __typename }}' for i in range(31))
    body = await post(server.url, f"{{ {aliases} }}")
    assert any("aliases found" in message for message in error_messages(body))
    assert runner.spawned == before


async def test_token_limit(server: RunningServer) -> None:
    fields = " ".join("__typename" for _ in range(3000))
    body = await post(server.url, f"{{ {fields} }}")
    assert any("more than 2000 tokens" in message for message in error_messages(body))


@pytest.mark.parametrize(
    "document",
    [
        'mutation { a: restartService(name: "nginx") { __typename } b: restartService(name: "nginx") { __typename } }',
        'mutation { a: restartService(name: "nginx") { __typename } b: restartService(name: "postfix") { __typename } }',
        'mutation { ...R ...S } fragment R on Mutation { a: restartService(name: "nginx") { __typename } } '
        'fragment S on Mutation { b: restartService(name: "nginx") { __typename } }',
        'mutation A { restartService(name: "nginx") { __typename } } mutation B { restartService(name: "nginx") { __typename } }',
    ],
)
async def test_one_restart_per_document(
    server: RunningServer, sandbox: UserManagerSandbox, document: str
) -> None:
    before = starts(sandbox.runtime_dir)
    async with httpx.AsyncClient(headers=bearer()) as client:
        operation = {"operationName": "A"} if "mutation A" in document else {}
        response = await client.post(server.url, json={"query": document, **operation})
    body = response.json()
    assert any(
        "at most one of reloadService, restartService, startService, stopService per request" in m
        for m in error_messages(body)
    )
    assert starts(sandbox.runtime_dir) == before


async def test_fifty_simultaneous_restarts_run_once(
    make_control: Callable[..., ServiceControl], sandbox: UserManagerSandbox
) -> None:
    control = make_control()
    before = starts(sandbox.runtime_dir)
    outcomes = await asyncio.gather(
        *(control.restart(HEALTHY, OPERATOR) for _ in range(50)), return_exceptions=True
    )
    kinds = Counter(type(outcome).__name__ for outcome in outcomes)
    assert kinds == {"UnitStatus": 1, "ActionInProgress": 49}
    assert starts(sandbox.runtime_dir) == before + 1


async def test_fifty_simultaneous_restarts_over_http_run_once(
    make_server: Callable[..., RunningServer], sandbox: UserManagerSandbox
) -> None:
    server = make_server(action_limit=1, action_window=3600)
    before = starts(sandbox.runtime_dir)
    results = await asyncio.gather(*(post(server.url, RESTART, {"name": HEALTHY}) for _ in range(50)))
    kinds = Counter(result["data"]["restartService"]["__typename"] for result in results)
    assert kinds["RestartSucceeded"] == 1
    assert kinds["RestartInProgress"] + kinds["RateLimited"] == 49
    assert starts(sandbox.runtime_dir) == before + 1


async def test_rate_limit(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]], sandbox: UserManagerSandbox
) -> None:
    client = await make_client(action_limit=2, action_window=600)
    query = RESTART.replace(
        "... on Error { message }", "... on Error { message } ... on RateLimited { name retryAfterSeconds }"
    )
    first = await ask(client, query, {"name": HEALTHY})
    second = await ask(client, query, {"name": HEALTHY})
    before = starts(sandbox.runtime_dir)
    third = (await ask(client, query, {"name": HEALTHY}))["data"]["restartService"]
    assert first["data"]["restartService"]["__typename"] == "RestartSucceeded"
    assert second["data"]["restartService"]["__typename"] == "RestartSucceeded"
    assert third["__typename"] == "RateLimited"
    assert third["name"] == HEALTHY
    assert 590 <= third["retryAfterSeconds"] <= 600
    assert starts(sandbox.runtime_dir) == before


def test_rate_limit_window_slides() -> None:
    now = [1000.0]
    guard = ActionGuard(RateLimit(count=2, window_seconds=60), clock=lambda: now[0])
    for _ in range(2):
        with guard.admit("nginx"):
            pass
        now[0] += 10
    with pytest.raises(RateLimited) as limited, guard.admit("nginx"):
        pass
    assert limited.value.retry_after_seconds == 40
    with guard.admit("postfix"):  # limits are per service
        with pytest.raises(ActionInProgress), guard.admit("postfix"):
            pass
    now[0] += 40
    with guard.admit("nginx"):
        pass


def test_retry_after_drops_old_attempts() -> None:
    attempts = deque([1.0, 2.0, 50.0])
    assert retry_after(attempts, RateLimit(count=2, window_seconds=10), now=55.0) is None
    assert list(attempts) == [50.0]


SUBSCRIBE = 'subscription { serviceStatusChanged(names: ["nginx"]) { __typename } }'


async def connect(url: str, protocol: str) -> Any:
    ws = await websockets.connect(url, subprotocols=[protocol])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    return ws


async def next_message(ws: Any) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await ws.recv())
        if message["type"] != "ka":
            return message


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_subscriptions_per_connection_cap(
    make_server: Callable[..., RunningServer], protocol: str
) -> None:
    server = make_server(max_subscriptions_per_connection=2)
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    ws = await connect(server.ws_url, protocol)
    try:
        for operation in ("1", "2"):
            await ws.send(json.dumps({"id": operation, "type": start, "payload": {"query": SUBSCRIBE}}))
            assert (await next_message(ws))["id"] == operation
        await ws.send(json.dumps({"id": "3", "type": start, "payload": {"query": SUBSCRIBE}}))
        with pytest.raises(ConnectionClosed) as closed:  # as the README says: close 4429
            await next_message(ws)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4429, "Subscription limit reached")
    finally:
        await ws.close()


async def test_websocket_connection_cap(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(max_websocket_connections=2)
    open_sockets = [await connect(server.ws_url, "graphql-transport-ws") for _ in range(2)]
    try:
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.ws_url, "graphql-transport-ws")
        assert refused.value.response.status_code == 403
    finally:
        for ws in open_sockets:
            await ws.close()
    # A closed socket frees its place.
    ws = await connect(server.ws_url, "graphql-ws")
    await ws.close()


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_connection_init_timeout(make_server: Callable[..., RunningServer], protocol: str) -> None:
    server = make_server(connection_init_timeout=0.3)
    async with websockets.connect(server.ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4408


async def test_cors_and_websocket_origin(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(allowed_origins=["https://dash.example"])
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with httpx.AsyncClient() as client:
        allowed = await client.options(server.url, headers={"Origin": "https://dash.example", **preflight})
        other = await client.options(server.url, headers={"Origin": "https://evil.example", **preflight})
        unauthorized = await client.post(
            server.url,
            json={"query": "{ services { __typename } }"},
            headers={"Origin": "https://dash.example"},
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
    assert "access-control-allow-origin" not in other.headers
    # The dashboard can read its own 401, to ask for a token.
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == "https://dash.example"

    good = await websockets.connect(
        server.ws_url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        origin=Origin("https://dash.example"),
    )
    await good.close()
    with pytest.raises(InvalidStatus):
        await websockets.connect(
            server.ws_url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            origin=Origin("https://evil.example"),
        )


async def test_no_cross_origin_by_default(server: RunningServer) -> None:
    preflight = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
    async with httpx.AsyncClient() as client:
        response = await client.options(server.url, headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    with pytest.raises(InvalidStatus):
        await websockets.connect(server.ws_url, subprotocols=["graphql-ws"], origin="https://dash.example")  # type: ignore[list-item, arg-type]
    # The same origin as the server (GraphiQL's own page) may connect.
    origin = server.url.removesuffix("/graphql")
    ws = await websockets.connect(server.ws_url, subprotocols=["graphql-ws"], origin=origin)  # type: ignore[list-item, arg-type]
    await ws.close()
