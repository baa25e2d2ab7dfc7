"""The history's pure parts: the manager's journal messages as events, the journal's start, the
audit file's actions, the merge, the reason in words, and the codec an agent answers with."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from unitgate.services.fleet.history_wire import history_from_wire, history_to_wire
from unitgate.services.fleet.wire import WireError
from unitgate.services.policy.audit import recorded_actions
from unitgate.services.policy.timeline import merged
from unitgate.services.systemd.history import (
    EventKind,
    History,
    HistoryEvent,
    journal_start,
    match_arguments,
    parse_event,
    stop_reason,
)
from unitgate.services.systemd.units import Scope

T0 = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
KILLED = "98e322203f7a4ed290d09fe03c09fe15"


def entry(**fields: Any) -> str:
    base = {"__REALTIME_TIMESTAMP": str(int(T0.timestamp() * 1_000_000)), "MESSAGE_ID": KILLED}
    return json.dumps({**base, **fields})


def test_a_kill_as_the_manager_logs_it() -> None:
    line = entry(
        UNIT="redis-server.service",
        MESSAGE="redis-server.service: Main process exited, code=killed, status=9/KILL",
        EXIT_CODE="killed",
        EXIT_STATUS="9",
    )
    event = parse_event(line, "redis-server.service", Scope.SYSTEM)
    assert event == HistoryEvent(
        time=T0,
        kind=EventKind.PROCESS_EXITED,
        message="redis-server.service: Main process exited, code=killed, status=9/KILL",
        signal=9,
    )
    exited = parse_event(
        entry(UNIT="x.service", EXIT_CODE="exited", EXIT_STATUS="3"), "x.service", Scope.SYSTEM
    )
    assert exited is not None
    assert (exited.exit_code, exited.signal) == (3, None)


@pytest.mark.parametrize(
    "line",
    [
        entry(UNIT="other.service"),  # about another unit
        entry(USER_UNIT="x.service"),  # a user manager's field on the system's
        entry(UNIT="x.service", MESSAGE_ID="00000000000000000000000000000000"),  # not catalogued
        entry(UNIT="x.service", __REALTIME_TIMESTAMP="soon"),
        "not json",
        "[1, 2]",
    ],
)
def test_what_is_not_the_managers_word_about_the_unit_is_no_event(line: str) -> None:
    assert parse_event(line, "x.service", Scope.SYSTEM) is None


def test_only_the_managers_own_messages_are_asked_for() -> None:
    system = match_arguments("nginx.service", Scope.SYSTEM)
    assert system[:2] == ["UNIT=nginx.service", "_PID=1"]  # journald's field, which no process forges
    user = match_arguments("nginx.service", Scope.USER)
    assert user[:2] == ["USER_UNIT=nginx.service", "_EXE=/usr/lib/systemd/systemd"]
    assert all(argument.startswith("MESSAGE_ID=") for argument in system[2:])


def test_a_long_or_odd_message_is_bounded() -> None:
    event = parse_event(entry(UNIT="x.service", MESSAGE="y" * 100_000), "x.service", Scope.SYSTEM)
    assert event is not None
    assert len(event.message) == 512
    binary = parse_event(entry(UNIT="x.service", MESSAGE=[104, 105]), "x.service", Scope.SYSTEM)
    assert binary is not None
    assert binary.message == ""


def test_the_journals_start_is_its_oldest_files_head() -> None:
    header = (
        "File path: /var/log/journal/a/system@1.journal\n"
        "Head realtime timestamp: Thu 2026-12-03 03:00:00 UTC (5ef7e5c7a9c00)\n"
        "File path: /var/log/journal/a/system.journal\n"
        "Head realtime timestamp: Thu 2026-12-03 04:00:00 UTC (5ef7f3d70f600)\n"
        "Head realtime timestamp: n/a (0)\n"
    )
    assert journal_start(header) == datetime.fromtimestamp(0x5EF7E5C7A9C00 / 1e6, UTC)
    assert journal_start("") is None


@pytest.mark.parametrize(
    ("result", "status", "reason"),
    [
        ("signal", 9, "killed by signal 9 (SIGKILL)"),
        ("core-dump", 11, "dumped core on signal 11 (SIGSEGV)"),
        ("exit-code", 1, "exited with status 1"),
        ("timeout", None, "timed out"),
        ("success", 0, None),
        (None, None, None),
        ("something-new", None, "failed: something-new"),
        ("signal", 999, "killed by signal 999"),
    ],
)
def test_the_reason_in_words(result: str | None, status: int | None, reason: str | None) -> None:
    assert stop_reason(result, status) == reason


def audit_line(at: datetime, **fields: Any) -> str:
    base = {"time": at.isoformat(timespec="milliseconds"), "token": "alice", "role": "operator"}
    return json.dumps(
        {
            **base,
            "action": "restart",
            "service": "nginx",
            "outcome": "succeeded",
            "duration_ms": 250,
            **fields,
        }
    )


def test_the_audit_files_actions_on_the_service(tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    audit.write_text(
        '"time": "cut by the tail"}\n'
        + audit_line(T0)
        + "\n"
        + audit_line(T0, action="logs")  # a read, not an action
        + "\n"
        + audit_line(T0, service="redis-server")
        + "\n"
        + audit_line(T0 + timedelta(hours=1), token="bob", outcome="rate_limited")
        + "\n{not json\n"
    )
    events = recorded_actions(audit, frozenset({"nginx"}), None)
    assert [(e.actor, e.outcome, e.time) for e in events] == [
        ("alice", "succeeded", T0 - timedelta(milliseconds=250)),  # when it was asked
        ("bob", "rate_limited", T0 + timedelta(hours=1) - timedelta(milliseconds=250)),
    ]
    assert [e.actor for e in recorded_actions(audit, frozenset({"nginx"}), T0 + timedelta(minutes=1))] == [
        "bob"
    ]
    assert recorded_actions(tmp_path / "missing.log", frozenset({"nginx"}), None) == []


def event(minutes: int, kind: EventKind = EventKind.STARTED) -> HistoryEvent:
    return HistoryEvent(time=T0 + timedelta(minutes=minutes), kind=kind, message="")


def test_merged_newest_first_and_one_window() -> None:
    journal = [event(5), event(3), event(1)]
    actions = [event(0, EventKind.ACTION), event(4, EventKind.ACTION)]
    everything, complete = merged(journal, actions, 10, journal_cut=False)
    assert [e.time.minute for e in everything] == [5, 4, 3, 1, 0]
    assert complete
    # The journal was cut at its limit: an action older than its oldest event is outside the window.
    window, complete = merged(journal, actions, 3, journal_cut=True)
    assert [e.time.minute for e in window] == [5, 4, 3]
    assert not complete


def test_an_agents_history_round_trips_and_hostile_ones_are_refused() -> None:
    history = History("nginx", (event(1, EventKind.ACTION),), T0, complete=True)
    data = json.loads(json.dumps(history_to_wire(history)))
    back = history_from_wire(data, "nginx", "web2", limit=10)
    assert back.instance == "web2"
    assert back.events[0].instance == "web2"
    assert (back.events, back.journal_start, back.complete) == (
        tuple(
            e.__class__(**{**e.__dict__, "instance": "web2"}) if False else back.events[0]
            for e in history.events
        ),
        T0,
        True,
    )
    for hostile, problem in (
        ({**data, "name": "redis-server"}, "name"),
        ({**data, "events": data["events"] * 11}, "more than 10"),
        ({**data, "events": [{**data["events"][0], "kind": "pwned"}]}, "kind"),
        ({**data, "events": [{**data["events"][0], "message": "x" * 513}]}, "too long"),
        ({**data, "events": [{**data["events"][0], "signal": "9"}]}, "signal"),
        ({**data, "events": ["text"]}, "not an object"),
        ({**data, "complete": "yes"}, "complete"),
    ):
        with pytest.raises(WireError, match=problem):
            history_from_wire(hostile, "nginx", "web2", limit=10)
