"""Trusted documents: named by their hash over HTTP and both websocket protocols, refused when
unknown, and the only thing a trusted-only server runs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from tests.helpers import OPERATOR_TOKEN, RunningServer, bearer
from tests.units import HEALTHY
from unitgate.config.settings import ConfigError, load_settings
from unitgate.view.trusted_documents import document_hash, load_manifest

QUERY = "query Services { services { __typename } }\n"
MUTATION = 'mutation Reload { reloadService(name: "nginx") { __typename } }\n'
SUBSCRIPTION = f'subscription Watch {{ serviceStatusChanged(names: ["{HEALTHY}"]) {{ __typename }} }}\n'
UNKNOWN = "0" * 64


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("documents")
    files = []
    for name, text in (("services", QUERY), ("reload", MUTATION), ("watch", SUBSCRIPTION)):
        path = folder / f"{name}.graphql"
        path.write_text(text)
        files.append(str(path))
    result = subprocess.run(
        [sys.executable, "-m", "unitgate", "documents", *files], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    manifest = folder / "persisted-documents.json"
    manifest.write_text(result.stdout)
    assert json.loads(result.stdout) == {document_hash(t): t for t in (QUERY, MUTATION, SUBSCRIPTION)}
    return manifest


async def post(server: RunningServer, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(headers=bearer(), timeout=30) as client:
        return await client.post(server.url, json=body)


async def get(server: RunningServer, params: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(headers=bearer(), timeout=30) as client:
        return await client.get(server.url, params=params)


async def over_websocket(server: RunningServer, protocol: str, payload: dict[str, Any]) -> dict[str, Any]:
    async with websockets.connect(server.ws_url, subprotocols=[Subprotocol(protocol)]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        await ws.send(json.dumps({"id": "1", "type": start, "payload": payload}))
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] != "ka":
                return message


def code_of(message: dict[str, Any]) -> str:
    payload = message["payload"]
    error = payload[0] if isinstance(payload, list) else payload
    code: str = error["extensions"]["code"]
    return code


@pytest.fixture
def trusted_server(make_server: Callable[..., RunningServer], manifest: Path) -> Callable[..., RunningServer]:
    return lambda only=False: make_server(trusted_documents=str(manifest), trusted_documents_only=only)


@pytest.mark.parametrize("only", [False, True])
async def test_known_documents_run_by_their_id(
    trusted_server: Callable[..., RunningServer], only: bool
) -> None:
    server = trusted_server(only)
    by_id = await post(server, {"documentId": document_hash(QUERY)})
    prefixed = await post(server, {"documentId": f"sha256:{document_hash(QUERY)}"})
    apollo = await post(
        server, {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_hash(QUERY)}}}
    )
    by_get = await get(server, {"documentId": document_hash(QUERY)})
    for response in (by_id, prefixed, apollo, by_get):
        assert response.json() == {"data": {"services": {"__typename": "ServiceList"}}}, response.text
    mutation = await post(server, {"documentId": document_hash(MUTATION)})
    assert mutation.json()["data"]["reloadService"]["__typename"] == "ReloadSucceeded"
    for protocol in ("graphql-transport-ws", "graphql-ws"):
        message = await over_websocket(server, protocol, {"documentId": document_hash(SUBSCRIPTION)})
        assert message["payload"]["data"] == {"serviceStatusChanged": {"__typename": "ServiceStatus"}}


@pytest.mark.parametrize("only", [False, True])
async def test_an_unknown_id_is_refused_before_parsing(
    trusted_server: Callable[..., RunningServer], only: bool
) -> None:
    server = trusted_server(only)
    for response in (await post(server, {"documentId": UNKNOWN}), await get(server, {"documentId": UNKNOWN})):
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    for protocol in ("graphql-transport-ws", "graphql-ws"):
        message = await over_websocket(server, protocol, {"documentId": UNKNOWN})
        assert message["type"] == "error"
        assert code_of(message) == "PERSISTED_QUERY_NOT_FOUND"


async def test_free_text_runs_unless_the_server_is_trusted_only(
    trusted_server: Callable[..., RunningServer],
) -> None:
    open_server, strict = trusted_server(False), trusted_server(True)
    assert (await post(open_server, {"query": "{ __typename }"})).json() == {"data": {"__typename": "Query"}}
    # Apollo's persisted-query link registers a document by sending it with its hash.
    text = "{ me { name } }"
    registering = {
        "query": text,
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_hash(text)}},
    }
    assert (await post(open_server, registering)).json()["data"]["me"]["name"] == "test-operator"
    for request in ({"query": "{ __typename }"}, registering):
        refused = await post(strict, request)
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["extensions"]["code"] in (
            "PERSISTED_QUERY_REQUIRED",
            "PERSISTED_QUERY_NOT_FOUND",
        )
    assert (await get(strict, {"query": "{ __typename }"})).status_code == 400
    for protocol in ("graphql-transport-ws", "graphql-ws"):
        message = await over_websocket(strict, protocol, {"query": SUBSCRIPTION})
        assert code_of(message) == "PERSISTED_QUERY_REQUIRED"


def test_a_manifest_entry_that_does_not_match_stops_startup(tmp_path: Path) -> None:
    bad = tmp_path / "persisted-documents.json"
    bad.write_text(json.dumps({document_hash(QUERY): QUERY, document_hash("{ a }"): "{ b }"}))
    with pytest.raises(
        ValueError, match=f"entry '{document_hash('{ a }')}' does not match its document's sha256"
    ):
        load_manifest(bad)
    config = tmp_path / "unitgate.toml"
    config.write_text(
        f'trusted_documents = "{bad}"\n[[tokens]]\nname = "x"\nrole = "viewer"\nsha256 = "{"a" * 64}"\n'
    )
    config.chmod(0o600)
    serve = subprocess.run(
        [sys.executable, "-m", "unitgate", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode == 2
    assert "does not match its document's sha256" in serve.stderr
    assert "Traceback" not in serve.stderr


def test_trusted_only_needs_a_manifest(tmp_config: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError, match="trusted_documents_only needs trusted_documents"):
        load_settings(tmp_config("trusted_documents_only = true\n"))


def test_documents_refuses_what_is_not_graphql(tmp_path: Path) -> None:
    broken = tmp_path / "broken.graphql"
    broken.write_text("query {")
    result = subprocess.run(
        [sys.executable, "-m", "unitgate", "documents", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "is not a GraphQL document" in result.stderr
