"""GraphQL over HTTP to the letter: the graphql-http audit suite (npm) against a real server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers import OPERATOR_TOKEN, RunningServer, bearer
from unitgate.view.media import APPLICATION_JSON, GRAPHQL_RESPONSE_JSON, negotiate_media_type

AUDIT = Path(__file__).parent / "http_audit"


@pytest.mark.timeout(180)
def test_every_graphql_http_audit_is_ok(server: RunningServer, node: str) -> None:
    assert (AUDIT / "node_modules" / "graphql-http").is_dir(), (
        "make test installs it (npm install in tests/http_audit)"
    )
    result = subprocess.run(
        [node, str(AUDIT / "audit.mjs"), server.url, OPERATOR_TOKEN],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    audits = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(audits) == 61
    assert [a for a in audits if a["status"] != "ok"] == []


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, APPLICATION_JSON),
        ("", APPLICATION_JSON),
        ("*/*", APPLICATION_JSON),
        ("application/json", APPLICATION_JSON),
        ("application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        ("application/json, application/graphql-response+json;q=0.5", APPLICATION_JSON),
        ("application/graphql-response+json;q=0", APPLICATION_JSON),
        ("APPLICATION/GRAPHQL-RESPONSE+JSON", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json;q=nonsense", APPLICATION_JSON),
        ("text/html", APPLICATION_JSON),
    ],
)
def test_media_type_negotiation(accept: str | None, chosen: str) -> None:
    assert negotiate_media_type(accept) == chosen


async def test_application_json_is_unchanged(server: RunningServer) -> None:
    """Legacy clients (most dashboards today) get 200 and `data: null` for a bad document."""
    async with httpx.AsyncClient(headers=bearer()) as client:
        legacy = await client.post(
            server.url, json={"query": "{ nope }"}, headers={"Accept": "application/json"}
        )
        modern = await client.post(
            server.url, json={"query": "{ nope }"}, headers={"Accept": GRAPHQL_RESPONSE_JSON}
        )
        field_ok = await client.post(
            server.url,
            json={"query": "{ services { __typename } }"},
            headers={"Accept": GRAPHQL_RESPONSE_JSON},
        )
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith(APPLICATION_JSON)
    assert legacy.json()["data"] is None
    assert modern.status_code == 400
    assert modern.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    assert "data" not in modern.json()
    assert field_ok.status_code == 200
    assert field_ok.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    assert field_ok.json() == {"data": {"services": {"__typename": "ServiceList"}}}
