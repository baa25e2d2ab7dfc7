"""serviceHistory on PID 1 with Debian's packages: systemd's real record of a SIGKILL and the
automatic restart after it, a failed start, and a reload asked by a named token, each once and in
order, read by the unitgate user from the system journal and the audit file."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from e2e.conftest import Deployment

pytestmark = pytest.mark.timeout(300)

HISTORY = """query($n: String!, $s: DateTime) { serviceHistory(name: $n, since: $s, limit: 100) {
  __typename
  ... on ServiceHistory { complete journalStart events { kind result exitCode signal signalName restarts actor action outcome } }
  ... on Error { message }
} }"""
ACT = """mutation($n: String!) { %s(name: $n) { __typename } }"""


def oldest_first(deployed: Deployment, name: str, since: str) -> list[dict[str, Any]]:
    history = deployed.post(HISTORY, {"n": name, "s": since})["data"]["serviceHistory"]
    assert history["__typename"] == "ServiceHistory", history
    assert history["complete"]
    assert history["journalStart"] <= since
    return list(reversed(history["events"]))


def test_a_sigkill_and_systemds_restart_after_it(deployed: Deployment) -> None:
    since = datetime.now(UTC).isoformat()
    killed = deployed.main_pid("redis-server.service")
    deployed.sh(f"kill -KILL {killed}")
    deadline = time.monotonic() + 60
    while (
        deployed.main_pid("redis-server.service") in (0, killed)
        or deployed.show("redis-server.service", "ActiveState")["ActiveState"] != "active"
    ):
        assert time.monotonic() < deadline, "redis-server did not come back"
        time.sleep(0.1)
    events = oldest_first(deployed, "redis-server", since)
    # journald may receive an earlier start's "Started" a moment after `since` was read.
    kinds = [event["kind"] for event in events]
    events = events[kinds.index("PROCESS_EXITED") :]
    kinds = [event["kind"] for event in events]
    assert kinds[:3] == ["PROCESS_EXITED", "FAILED", "RESTART_SCHEDULED"], kinds
    assert kinds.count("PROCESS_EXITED") == 1
    assert kinds[-1] == "STARTED"
    assert (events[0]["signal"], events[0]["signalName"]) == (9, "SIGKILL")
    assert events[1]["result"] == "signal"
    assert events[2]["restarts"] >= 1
    # The live status says the same, in words.
    status = deployed.post(
        '{ service(name: "redis-server") { ... on ServiceStatus { reason restartCount } } }'
    )
    assert status["data"]["service"]["restartCount"] >= 1


def test_a_reload_by_a_named_token_and_a_failed_start(deployed: Deployment) -> None:
    since = datetime.now(UTC).isoformat()
    reloaded = deployed.post(ACT % "reloadService", {"n": "php8.2-fpm"})["data"]["reloadService"]
    assert reloaded["__typename"] == "ReloadSucceeded"
    drop_in = "/run/systemd/system/php8.2-fpm.service.d"
    deployed.sh(
        f"mkdir -p {drop_in} && printf '[Service]\\nExecStartPre=/bin/false\\nRestart=no\\n' > {drop_in}/broken.conf"
        " && systemctl daemon-reload"
    )
    try:
        failed = deployed.post(ACT % "restartService", {"n": "php8.2-fpm"})["data"]["restartService"]
        assert failed["__typename"] == "RestartFailed"
        events = oldest_first(deployed, "php8.2-fpm", since)
    finally:
        deployed.sh(f"rm -rf {drop_in} && systemctl daemon-reload && systemctl start php8.2-fpm")
    kinds = [event["kind"] for event in events if event["kind"] != "ACTION"]
    assert kinds[:2] == ["RELOADING", "RELOADED"], kinds
    assert kinds[-3:] == ["PROCESS_EXITED", "FAILED", "START_FAILED"], kinds
    assert kinds.count("START_FAILED") == 1
    actions = [(e["actor"], e["action"], e["outcome"]) for e in events if e["kind"] == "ACTION"]
    assert actions == [("operator", "reload", "succeeded"), ("operator", "restart", "failed")]
    # Each action comes before what systemd did for it.
    order = [event["kind"] for event in events]
    assert order.index("ACTION") < order.index("RELOADING")
    assert order.index("ACTION", 1) < order.index("STOPPING")
