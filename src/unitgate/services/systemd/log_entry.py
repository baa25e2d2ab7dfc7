"""One journal entry as unitgate passes it on: a value every layer shares, errors included
(an action's failure carries its unit's recent lines), so it depends on nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class LogEntry:
    time: datetime
    priority: int | None
    pid: int | None
    message: str
    cursor: str
