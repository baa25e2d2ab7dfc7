"""Every error in an `errors` array carries extensions.code, over HTTP and over websockets."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from tests.helpers import OPERATOR_TOKEN, RunningServer, bearer

ALIASES = " ".join(f"a{i}: __typename" for i in range(31))
CASES = [
    ("{ __typename", None, "GRAPHQL_PARSE_FAILED"),
    ("{ nope }", None, "GRAPHQL_VALIDATION_FAILED"),
    ("query($n: String!) { service(name: $n) { __typename } }", {"n": 5}, "BAD_USER_INPUT"),
    ("query($n: String!) { service(name: $n) { __typename } }", {}, "BAD_USER_INPUT"),
    (f"{{ {ALIASES} }}", None, "DOCUMENT_LIMIT_EXCEEDED"),
    ("{ " + "__typename " * 2100 + "}", None, "DOCUMENT_LIMIT_EXCEEDED"),
]


@pytest.mark.parametrize(("query", "variables", "code"), CASES)
async def test_http_errors_carry_a_code(server: RunningServer, query: str, variables: Any, code: str) -> None:
    async with httpx.AsyncClient(headers=bearer()) as client:
        body = (await client.post(server.url, json={"query": query, "variables": variables})).json()
    assert body["errors"]
    assert [error["extensions"]["code"] for error in body["errors"]] == [code] * len(body["errors"])


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_websocket_errors_carry_a_code(server: RunningServer, protocol: str) -> None:
    async with websockets.connect(server.ws_url, subprotocols=[Subprotocol(protocol)]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        await ws.send(json.dumps({"id": "1", "type": start, "payload": {"query": "subscription { nope }"}}))
        message = json.loads(await ws.recv())
        while message["type"] == "ka":
            message = json.loads(await ws.recv())
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else payload.get("errors", [payload])
    assert errors, message
    assert all(error.get("extensions", {}).get("code") == "GRAPHQL_VALIDATION_FAILED" for error in errors), (
        message
    )


def test_a_masked_failure_is_an_internal_error() -> None:
    from graphql import GraphQLError

    from unitgate.schema.error_codes import CodedErrors

    masked = CodedErrors(should_mask_error=lambda error: True).anonymise_error(GraphQLError("secret detail"))
    assert masked.message == "Unexpected error."
    assert masked.extensions == {"code": "INTERNAL_SERVER_ERROR"}


def test_a_results_failures_are_masked_and_coded() -> None:
    """The path every subscription event takes (_process_result, overridden for speed)."""
    from graphql import ExecutionResult, GraphQLError

    from unitgate.schema.error_codes import CodedErrors

    coded = CodedErrors(should_mask_error=lambda error: error.original_error is not None)
    result = ExecutionResult(
        data=None,
        errors=[GraphQLError("secret detail", original_error=RuntimeError()), GraphQLError("bad field")],
    )
    coded._process_result(result)
    assert result.errors is not None
    assert [(e.message, (e.extensions or {}).get("code")) for e in result.errors] == [
        ("Unexpected error.", "INTERNAL_SERVER_ERROR"),
        ("bad field", "GRAPHQL_VALIDATION_FAILED"),
    ]
    clean = ExecutionResult(data={"a": 1}, errors=None)
    coded._process_result(clean)
    assert clean.errors is None
    coded._process_result(object())  # nothing to mask, and no failure either
