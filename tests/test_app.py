"""The HTTP API end to end: a real uvicorn server (or the ASGI app) on a real systemd."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import (
    HOSTILE_NAMES,
    OPERATOR_TOKEN,
    RESTART,
    SERVICE,
    STATUS_FIELDS,
    RunningServer,
    bearer,
    post,
    post_app,
    sandbox_settings,
)
from tests.units import FAILING, HANGING, HEALTHY, MISSING
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.server.app import create_app
from unitgate.services.policy.control import ServiceControl


async def test_services_lists_installed_with_every_field(server: RunningServer) -> None:
    body = await post(
        server.url, f"{{ services {{ __typename ... on ServiceList {{ services {{ {STATUS_FIELDS} }} }} }} }}"
    )
    assert "errors" not in body
    result = body["data"]["services"]
    assert result["__typename"] == "ServiceList"
    by_name = {service["name"]: service for service in result["services"]}
    assert MISSING not in by_name
    nginx = by_name[HEALTHY]
    assert nginx["active"] is True
    assert nginx["activeState"] == "active"
    assert isinstance(nginx["mainPid"], int)
    assert isinstance(nginx["memoryBytes"], int)
    assert nginx["memoryBytes"] > 0
    assert nginx["activeSince"].endswith("+00:00")
    assert isinstance(nginx["uptimeSeconds"], int)
    assert nginx["restartCount"] == 0
    assert nginx["unitFileState"] == "static"
    assert by_name[FAILING]["activeState"] == "failed"
    assert by_name[FAILING]["mainPid"] is None


async def test_service_not_found(server: RunningServer) -> None:
    body = await post(server.url, SERVICE, {"name": MISSING})
    assert body["data"]["service"] == {
        "__typename": "ServiceNotFound",
        "message": "service 'redis-server' is not installed",
        "name": MISSING,
    }


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_names_are_refused_and_start_nothing(server: RunningServer, name: str) -> None:
    runner = server.control.systemctl._runner
    before = runner.spawned
    for query, field in ((SERVICE, "service"), (RESTART, "restartService")):
        body = await post(server.url, query, {"name": name})
        result = body["data"][field]
        assert result["__typename"] == "ServiceNotAllowed"
        assert len(result["message"]) < 200
    assert runner.spawned == before


async def test_hostile_name_inline_in_the_document(server: RunningServer) -> None:
    body = await post(server.url, 'query { service(name: "nginx\\u0000; reboot") { __typename } }')
    assert body["data"]["service"]["__typename"] == "ServiceNotAllowed"


async def test_restart_changes_main_pid(server: RunningServer) -> None:
    before = (await post(server.url, SERVICE, {"name": HEALTHY}))["data"]["service"]
    after = (await post(server.url, RESTART, {"name": HEALTHY}))["data"]["restartService"]
    assert after["__typename"] == "RestartSucceeded", after
    assert after["service"]["activeState"] == "active"
    assert after["service"]["mainPid"] != before["mainPid"]


async def test_restart_failed(server: RunningServer) -> None:
    result = (await post(server.url, RESTART, {"name": FAILING}))["data"]["restartService"]
    assert result["__typename"] == "RestartFailed"
    assert result["exitCode"] == 1
    assert result["name"] == FAILING
    assert "php8.2-fpm.service failed" in result["message"]


async def test_restart_of_missing_service(server: RunningServer) -> None:
    result = (await post(server.url, RESTART, {"name": MISSING}))["data"]["restartService"]
    assert result["__typename"] == "ServiceNotFound"


async def test_systemctl_timeout(
    sandbox: UserManagerSandbox, make_control: Callable[..., ServiceControl]
) -> None:
    control = make_control(action_timeout=0.5)
    try:
        body = await post_app(create_app(sandbox_settings(), control), RESTART, {"name": HANGING})
    finally:
        sandbox.systemctl("stop", f"{HANGING}.service")
    assert body["data"]["restartService"] == {
        "__typename": "SystemctlTimeout",
        "message": "systemctl restart did not answer within 0.5 s",
        "command": "systemctl restart",
        "timeoutSeconds": 0.5,
    }


async def test_systemd_unavailable(make_control: Callable[..., ServiceControl], tmp_path: Path) -> None:
    (tmp_path / "run").mkdir(mode=0o700)
    control = make_control(environ={"XDG_RUNTIME_DIR": str(tmp_path / "run")})
    app = create_app(sandbox_settings(), control)
    body = await post_app(app, "{ services { __typename ... on Error { message } } }")
    assert body["data"]["services"]["__typename"] == "SystemdUnavailable"
    body = await post_app(app, SERVICE, {"name": HEALTHY})
    assert body["data"]["service"]["__typename"] == "SystemdUnavailable"
    body = await post_app(app, RESTART, {"name": HEALTHY})
    assert body["data"]["restartService"]["__typename"] == "SystemdUnavailable"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        health = await client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"


async def test_healthz(server: RunningServer) -> None:
    async with httpx.AsyncClient() as client:
        anonymous = await client.get(server.url.replace("/graphql", "/healthz"))
        wrong = await client.get(server.url.replace("/graphql", "/healthz"), headers=bearer("ugt_wrong"))
        response = await client.get(server.url.replace("/graphql", "/healthz"), headers=bearer())
    # Without a token: up or not, and nothing about the machine or who is subscribed.
    assert (anonymous.status_code, anonymous.json()) == (200, {"status": "ok"})
    assert wrong.json() == {"status": "ok"}
    assert response.status_code == 200
    body = response.json()
    # The watcher idles once nobody has subscribed or queried status for idle_after seconds.
    assert body == {
        "status": "ok",
        "detail": body["detail"],
        "watcher": str(server.control.watcher.mode),
        "watcherDetail": server.control.watcher.mode_detail,
    }
    assert body["watcher"] in ("idle", "events")
    assert response.json()["detail"].startswith("systemd ")


async def test_get_query_and_graphiql(server: RunningServer) -> None:
    pid = (await post(server.url, SERVICE, {"name": HEALTHY}))["data"]["service"]["mainPid"]
    async with httpx.AsyncClient(headers=bearer()) as client:
        query = await client.get(server.url, params={"query": "{ services { __typename } }"})
        page = await client.get(server.url, headers={"Accept": "text/html"})
        mutation = await client.get(server.url, params={"query": RESTART, "variables": '{"name": "nginx"}'})
    assert query.json() == {"data": {"services": {"__typename": "ServiceList"}}}
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    # A GET never changes anything: refused, and nginx still runs the same process.
    assert mutation.status_code in (400, 405)
    assert (await post(server.url, SERVICE, {"name": HEALTHY}))["data"]["service"]["mainPid"] == pid


async def test_malformed_requests_are_client_errors(server: RunningServer) -> None:
    async with httpx.AsyncClient(headers=bearer()) as client:
        not_json = await client.post(server.url, content=b"{", headers={"content-type": "application/json"})
        no_query = await client.post(server.url, json={"variables": {}})
        bad_vars = await client.post(server.url, json={"query": SERVICE, "variables": {"name": 5}})
    assert not_json.status_code == 400
    assert no_query.status_code == 400
    assert bad_vars.status_code == 200
    assert "errors" in bad_vars.json()
    assert "Traceback" not in bad_vars.text


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"query": "{ __typename }", "variables": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b"null",
        b'"a string"',
        b"5",
        b'{"query": 5}',
        b'{"query": "{ __typename }", "variables": "x"}',
        b"\xff\xfe",
        b"[]",
    ],
)
async def test_hostile_bodies_are_client_errors(server: RunningServer, body: bytes) -> None:
    async with httpx.AsyncClient(headers=bearer()) as client:
        response = await client.post(server.url, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "Traceback" not in response.text


async def test_oversized_body_is_refused(
    make_server: Callable[..., RunningServer], sandbox: UserManagerSandbox
) -> None:
    server = make_server(max_body_bytes=10_000)
    padding = " " * 20_000
    async with httpx.AsyncClient(headers=bearer()) as client:
        big = await client.post(
            server.url,
            content=f'{{"query": "{{ __typename }}{padding}"}}',
            headers={"content-type": "application/json"},
        )

        async def chunks() -> Any:
            for _ in range(30):
                yield b" " * 1000

        chunked = await client.post(
            server.url, content=chunks(), headers={"content-type": "application/json"}
        )
        small = await client.post(server.url, json={"query": "{ __typename }"})
    assert big.status_code == 413
    assert chunked.status_code == 413
    assert small.json() == {"data": {"__typename": "Query"}}


async def send_and_drain(ws: Any, message: str) -> None:
    await ws.send(message)
    async with asyncio.timeout(10):
        while True:
            await ws.recv()


@pytest.mark.parametrize("message", ["[" * 100_000, "null", "5", '"x"', "{nope", "x" * (2 << 20)])
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_hostile_websocket_messages_close_the_socket(
    server: RunningServer, protocol: str, message: str
) -> None:
    import websockets
    from websockets.exceptions import ConnectionClosed

    async with websockets.connect(server.ws_url, subprotocols=[protocol], max_size=None) as ws:  # type: ignore[list-item]
        if protocol == "graphql-ws" and len(message) < 1 << 20:
            await ws.send(message)
            # The legacy protocol ignores what it cannot read; the socket goes on working.
            await ws.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}}
                )
            )
            async with asyncio.timeout(10):
                assert json.loads(await ws.recv())["type"] == "connection_ack"
        else:
            with pytest.raises(ConnectionClosed):
                await send_and_drain(ws, message)
    # And the server is as it was.
    assert (await post(server.url, "{ __typename }")) == {"data": {"__typename": "Query"}}
