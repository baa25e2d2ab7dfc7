"""A unit's life as systemd's manager recorded it in the journal: its catalogued messages
(started, stopped, failed with a result, main process exited, restart scheduled, reloaded) as
typed events, and the pure parser of them. Only the manager's own messages count: PID 1's for
the system (journald stamps `_PID`, which no process can forge), the manager's executable for a
user manager."""

from __future__ import annotations

import enum
import json
import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from unitgate.services.systemd.units import Scope

_MESSAGE_LIMIT = 512


class EventKind(enum.StrEnum):
    STARTING = "starting"
    STARTED = "started"
    START_FAILED = "start_failed"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RELOADING = "reloading"
    RELOADED = "reloaded"
    PROCESS_EXITED = "process_exited"
    FAILED = "failed"
    DEACTIVATED = "deactivated"
    RESTART_SCHEDULED = "restart_scheduled"
    SKIPPED = "skipped"
    ACTION = "action"  # unitgate's own: an action someone asked for (from the audit file)


# systemd's catalogue (sd-messages.h): each MESSAGE_ID the manager logs about a unit, and what it means.
MESSAGE_IDS: dict[str, EventKind] = {
    "7d4958e842da4a758f6c1cdc7b36dcc5": EventKind.STARTING,
    "39f53479d3a045ac8e11786248231fbf": EventKind.STARTED,
    "be02cf6855d2428ba40df7e9d022f03d": EventKind.START_FAILED,
    "de5b426a63be47a7b6ac3eaac82e2f6f": EventKind.STOPPING,
    "9d1aaa27d60140bd96365438aad20286": EventKind.STOPPED,
    "d34d037fff1847e6ae669a370e694725": EventKind.RELOADING,
    "7b05ebc668384222baa8881179cfda54": EventKind.RELOADED,
    "98e322203f7a4ed290d09fe03c09fe15": EventKind.PROCESS_EXITED,
    "d9b373ed55a64feb8242e02dbe79a49c": EventKind.FAILED,
    "7ad2d189f7e94e70a38c781354912448": EventKind.DEACTIVATED,
    "5eb03494b6584870a536b337290809b3": EventKind.RESTART_SCHEDULED,
    "0e4284a0caca4bfc81c0bb6786972673": EventKind.SKIPPED,
}

# How a user manager is told from the processes it runs (which share its user): by the file
# journald saw it execute, which a unit's process cannot claim without being systemd itself.
USER_MANAGER_EXE = "/usr/lib/systemd/systemd"
_SIGNAL = re.compile(r"^\d+/([A-Z0-9+]+)$")  # "9/KILL" in a MESSAGE; EXIT_STATUS holds the number


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    time: datetime
    kind: EventKind
    message: str
    result: str | None = None  # UNIT_RESULT (signal, exit-code, ...) or JOB_RESULT (done, failed, ...)
    exit_code: int | None = None  # the main process's exit status, when it exited
    signal: int | None = None  # the signal that ended it, when it was killed
    restarts: int | None = None  # N_RESTARTS, with a scheduled restart
    actor: str | None = None  # who asked (ACTION): a token's name
    action: str | None = None  # restart, reload, start, stop (ACTION)
    outcome: str | None = None  # the audit's word (ACTION)
    instance: str = ""


@dataclass(frozen=True, slots=True)
class History:
    name: str
    events: tuple[HistoryEvent, ...]  # newest first
    journal_start: datetime | None  # the oldest entry the journal still holds; earlier is gone
    complete: bool  # every retained event since `since` is here (not cut by the limit)
    instance: str = ""


def match_arguments(unit: str, scope: Scope) -> list[str]:
    """journalctl matches for the manager's catalogued messages about `unit` (fields ANDed, the
    message IDs ORed)."""
    if scope is Scope.USER:
        who = [f"USER_UNIT={unit}", f"_EXE={USER_MANAGER_EXE}"]
    else:
        who = [f"UNIT={unit}", "_PID=1"]
    return [*who, *(f"MESSAGE_ID={message_id}" for message_id in MESSAGE_IDS)]


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.lstrip("-").isdigit() else None


def _text(value: object) -> str | None:
    return value[:_MESSAGE_LIMIT] if isinstance(value, str) else None


def parse_event(line: str, unit: str, scope: Scope) -> HistoryEvent | None:
    """One `journalctl -o json` line as an event; None for what is not the manager's word about
    this unit (the matches say so already: this holds when a journal says otherwise)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    kind = MESSAGE_IDS.get(str(entry.get("MESSAGE_ID")))
    usec = _int(entry.get("__REALTIME_TIMESTAMP"))
    about = entry.get("USER_UNIT" if scope is Scope.USER else "UNIT")
    if kind is None or usec is None or about != unit:
        return None
    exit_kind = entry.get("EXIT_CODE")
    status = _int(entry.get("EXIT_STATUS"))
    return HistoryEvent(
        time=datetime.fromtimestamp(usec / 1_000_000, UTC),
        kind=kind,
        message=_text(entry.get("MESSAGE")) or "",
        result=_text(entry.get("UNIT_RESULT")) or _text(entry.get("JOB_RESULT")),
        exit_code=status if exit_kind == "exited" else None,
        signal=status if exit_kind in ("killed", "dumped") else None,
        restarts=_int(entry.get("N_RESTARTS")),
    )


def parse_events(lines: Iterable[str], unit: str, scope: Scope) -> list[HistoryEvent]:
    return [event for line in lines if (event := parse_event(line, unit, scope)) is not None]


_HEAD = re.compile(r"^Head realtime timestamp:.*\(([0-9a-f]+)\)\s*$", re.M)


def journal_start(header: str) -> datetime | None:
    """The oldest entry any journal file still holds, from `journalctl --header` (its raw
    microseconds, in hex, which no locale changes)."""
    heads = [int(found, 16) for found in _HEAD.findall(header)]
    heads = [usec for usec in heads if usec > 0]
    return datetime.fromtimestamp(min(heads) / 1_000_000, UTC) if heads else None


# systemd's Result, in words: why a unit last stopped or failed (the same facts as a
# PROCESS_EXITED and FAILED pair in its history, for a status event to carry at once).
_REASONS = {
    "exit-code": "exited with status {status}",
    "signal": "killed by signal {status}{name}",
    "core-dump": "dumped core on signal {status}{name}",
    "timeout": "timed out",
    "watchdog": "missed its watchdog",
    "start-limit-hit": "started too often: its start limit was hit",
    "oom-kill": "killed by the out-of-memory killer",
    "resources": "could not get its resources",
    "exec-condition": "skipped by its ExecCondition",
    "protocol": "broke its service protocol",
}


def signal_name(number: int | None) -> str | None:
    """SIGKILL for 9; None for no signal or a number that names none."""
    try:
        return signal.Signals(number).name if number is not None else None
    except ValueError:
        return None


def stop_reason(result: str | None, status: int | None) -> str | None:
    """ "killed by signal 9 (SIGKILL)", "exited with status 1", ...; None when it ended well."""
    if result in (None, "", "success"):
        return None
    template = _REASONS.get(result)
    if template is None:
        return f"failed: {result}"
    name = signal_name(status)
    return template.format(status="?" if status is None else status, name=f" ({name})" if name else "")
