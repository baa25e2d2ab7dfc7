"""The audit trail: one JSON line per restart attempt, to stderr and optionally to a file."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from unitgate.services.access import Actor

_NAME_LIMIT = 256


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

    def record(self, record: AuditRecord) -> None:
        line = record.to_json() + "\n"
        with self._lock:
            stream = self._stream if self._stream is not None else sys.stderr
            stream.write(line)
            stream.flush()
            if self.path is not None:
                # One write() of a line opened with O_APPEND: lines from several processes never interleave.
                with self.path.open("a", encoding="utf-8") as audit_file:
                    audit_file.write(line)


def now() -> datetime:
    return datetime.now(UTC)
