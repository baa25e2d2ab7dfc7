"""Tokens and roles, attacked over HTTP and both websocket protocols."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.helpers import OPERATOR_TOKEN, RESTART, SERVICE, VIEWER_TOKEN, RunningServer, post
from tests.units import HEALTHY, starts
from unitgate.config.settings import load_settings
from unitgate.config.tables import TokenConfig
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.policy.access import Actor, Role
from unitgate.services.policy.tokens import Authenticator, new_token, token_sha256
from unitgate.services.systemd.units import DEFAULT_ACTIONS
from unitgate.view.auth import authenticate, bearer_token

UNAUTHENTICATED = {
    "errors": [{"message": "missing or invalid bearer token", "extensions": {"code": "UNAUTHENTICATED"}}]
}

BAD_AUTHORIZATIONS = [
    None,
    "",
    "Bearer",
    f"Bearer {OPERATOR_TOKEN[:-1]}",  # truncated
    f"Bearer {OPERATOR_TOKEN}x",
    f"Bearer {OPERATOR_TOKEN.upper()}",
    f"Basic {OPERATOR_TOKEN}",
    OPERATOR_TOKEN,  # no scheme
    f"Bearer {token_sha256(OPERATOR_TOKEN)}",  # the stored hash is not a token
    f"Bearer {new_token()}",  # well-formed, unknown
    "Bearer \u00e9\u00e9",
    "Bearer " + "a" * 5000,
]


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATIONS)
async def test_bad_tokens_get_401_and_nothing_runs(server: RunningServer, authorization: str | None) -> None:
    runner = server.control.systemctl._runner
    before = runner.spawned
    headers = {} if authorization is None else {b"Authorization": authorization.encode()}
    async with httpx.AsyncClient(headers=headers) as client:
        for query, variables in (("{ services { __typename } }", {}), (RESTART, {"name": HEALTHY})):
            response = await client.post(server.url, json={"query": query, "variables": variables})
            assert response.status_code == 401
            assert response.json() == UNAUTHENTICATED
            assert response.headers["www-authenticate"].startswith("Bearer")
        response = await client.get(server.url, params={"query": "{ services { __typename } }"})
        assert response.status_code == 401
    assert runner.spawned == before


async def test_token_in_the_query_string_does_not_work(server: RunningServer) -> None:
    async with httpx.AsyncClient() as client:
        for key in ("token", "access_token", "Authorization", "authorization"):
            for value in (OPERATOR_TOKEN, f"Bearer {OPERATOR_TOKEN}"):
                response = await client.post(
                    server.url, params={key: value}, json={"query": "{ services { __typename } }"}
                )
                assert response.status_code == 401


async def test_scheme_is_case_insensitive(server: RunningServer) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            server.url,
            json={"query": "{ services { __typename } }"},
            headers={"Authorization": f"bearer {VIEWER_TOKEN}"},
        )
    assert response.json() == {"data": {"services": {"__typename": "ServiceList"}}}


async def test_viewer_reads_but_may_not_restart(server: RunningServer, sandbox: UserManagerSandbox) -> None:
    status = (await post(server.url, SERVICE, {"name": HEALTHY}, token=VIEWER_TOKEN))["data"]["service"]
    assert status["__typename"] == "ServiceStatus"
    started_before = starts(sandbox.runtime_dir)
    query = RESTART.replace("... on Error { message }", "... on Error { message } ... on Forbidden { role }")
    result = (await post(server.url, query, {"name": HEALTHY}, token=VIEWER_TOKEN))["data"]["restartService"]
    assert result == {
        "__typename": "Forbidden",
        "message": "the viewer role may not restart services",
        "role": "viewer",
    }
    assert starts(sandbox.runtime_dir) == started_before
    after = (await post(server.url, SERVICE, {"name": HEALTHY}, token=VIEWER_TOKEN))["data"]["service"]
    assert after["mainPid"] == status["mainPid"]


async def test_graphiql_page_needs_no_token(server: RunningServer) -> None:
    async with httpx.AsyncClient() as client:
        page = await client.get(server.url, headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


def subscribe_message(protocol: str) -> dict[str, Any]:
    kind = "subscribe" if protocol == "graphql-transport-ws" else "start"
    query = 'subscription { serviceStatusChanged(names: ["nginx"]) { __typename } }'
    return {"id": "1", "type": kind, "payload": {"query": query}}


async def ws_handshake(url: str, protocol: str, payload: Any) -> tuple[list[dict[str, Any]], int | None]:
    """Send connection_init (and a subscribe); return what came back and the close code."""
    received: list[dict[str, Any]] = []
    async with websockets.connect(url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            received.append(json.loads(await ws.recv()))
            await ws.send(json.dumps(subscribe_message(protocol)))
            while True:
                message = json.loads(await ws.recv())
                if message["type"] != "ka":
                    received.append(message)
                    return received, None
        except ConnectionClosed as closed:
            return received, closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize(
    "payload",
    [
        {},
        None,
        {"Authorization": f"Bearer {OPERATOR_TOKEN[:-2]}"},
        {"Authorization": OPERATOR_TOKEN},
        {"token": OPERATOR_TOKEN},
        {"Authorization": ["Bearer", OPERATOR_TOKEN]},
        {"headers": "Bearer x"},
        {"headers": {"Authorization": f"Bearer {OPERATOR_TOKEN[:-1]}"}},
    ],
)
async def test_websocket_without_valid_token_is_refused(server: RunningServer, payload: Any) -> None:
    before = server.control.systemctl._runner.spawned
    received, code = await ws_handshake(server.ws_url, "graphql-transport-ws", payload)
    assert received == []
    # strawberry closes a null init payload as malformed (4400) before auth sees it (4403).
    assert code == (4400 if payload is None else 4403)
    received, code = await ws_handshake(server.ws_url, "graphql-ws", payload)
    assert received == [
        {"type": "connection_error", "payload": {"message": "missing or invalid bearer token"}}
    ]
    assert code is not None
    assert server.control.systemctl._runner.spawned == before


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize(
    "payload",
    [
        {"Authorization": f"Bearer {VIEWER_TOKEN}"},
        {"authorization": f"Bearer {VIEWER_TOKEN}"},
        {"headers": {"Authorization": f"Bearer {VIEWER_TOKEN}"}},
    ],
)
async def test_websocket_with_valid_token(
    server: RunningServer, protocol: str, payload: dict[str, Any]
) -> None:
    received, code = await ws_handshake(server.ws_url, protocol, payload)
    assert code is None
    assert received[0]["type"] == "connection_ack"
    assert received[1]["payload"] == {"data": {"serviceStatusChanged": {"__typename": "ServiceStatus"}}}


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_subscribe_before_init_is_refused(server: RunningServer, protocol: str) -> None:
    async with websockets.connect(server.ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps(subscribe_message(protocol)))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("BEARER  abc ") == "abc"
    for bad in (None, 42, "", "Bearer", "Bearer ", "Token abc", "Bearer a\tb", "Bearer a\nb", "Bearer ā"):
        assert bearer_token(bad) is None


def test_authenticator_checks_every_token() -> None:
    viewer, operator = new_token(), new_token()
    authenticator = Authenticator(
        [
            TokenConfig(name="v", role="viewer", sha256=token_sha256(viewer)),
            TokenConfig(name="o", role="operator", sha256=token_sha256(operator)),
        ]
    )
    found = authenticate(authenticator, f"Bearer {operator}", "10.1.2.3")
    assert found is not None
    assert (found.name, found.role, found.address) == ("o", "operator", "10.1.2.3")
    assert authenticate(authenticator, f"Bearer {viewer}", None) is not None
    assert authenticate(authenticator, f"Bearer {viewer[:-1]}", None) is None
    assert authenticate(authenticator, viewer, None) is None  # no scheme
    assert authenticator.authenticate(operator, None) == Actor(
        "o", Role.OPERATOR, None, None, DEFAULT_ACTIONS
    )


def test_new_tokens_are_long_and_random() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    # 32 random bytes in URL-safe base64 is 43 characters: 256 bits.
    assert all(len(token.removeprefix("ugt_")) == 43 for token in tokens)


def unitgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unitgate", *args], capture_output=True, text=True, timeout=60
    )


def test_token_new_prints_the_token_alone_then_a_snippet(tmp_path: Any) -> None:
    result = unitgate("token", "new", "--name", "dashboard", "--role", "operator")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    token = lines[0]
    assert token.startswith("ugt_")
    assert token not in "\n".join(lines[1:])
    config = tmp_path / "unitgate.toml"
    config.write_text("\n".join(line for line in lines[1:] if not line.startswith("#")))
    settings = load_settings(config)
    assert settings.tokens == (TokenConfig(name="dashboard", role="operator", sha256=token_sha256(token)),)


@pytest.mark.parametrize(
    ("name", "role"), [("", "viewer"), ("a b", "viewer"), ('x"\n[[tokens]]', "operator"), ("ok", "admin")]
)
def test_token_new_refuses_bad_input(name: str, role: str) -> None:
    result = unitgate("token", "new", "--name", name, "--role", role)
    assert result.returncode == 2
    assert result.stdout == ""


def test_serve_refuses_to_start_without_tokens(tmp_path: Any) -> None:
    result = unitgate("serve", "--port", "1")
    assert result.returncode == 2
    assert "no tokens configured" in result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.com"])
def test_insecure_no_auth_is_refused_off_loopback(host: str) -> None:
    result = unitgate("serve", "--insecure-no-auth", "--host", host, "--port", "1")
    assert result.returncode == 2
    assert "--insecure-no-auth is refused" in result.stderr


def test_token_new_prints_its_scope(tmp_path: Any) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "unitgate",
            "token",
            "new",
            "--name",
            "php-team",
            "--role",
            "operator",
            "--services",
            "php8.2-fpm,php8.3-fpm",
            "--actions",
            "restart,reload",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    entry = tomllib.loads(result.stdout.split("\n", 1)[1])["tokens"][0]  # all but the token line
    assert entry["services"] == ["php8.2-fpm", "php8.3-fpm"]
    assert entry["actions"] == ["restart", "reload"]
    assert entry["sha256"] == token_sha256(result.stdout.splitlines()[0])
