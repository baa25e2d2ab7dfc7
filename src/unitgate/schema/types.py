"""The schema's object types: what a successful answer carries."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from unitgate.schema.scalars import ByteCount
from unitgate.services.facade import InstanceState
from unitgate.services.systemd.history import stop_reason
from unitgate.services.systemd.logs import LogEntry
from unitgate.services.systemd.status import UnitStatus


def uptime_seconds(active_since: datetime | None, now: datetime) -> int | None:
    """Whole seconds from `active_since` to `now`; None when not active."""
    if active_since is None:
        return None
    return max(0, int((now - active_since).total_seconds()))


def event_moment(event: object) -> tuple[int | None] | None:
    """What of a subscription event changes with time alone (a status's uptime, now), or None for
    an event that is not shared: only statuses are one object for every subscriber."""
    return (event.uptime_seconds(),) if isinstance(event, ServiceStatus) else None


@strawberry.type(description="The state of one allowlisted systemd service.")
class ServiceStatus:
    id: strawberry.ID = strawberry.field(
        description=(
            "Opaque; stable for one service on one unitgate instance and distinct across instances, "
            "so normalized caches (Apollo, urql) merge live events into lists."
        )
    )
    name: str = strawberry.field(description="The allowlisted name, without '.service'.")
    unit: str = strawberry.field(
        description=(
            "The systemd unit the name resolves to (systemd's Id): `mysql` answers for "
            "`mariadb.service` where mysql.service is an alias of it."
        )
    )
    active: bool = strawberry.field(description="True when activeState is active or reloading.")
    active_state: str = strawberry.field(description="systemd's ActiveState, e.g. active, failed.")
    sub_state: str = strawberry.field(description="systemd's SubState, e.g. running, dead.")
    load_state: str = strawberry.field(description="systemd's LoadState, e.g. loaded, masked.")
    description: str
    main_pid: int | None = strawberry.field(description="Null when there is no main process.")
    memory_bytes: ByteCount | None = strawberry.field(
        description="MemoryCurrent; null when systemd does not account memory for the unit."
    )
    active_since: datetime | None = strawberry.field(
        description="When the unit last became active (UTC); null when it is not active."
    )
    restart_count: int | None = strawberry.field(
        description="NRestarts: automatic restarts by systemd since the unit was last started."
    )
    unit_file_state: str | None = strawberry.field(
        description="systemd's UnitFileState, e.g. enabled, disabled, static."
    )
    can_reload: bool = strawberry.field(
        description="CanReload: whether reloadService works here (show the button)."
    )
    result: str | None = strawberry.field(
        description=(
            "systemd's Result, why the unit last stopped: success, exit-code, signal, core-dump, "
            "timeout, oom-kill, start-limit-hit, ..."
        )
    )
    main_exit_status: int | None = strawberry.field(
        description=(
            "The last main process's exit status, or its signal number when it was killed (see "
            "result); null while it runs or when none has ended."
        )
    )
    reason: str | None = strawberry.field(
        description=(
            "Why it last stopped or failed, in words: 'killed by signal 9 (SIGKILL)', 'exited with "
            "status 1', 'timed out'; null when it ended well. serviceHistory has the whole story."
        )
    )
    cpu_seconds: float | None = strawberry.field(
        description="CPU time used (CPUUsageNSec); null when systemd does not account CPU."
    )
    tasks: int | None = strawberry.field(description="TasksCurrent; null when not accounted.")

    @strawberry.field(description="Seconds since activeSince, at the time of the answer.")
    def uptime_seconds(self) -> int | None:
        return uptime_seconds(self.active_since, datetime.now(UTC))

    @classmethod
    def from_unit(cls, status: UnitStatus, instance: str) -> ServiceStatus:
        return cls(
            id=strawberry.ID(f"{instance}/{status.name}"),
            name=status.name,
            unit=status.unit_id,
            active=status.active,
            active_state=status.active_state,
            sub_state=status.sub_state,
            load_state=status.load_state,
            description=status.description,
            main_pid=status.main_pid,
            memory_bytes=None if status.memory_bytes is None else ByteCount(status.memory_bytes),
            active_since=status.active_since,
            restart_count=status.restart_count,
            unit_file_state=status.unit_file_state,
            can_reload=status.can_reload,
            result=status.result,
            main_exit_status=status.main_exit_status,
            reason=stop_reason(status.result, status.main_exit_status),
            cpu_seconds=None if status.cpu_nsec is None else status.cpu_nsec / 1e9,
            tasks=status.tasks,
        )


@strawberry.type(description="The installed allowlisted services, and how many are in which state.")
class ServiceList:
    services: list[ServiceStatus]
    total: int
    active: int = strawberry.field(description="activeState active or reloading.")
    failed: int
    inactive: int = strawberry.field(description="activeState inactive or deactivating.")
    activating: int


@strawberry.type(description="One journal entry of a service.")
class LogLine:
    time: datetime = strawberry.field(description="When journald received it (UTC).")
    priority: int | None = strawberry.field(description="syslog priority, 0 (emerg) to 7 (debug).")
    pid: int | None
    message: str = strawberry.field(description="Invalid UTF-8 is replaced with U+FFFD.")
    cursor: str = strawberry.field(description="Pass as afterCursor to resume after this line.")

    @classmethod
    def from_entry(cls, entry: LogEntry) -> LogLine:
        return cls(
            time=entry.time,
            priority=entry.priority,
            pid=entry.pid,
            message=entry.message,
            cursor=entry.cursor,
        )


@strawberry.type(description="A service's most recent journal lines, oldest first.")
class ServiceLogs:
    lines: list[LogLine]


@strawberry.type(description="The reload's job finished; `service` is the status after it.")
class ReloadSucceeded:
    service: ServiceStatus


@strawberry.type(description="The restart's job finished; `service` is the status after it.")
class RestartSucceeded:
    service: ServiceStatus


@strawberry.type(description="The start's job finished (or the unit was already active).")
class StartSucceeded:
    service: ServiceStatus


@strawberry.type(description="The stop's job finished (or the unit was already inactive).")
class StopSucceeded:
    service: ServiceStatus


@strawberry.type(description="How many of an instance's services are in which state.")
class ServiceCounts:
    total: int
    active: int = strawberry.field(description="activeState active or reloading.")
    failed: int
    inactive: int = strawberry.field(description="activeState inactive or deactivating.")
    activating: int


@strawberry.type(description="One host: this unitgate, or one of a hub's fleet.")
class Instance:
    name: str = strawberry.field(description="instance_name in the config, else the host name.")
    systemd_version: str | None = strawberry.field(description="Null when no manager answers.")
    scope: str = strawberry.field(description="system or user: which systemd manager it talks to.")
    online: bool = strawberry.field(default=True, description="Whether its agent is connected now.")
    last_seen: datetime | None = strawberry.field(
        default=None, description="When it was last heard from (UTC); null when never."
    )
    counts: ServiceCounts | None = strawberry.field(
        default=None, description="Its installed services by state, as last known."
    )

    @classmethod
    def from_state(cls, state: InstanceState) -> Instance:
        counts = state.counts
        return cls(
            name=state.name,
            systemd_version=state.systemd_version,
            scope=state.scope,
            online=state.online,
            last_seen=state.last_seen,
            counts=ServiceCounts(
                total=counts.total,
                active=counts.active,
                failed=counts.failed,
                inactive=counts.inactive,
                activating=counts.activating,
            ),
        )


@strawberry.type(description="The caller, as this server sees its token: what a dashboard may show.")
class Me:
    name: str = strawberry.field(description="The token's name (anonymous without authentication).")
    role: str = strawberry.field(description="viewer or operator.")
    services: list[str] = strawberry.field(description="The allowlisted services this token reaches.")
    actions: list[str] = strawberry.field(
        description="The actions it may take: its own, cut to what the server offers; none for a viewer."
    )
    instances: list[str] | None = strawberry.field(
        default=None, description="The instances it reaches: names or patterns (web-*); null for all."
    )
