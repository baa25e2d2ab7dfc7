"""The audit trail: one JSON line per attempt to act or read logs, to stderr and optionally a file."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from unitgate.services import errors
from unitgate.services.policy.access import Actor
from unitgate.services.systemd.history import EventKind, HistoryEvent

_NAME_LIMIT = 256

# What the audit line says of each way an attempt can end; subclasses inherit their base's word.
OUTCOMES: dict[type[errors.UnitgateError], str] = {
    errors.Forbidden: "forbidden",
    errors.ServiceNotAllowed: "not_allowed",
    errors.ServiceNotFound: "not_found",
    errors.ActionInProgress: "in_progress",
    errors.RateLimited: "rate_limited",
    errors.ActionFailed: "failed",
    errors.ReloadNotSupported: "not_supported",
    errors.ActionNotEnabled: "not_enabled",
    errors.JournalUnavailable: "journal_unavailable",
    errors.InvalidCursor: "invalid_cursor",
    errors.LogStreamLagged: "lagged",
    errors.CommandTimeout: "timeout",
    errors.SystemdUnavailable: "unavailable",
    errors.ServerBusy: "busy",
    errors.InstanceNotFound: "instance_not_found",
    errors.InstanceOffline: "offline",
}


def outcome_of(error: BaseException) -> str:
    """The audit word for how an attempt failed: the nearest class in OUTCOMES, else "error"."""
    for cls in type(error).__mro__:
        if cls in OUTCOMES:
            return OUTCOMES[cls]
    return "error"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    time: datetime
    actor: Actor
    action: str
    service: str
    outcome: str
    duration_ms: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "time": self.time.isoformat(timespec="milliseconds"),
                "token": self.actor.name,
                "role": str(self.actor.role),
                "client": self.actor.address,
                "action": self.action,
                # Client-sent, so bounded; json.dumps escapes every control character.
                "service": self.service[:_NAME_LIMIT],
                "outcome": self.outcome,
                "duration_ms": self.duration_ms,
            },
            ensure_ascii=True,
        )


class AuditLog:
    def __init__(self, path: Path | None = None, stream: TextIO | None = None) -> None:
        self.path = path
        self._stream = stream
        self._lock = threading.Lock()
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (action, outcome), for /metrics

    def record(self, record: AuditRecord) -> None:
        line = record.to_json() + "\n"
        with self._lock:
            self.outcomes[record.action, record.outcome] += 1
            stream = self._stream if self._stream is not None else sys.stderr
            stream.write(line)
            stream.flush()
            if self.path is not None:
                # One write() of a line opened with O_APPEND: lines from several processes never interleave.
                with self.path.open("a", encoding="utf-8") as audit_file:
                    audit_file.write(line)

    @contextlib.contextmanager
    def attempt(self, action: str, service: str, actor: Actor) -> Iterator[None]:
        """One audit line for what the block does, however it ends (a cancelled block too)."""
        started = time.monotonic()
        outcome = "cancelled"
        try:
            yield
            outcome = "succeeded"
        except Exception as error:
            outcome = outcome_of(error)
            raise
        finally:
            duration_ms = round((time.monotonic() - started) * 1000)
            self.record(AuditRecord(now(), actor, action, service, outcome, duration_ms))


def now() -> datetime:
    return datetime.now(UTC)


# What the audit file says of the actions on a service, for its history: read from the end,
# at most this much of it, so a large file costs no more than a small one.
AUDIT_TAIL_BYTES = 4 << 20
ACTIONS = frozenset({"restart", "reload", "start", "stop"})


def recorded_actions(path: Path, services: frozenset[str], since: datetime | None) -> list[HistoryEvent]:
    """The audit file's actions on any of `services` (the names a unit is asked by), from
    `since`, oldest first, each at the moment it was asked; a missing file has none."""
    try:
        with path.open("rb") as audit_file:
            audit_file.seek(0, 2)
            audit_file.seek(max(0, audit_file.tell() - AUDIT_TAIL_BYTES))
            tail = audit_file.read()
    except OSError:
        return []
    found: list[HistoryEvent] = []
    for raw in tail.decode("utf-8", "replace").splitlines():
        event = _action_event(raw, services, since)
        if event is not None:
            found.append(event)
    return found


def _action_event(raw: str, services: frozenset[str], since: datetime | None) -> HistoryEvent | None:
    try:
        line = json.loads(raw)
        action, service, token, outcome = (line[key] for key in ("action", "service", "token", "outcome"))
        ended = datetime.fromisoformat(line["time"])
        duration = timedelta(milliseconds=int(line["duration_ms"]))
    except (ValueError, TypeError, KeyError):
        return None  # the tail's first line is cut, or the line is not ours
    if action not in ACTIONS or service not in services or not isinstance(token, str):
        return None
    if since is not None and ended < since:  # by when it ended: the line's time is to the millisecond
        return None
    return HistoryEvent(
        time=ended - duration,
        kind=EventKind.ACTION,
        message=f"{action} asked by {token}: {outcome}"[:512],
        actor=token[:_NAME_LIMIT],
        action=action,
        outcome=str(outcome)[:64],
    )
