"""The history's types: what happened to a service, from systemd's journal and unitgate's audit."""

from __future__ import annotations

from datetime import datetime

import strawberry

from unitgate.services.systemd.history import EventKind, History, signal_name
from unitgate.services.systemd.history import HistoryEvent as Event

HistoryEventKind = strawberry.enum(
    EventKind,
    name="HistoryEventKind",
    description=(
        "What happened: systemd's catalogued messages about the unit (STARTED, PROCESS_EXITED, "
        "FAILED, RESTART_SCHEDULED, ...), or ACTION, an action someone asked of unitgate."
    ),
)


@strawberry.type(description="One thing that happened to a service.")
class HistoryEvent:
    time: datetime = strawberry.field(description="When it happened (UTC); for an ACTION, when it was asked.")
    kind: HistoryEventKind  # type: ignore[valid-type]
    message: str = strawberry.field(description="systemd's own words, or what was asked and how it ended.")
    result: str | None = strawberry.field(
        description="systemd's result: a unit's (signal, exit-code, timeout, ...) or a job's (done, failed)."
    )
    exit_code: int | None = strawberry.field(description="The main process's exit status, when it exited.")
    signal: int | None = strawberry.field(description="The signal that ended the main process (9 is KILL).")
    signal_name: str | None = strawberry.field(description="That signal's name, e.g. SIGKILL.")
    restarts: int | None = strawberry.field(description="systemd's count, with RESTART_SCHEDULED.")
    actor: str | None = strawberry.field(description="ACTION: the name of the token that asked.")
    action: str | None = strawberry.field(description="ACTION: restart, reload, start or stop.")
    outcome: str | None = strawberry.field(description="ACTION: the audit's word, e.g. succeeded, failed.")

    @classmethod
    def from_event(cls, event: Event) -> HistoryEvent:
        return cls(
            time=event.time,
            kind=event.kind,
            message=event.message,
            result=event.result,
            exit_code=event.exit_code,
            signal=event.signal,
            signal_name=signal_name(event.signal),
            restarts=event.restarts,
            actor=event.actor,
            action=event.action,
            outcome=event.outcome,
        )


@strawberry.type(description="What happened to a service, newest first, from the records that exist.")
class ServiceHistory:
    name: str
    instance: str = strawberry.field(description="The host it is of.")
    events: list[HistoryEvent]
    journal_start: datetime | None = strawberry.field(
        description=(
            "The oldest entry the journal still holds: nothing before it is known, so events "
            "before it are absent, not missing. Null when the journal cannot tell."
        )
    )
    complete: bool = strawberry.field(
        description="True when every event the records hold since `since` is here; false when `limit` cut it"
    )

    @classmethod
    def from_history(cls, history: History) -> ServiceHistory:
        return cls(
            name=history.name,
            instance=history.instance,
            events=[HistoryEvent.from_event(event) for event in history.events],
            journal_start=history.journal_start,
            complete=history.complete,
        )
