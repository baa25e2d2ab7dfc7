"""The GraphQL layer on its own: unexpected failures are masked, big numbers stay exact."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.helpers import VIEWER
from unitgate.resolvers import Context
from unitgate.schema.root import schema
from unitgate.services.systemd.status import UnitStatus


class BrokenControl:
    """Raises what no resolver expects, as a bug in the services layer would."""

    instance_name = "test-host"

    def status_deadline(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    async def list_installed(self, actor: Any, instances: Any = None) -> Any:
        raise RuntimeError("secret detail: /etc/shadow line 3")

    async def get_many(self, names: list[str], actor: Any, instance: Any = None) -> list[UnitStatus]:
        return [await self.get(name) for name in names]

    async def get(self, name: str) -> UnitStatus:
        return UnitStatus(
            name=name,
            unit_id=f"{name}.service",
            description="MariaDB",
            load_state="loaded",
            active_state="active",
            sub_state="running",
            main_pid=4242,
            memory_bytes=6 * 2**30 + 7,
            active_since=datetime(2026, 11, 26, 8, 0, tzinfo=UTC),
            restart_count=2,
            unit_file_state="enabled",
            can_reload=False,
        )


def context() -> Context:
    return Context(control=BrokenControl(), actor=VIEWER)  # type: ignore[arg-type]


async def test_unexpected_exception_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        result = await schema.execute("{ services { __typename } }", context_value=context())
    assert result.errors is not None
    assert [error.message for error in result.errors] == ["Unexpected error."]
    assert "shadow" not in str(result.errors[0].formatted)
    assert "secret detail" in caplog.text  # the operator still sees it in the server log


async def test_memory_above_4_gib_is_exact() -> None:
    result = await schema.execute(
        '{ service(name: "mariadb") { ... on ServiceStatus { memoryBytes mainPid restartCount activeSince } } }',
        context_value=context(),
    )
    assert result.errors is None
    assert result.data == {
        "service": {
            "memoryBytes": 6 * 2**30 + 7,
            "mainPid": 4242,
            "restartCount": 2,
            "activeSince": "2026-11-26T08:00:00+00:00",
        }
    }


async def test_validation_errors_are_not_masked() -> None:
    result = await schema.execute("{ services { nope } }", context_value=context())
    assert result.errors is not None
    assert "Cannot query field 'nope'" in result.errors[0].message


async def test_resolvers_refuse_a_context_without_a_caller() -> None:
    """Defence in depth: the transports authenticate first, and a resolver never runs without."""
    query = '{ service(name: "mariadb") { __typename } }'
    result = await schema.execute(query, context_value=Context(control=BrokenControl()))  # type: ignore[arg-type]
    assert result.errors is not None
    assert [error.message for error in result.errors] == ["Unexpected error."]
