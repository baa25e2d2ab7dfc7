"""What crosses NATS, as JSON: statuses, log lines, the caller, answers and typed errors. Pure, and
strict on the way in: a host (or a hub) is hostile until what it sent is checked."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from unitgate.services import errors
from unitgate.services.systemd.allowlist import unit_name_problem
from unitgate.services.systemd.logs import LogEntry
from unitgate.services.systemd.status import UnitStatus

_TEXT = 4096  # the longest string field a status or a line may carry
_MESSAGE = 64 * 1024  # a journal line's message


class WireError(ValueError):
    """What arrived is not what the other side should have sent."""


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise WireError(f"{key}: expected {kind}, got {type(value).__name__}")
    if isinstance(value, str) and len(value) > (_MESSAGE if key == "message" else _TEXT):
        raise WireError(f"{key}: too long")
    return value


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise WireError(f"not a time: {value[:40]!r}") from error
    if moment.tzinfo is None:
        raise WireError("a time without its zone")
    return moment


def loads(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise WireError("not JSON") from error
    if not isinstance(data, dict):
        raise WireError("not an object")
    return data


def dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


# --- statuses and log lines


def status_to_wire(status: UnitStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "unit": status.unit_id,
        "description": status.description,
        "load": status.load_state,
        "active": status.active_state,
        "sub": status.sub_state,
        "pid": status.main_pid,
        "memory": status.memory_bytes,
        "since": status.active_since.isoformat() if status.active_since else None,
        "restarts": status.restart_count,
        "file": status.unit_file_state,
        "reload": status.can_reload,
        "cpu": status.cpu_nsec,
        "result": status.result,
        "exit": status.main_exit_status,
        "tasks": status.tasks,
    }


def status_from_wire(data: dict[str, Any], instance: str) -> UnitStatus:
    name = _get(data, "name", str)
    problem = unit_name_problem(name)
    if problem is not None:
        raise WireError(f"service name {problem}")
    return UnitStatus(
        name=name,
        unit_id=_get(data, "unit", str),
        description=_get(data, "description", str),
        load_state=_get(data, "load", str),
        active_state=_get(data, "active", str),
        sub_state=_get(data, "sub", str),
        main_pid=_get(data, "pid", int, optional=True),
        memory_bytes=_get(data, "memory", int, optional=True),
        active_since=_time(_get(data, "since", str, optional=True)),
        restart_count=_get(data, "restarts", int, optional=True),
        unit_file_state=_get(data, "file", str, optional=True),
        can_reload=_get(data, "reload", bool),
        cpu_nsec=_get(data, "cpu", int, optional=True),
        result=_get(data, "result", str, optional=True),
        main_exit_status=_get(data, "exit", int, optional=True),
        tasks=_get(data, "tasks", int, optional=True),
        instance=instance,
    )


def line_to_wire(entry: LogEntry) -> dict[str, Any]:
    return {
        "time": entry.time.isoformat(),
        "priority": entry.priority,
        "pid": entry.pid,
        "message": entry.message,
        "cursor": entry.cursor,
    }


def line_from_wire(data: dict[str, Any]) -> LogEntry:
    moment = _time(_get(data, "time", str))
    assert moment is not None
    return LogEntry(
        time=moment,
        priority=_get(data, "priority", int, optional=True),
        pid=_get(data, "pid", int, optional=True),
        message=_get(data, "message", str),
        cursor=_get(data, "cursor", str),
    )


def lines_from_wire(data: dict[str, Any], limit: int) -> list[LogEntry]:
    lines = _get(data, "lines", list)
    if len(lines) > limit:
        raise WireError(f"more than {limit} lines")
    return [line_from_wire(line) if isinstance(line, dict) else _not_object() for line in lines]


def _not_object() -> LogEntry:
    raise WireError("a line is not an object")


# --- what a host says of itself


@dataclass(frozen=True, slots=True)
class HostInfo:
    systemd_version: str | None
    scope: str
    services: tuple[str, ...]  # its allowlist
    actions: tuple[str, ...]  # what it offers


def host_to_wire(host: HostInfo) -> dict[str, Any]:
    return {
        "systemd": host.systemd_version,
        "scope": host.scope,
        "services": list(host.services),
        "actions": list(host.actions),
    }


def host_from_wire(data: dict[str, Any]) -> HostInfo:
    services = _get(data, "services", list)
    actions = _get(data, "actions", list)
    if len(services) > 1000 or not all(isinstance(s, str) and unit_name_problem(s) is None for s in services):
        raise WireError("services: not a list of service names")
    if not all(a in ("restart", "reload", "start", "stop") for a in actions):
        raise WireError("actions: not a list of actions")
    return HostInfo(
        systemd_version=_get(data, "systemd", str, optional=True),
        scope=_get(data, "scope", str),
        services=tuple(services),
        actions=tuple(actions),
    )


# --- the caller, as the hub names it to an agent


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    role: str
    address: str | None
    services: tuple[str, ...] | None
    actions: tuple[str, ...]


def caller_to_wire(caller: Caller) -> dict[str, Any]:
    return {
        "name": caller.name,
        "role": caller.role,
        "address": caller.address,
        "services": None if caller.services is None else list(caller.services),
        "actions": list(caller.actions),
    }


def caller_from_wire(data: dict[str, Any]) -> Caller:
    role = _get(data, "role", str)
    if role not in ("viewer", "operator"):
        raise WireError("role: neither viewer nor operator")
    services = _get(data, "services", list, optional=True)
    actions = _get(data, "actions", list)
    if services is not None and not all(isinstance(s, str) for s in services):
        raise WireError("services: not a list of names")
    if not all(a in ("restart", "reload", "start", "stop") for a in actions):
        raise WireError("actions: not a list of actions")
    return Caller(
        name=_get(data, "name", str),
        role=role,
        address=_get(data, "address", str, optional=True),
        services=None if services is None else tuple(services),
        actions=tuple(actions),
    )


# --- typed errors: the one table of what each carries across


ERROR_FIELDS: dict[type[errors.UnitgateError], tuple[str, ...]] = {
    errors.ServiceNotAllowed: ("name",),
    errors.ServiceNotFound: ("name",),
    errors.CommandTimeout: ("command", "timeout_seconds"),
    errors.SystemdUnavailable: ("reason",),
    errors.ServerBusy: ("retry_after_seconds",),
    errors.JournalUnavailable: ("reason",),
    errors.InvalidCursor: (),
    errors.LogStreamLagged: ("last_cursor",),
    errors.RestartFailed: ("name", "exit_code", "detail", "recent_logs"),
    errors.ReloadFailed: ("name", "exit_code", "detail", "recent_logs"),
    errors.StartFailed: ("name", "exit_code", "detail", "recent_logs"),
    errors.StopFailed: ("name", "exit_code", "detail", "recent_logs"),
    errors.ActionNotEnabled: ("action",),
    errors.ReloadNotSupported: ("name",),
    errors.Forbidden: ("role", "action", "token"),
    errors.ActionInProgress: ("name",),
    errors.RateLimited: ("name", "retry_after_seconds"),
    errors.InstanceOffline: ("instance",),
    errors.InstanceNotFound: ("instance",),
}
_BY_NAME = {kind.__name__: kind for kind in ERROR_FIELDS}
_KINDS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "command": str,
    "reason": str,
    "detail": str,
    "action": str,
    "role": str,
    "instance": str,
    "timeout_seconds": (int, float),
    "retry_after_seconds": (int, float),
    "exit_code": int,
}


def error_to_wire(error: errors.UnitgateError) -> dict[str, Any]:
    kind = type(error)
    fields = {}
    for field in ERROR_FIELDS[kind]:
        value = getattr(error, field)
        fields[field] = [line_to_wire(entry) for entry in value] if field == "recent_logs" else value
    return {"type": kind.__name__, **fields}


def error_from_wire(data: dict[str, Any]) -> errors.UnitgateError:
    kind = _BY_NAME.get(_get(data, "type", str))
    if kind is None:
        raise WireError("an error of no known type")
    values = []
    for field in ERROR_FIELDS[kind]:
        if field == "recent_logs":
            values.append(lines_from_wire({"lines": data.get("recent_logs") or []}, limit=100))
        elif field in ("token", "last_cursor"):
            values.append(_get(data, field, str, optional=True))
        else:
            values.append(_get(data, field, _KINDS[field]))
    return kind(*values)


T = TypeVar("T")


def parsed(decode: Callable[[], T]) -> T:
    """An agent's answer decoded; one that does not parse is the host's failure, typed."""
    try:
        return decode()
    except WireError as error:
        raise errors.SystemdUnavailable(f"the agent's answer does not parse: {error}") from None
