"""The whole schema fuzzed with hypothesis-graphql over real HTTP and websockets."""

from __future__ import annotations

import json
import threading
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, queries
from websockets.sync.client import connect

from tests.helpers import OPERATOR_TOKEN, RunningServer
from unitgate.schema.root import schema as unitgate_schema

SDL = unitgate_schema.as_str()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
# Hostile strings beside hypothesis's own: the names the issue lists.
CUSTOM_SCALARS = {"ByteCount": st.integers(0, 2**63 - 1).map(lambda n: graphql.IntValueNode(value=str(n)))}


@pytest.fixture
def spawns(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every argv the server's runner starts during the test (the server runs in another thread)."""
    runner = server.control.systemctl._runner
    original = runner.run
    seen: list[tuple[str, ...]] = []
    lock = threading.Lock()

    async def recording(argv: Any, *, timeout: float) -> Any:
        with lock:
            seen.append(tuple(argv))
        return await original(argv, timeout=timeout)

    monkeypatch.setattr(runner, "run", recording)
    return seen


def assert_only_allowlisted_units(server: RunningServer, spawns: list[tuple[str, ...]]) -> None:
    allowed = {f"{name}.service" for name in server.control.allowlist.names}
    for argv in spawns:
        units = [arg for arg in argv[1:] if not arg.startswith("-") and arg not in ("show", "restart")]
        assert set(units) <= allowed, argv


def check_http_answer(response: httpx.Response) -> None:
    assert response.status_code in (200, 400), response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) <= {"data", "errors", "extensions"}
    for error in body.get("errors") or []:
        assert 'File "' not in error["message"]


@pytest.mark.timeout(300)
def test_fuzz_queries_and_mutations(server: RunningServer, spawns: list[tuple[str, ...]]) -> None:
    client = httpx.Client(headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=30)

    @FUZZ
    @given(document=from_schema(SDL, custom_scalars=CUSTOM_SCALARS))
    def run(document: str) -> None:
        check_http_answer(client.post(server.url, json={"query": document}))

    with client:
        run()
    assert_only_allowlisted_units(server, spawns)


@pytest.mark.timeout(300)
@given(
    name=st.one_of(
        st.text(),
        st.sampled_from(
            [
                "../../../etc/passwd",
                "nginx.service",
                "--help",
                "nginx;reboot",
                "ng\u0456nx",
                "",
                "n" * 10_000,
                "a\x00b",
                "a\nb",
            ]
        ),
    )
)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_names_through_variables(server: RunningServer, name: str) -> None:
    runner = server.control.systemctl._runner
    before = runner.spawned
    with httpx.Client(headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=30) as client:
        for query, field in (
            ("query($n: String!) { service(name: $n) { __typename } }", "service"),
            ("mutation($n: String!) { restartService(name: $n) { __typename } }", "restartService"),
        ):
            response = client.post(server.url, json={"query": query, "variables": {"n": name}})
            check_http_answer(response)
            if name not in server.control.allowlist:
                assert response.json()["data"][field]["__typename"] == "ServiceNotAllowed"
    if name not in server.control.allowlist:
        assert runner.spawned == before


def subscription_documents() -> st.SearchStrategy[str]:
    """hypothesis-graphql makes queries and mutations only: present Subscription as a query root."""
    parsed = graphql.build_schema(SDL)
    assert parsed.subscription_type is not None
    as_query = graphql.GraphQLSchema(query=parsed.subscription_type, types=list(parsed.type_map.values()))
    return queries(as_query, custom_scalars=CUSTOM_SCALARS).map(
        lambda doc: "subscription " + doc.lstrip("query ")
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_fuzz_subscriptions(server: RunningServer, spawns: list[tuple[str, ...]], protocol: str) -> None:
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(document=subscription_documents())
    def run(document: str) -> None:
        with connect(server.ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
            ws.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}}
                )
            )
            assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
            ws.send(json.dumps({"id": "f", "type": start, "payload": {"query": document}}))
            message = json.loads(ws.recv(timeout=10))
            while message["type"] == "ka":
                message = json.loads(ws.recv(timeout=10))
            assert message["type"] in ("next", "data", "error", "complete"), message
            assert "Traceback" not in json.dumps(message)

    run()
    assert_only_allowlisted_units(server, spawns)
