"""A service's history, from the two records that already exist: the manager's catalogued
messages in the journal, and unitgate's own actions in the audit file (who asked, and how it
ended). Merged newest first; nothing is stored, nothing is guessed past the journal's retention."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

from unitgate.services.errors import UnitgateError
from unitgate.services.policy.audit import recorded_actions
from unitgate.services.systemd.history import History, HistoryEvent
from unitgate.services.systemd.journal import Journal

_START_MAX_AGE = 60.0  # seconds the journal's oldest entry is reused: it moves only on rotation


def merged(
    journal: list[HistoryEvent], actions: list[HistoryEvent], limit: int, journal_cut: bool
) -> tuple[list[HistoryEvent], bool]:
    """Both records, newest first, at most `limit`; whether that is all of them. When the limit
    cut the journal's, actions older than its oldest event are left out too: the window is one."""
    if journal_cut and journal:
        oldest = journal[-1].time
        actions = [action for action in actions if action.time >= oldest]
    events = sorted([*journal, *actions], key=lambda event: event.time, reverse=True)
    return events[:limit], not journal_cut and len(events) <= limit


class Timeline:
    def __init__(self, journal: Journal, audit_file: Path | None) -> None:
        self.journal = journal
        self.audit_file = audit_file
        self._start: tuple[float, datetime | None] = (-_START_MAX_AGE, None)

    async def read(self, name: str, unit_id: str, since: datetime | None, limit: int) -> History:
        """`name` is allowlisted and in scope (the caller checked), `unit_id` what it resolves to."""
        events = await self.journal.history(name, unit_id, since, limit)
        actions: list[HistoryEvent] = []
        if self.audit_file is not None and limit > 0:
            asked_as = frozenset({name, unit_id.removesuffix(".service")})
            actions = await asyncio.to_thread(recorded_actions, self.audit_file, asked_as, since)
        shown, complete = merged(events, actions, limit, journal_cut=len(events) >= limit)
        return History(name, tuple(shown), await self._journal_start(), complete)

    async def _journal_start(self) -> datetime | None:
        read_at, start = self._start
        if time.monotonic() - read_at < _START_MAX_AGE:
            return start
        try:
            start = await self.journal.start()
        except UnitgateError:
            return None  # the events stand without it
        self._start = (time.monotonic(), start)
        return start
