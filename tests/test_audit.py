"""The audit trail: one JSON line per restart attempt, refused ones included, and never a token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import OPERATOR, OPERATOR_TOKEN, RESTART, VIEWER, VIEWER_TOKEN, RunningServer
from tests.units import FAILING, HEALTHY, MISSING
from unitgate.services.errors import UnitgateError
from unitgate.services.policy.control import ServiceControl

FIELDS = {"time", "token", "role", "client", "action", "service", "outcome", "duration_ms"}


def read_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def attempt(control: ServiceControl, name: str, actor: Any = OPERATOR) -> None:
    with contextlib.suppress(UnitgateError):
        await control.restart(name, actor)


async def test_every_attempt_writes_one_line_to_stderr_and_file(
    make_control: Callable[..., ServiceControl], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit_file = tmp_path / "audit.log"
    control = make_control(audit_file=str(audit_file), action_limit=2, action_window=600)
    await attempt(control, HEALTHY)
    await attempt(control, HEALTHY, VIEWER)
    await attempt(control, 'nginx\n{"outcome": "succeeded"}')
    await attempt(control, MISSING)
    await attempt(control, FAILING)
    await attempt(control, FAILING)
    await attempt(control, FAILING)  # third in the window
    await asyncio.gather(attempt(control, HEALTHY), attempt(control, HEALTHY))

    from_file = read_lines(audit_file.read_text())
    from_stderr = read_lines(capsys.readouterr().err)
    assert from_file == from_stderr
    assert [(line["service"], line["outcome"]) for line in from_file] == [
        (HEALTHY, "succeeded"),
        (HEALTHY, "forbidden"),
        ('nginx\n{"outcome": "succeeded"}', "not_allowed"),
        (MISSING, "not_found"),
        (FAILING, "failed"),
        (FAILING, "failed"),
        (FAILING, "rate_limited"),
        (HEALTHY, "in_progress"),  # written at once; the one it found running ends after it
        (HEALTHY, "succeeded"),
    ]
    # One physical line per attempt, whatever the service name holds.
    assert len(audit_file.read_text().splitlines()) == 9
    for line in from_file:
        assert set(line) == FIELDS
        assert line["action"] == "restart"
        assert line["client"] == "127.0.0.1"
        assert isinstance(line["duration_ms"], int)
        assert line["time"].endswith("+00:00")
    assert from_file[0]["token"] == "test-operator"
    assert from_file[0]["role"] == "operator"
    assert from_file[1]["role"] == "viewer"


async def test_tokens_never_reach_a_log(
    make_server: Callable[..., RunningServer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    audit_file = tmp_path / "audit.log"
    server = make_server(audit_file=str(audit_file))
    wrong = OPERATOR_TOKEN[:-1] + ("A" if OPERATOR_TOKEN[-1] != "A" else "B")
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient() as client:
            for token in (OPERATOR_TOKEN, VIEWER_TOKEN, wrong):
                await client.post(
                    server.url,
                    json={"query": RESTART, "variables": {"name": HEALTHY}},
                    headers={"Authorization": f"Bearer {token}"},
                )
                await client.post(
                    server.url, params={"token": token}, json={"query": RESTART, "variables": {"name": token}}
                )
                await client.post(
                    server.url,
                    json={"query": RESTART, "variables": {"name": token}},
                    headers={"Authorization": f"Bearer {token}"},
                )
    outputs = capfd.readouterr()
    # The test's own HTTP client logs its URLs; everything else logged here is the server's.
    server_log = "\n".join(
        logging.Formatter().format(record)
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )
    assert caplog.records
    logs = "\n".join([server_log, outputs.out, outputs.err, audit_file.read_text()])
    assert "test-operator" in audit_file.read_text()
    for token in (OPERATOR_TOKEN, VIEWER_TOKEN, wrong):
        # A client that sends its token as a service name has it echoed in its own audit line as a
        # name, and that is its doing; the token's secret part must appear nowhere else.
        assert logs.count(token) == logs.count(f'"service": "{token}"')
    assert OPERATOR_TOKEN not in server_log
