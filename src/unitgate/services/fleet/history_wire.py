"""A service's history as it crosses NATS, from an agent to the hub: strict on the way in, like
every codec in wire.py (a host is hostile until what it sent is checked)."""

from __future__ import annotations

from typing import Any

from unitgate.services.fleet.wire import WireError, _get, _time
from unitgate.services.systemd.history import EventKind, History, HistoryEvent

_KINDS = {str(kind): kind for kind in EventKind}
_TEXT_FIELDS = ("result", "actor", "action", "outcome")
_INT_FIELDS = ("exit_code", "signal", "restarts")


def event_to_wire(event: HistoryEvent) -> dict[str, Any]:
    return {
        "time": event.time.isoformat(),
        "kind": str(event.kind),
        "message": event.message,
        **{key: getattr(event, key) for key in (*_TEXT_FIELDS, *_INT_FIELDS)},
    }


def history_to_wire(history: History) -> dict[str, Any]:
    return {
        "name": history.name,
        "events": [event_to_wire(event) for event in history.events],
        "journal_start": history.journal_start.isoformat() if history.journal_start else None,
        "complete": history.complete,
    }


def event_from_wire(data: object, instance: str) -> HistoryEvent:
    if not isinstance(data, dict):
        raise WireError("an event is not an object")
    kind = _KINDS.get(_get(data, "kind", str))
    moment = _time(_get(data, "time", str))
    if kind is None or moment is None:
        raise WireError("kind: not an event kind")
    message = _get(data, "message", str)
    if len(message) > 512:
        raise WireError("message: too long")
    return HistoryEvent(
        time=moment,
        kind=kind,
        message=message,
        **{key: _get(data, key, str, optional=True) for key in _TEXT_FIELDS},
        **{key: _get(data, key, int, optional=True) for key in _INT_FIELDS},
        instance=instance,
    )


def history_from_wire(data: dict[str, Any], name: str, instance: str, limit: int) -> History:
    """The agent's answer for `name`: no more events than were asked for, each one checked."""
    if _get(data, "name", str) != name:
        raise WireError("name: not the service asked about")
    events = _get(data, "events", list)
    if len(events) > limit:
        raise WireError(f"more than {limit} events")
    return History(
        name=name,
        events=tuple(event_from_wire(event, instance) for event in events),
        journal_start=_time(_get(data, "journal_start", str, optional=True)),
        complete=_get(data, "complete", bool),
        instance=instance,
    )
