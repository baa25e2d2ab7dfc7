"""The status of one unit as unitgate reports it, and the pure parser of `systemctl show`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from unitgate.services.systemd.units import unit_for

# Asked of systemctl in one `show` call; the parser reads nothing else.
SHOW_PROPERTIES: tuple[str, ...] = (
    "Id",
    "Description",
    "LoadState",
    "ActiveState",
    "SubState",
    "MainPID",
    "MemoryCurrent",
    "ActiveEnterTimestamp",
    "ActiveEnterTimestampMonotonic",
    "NRestarts",
    "UnitFileState",
    "CanReload",
    "CPUUsageNSec",
    "Result",
    "ExecMainCode",
    "ExecMainStatus",
    "TasksCurrent",
)
# ExecMainCode: how the last main process ended (siginfo's CLD_EXITED, CLD_KILLED, CLD_DUMPED);
# 0 while it runs or when none ran.
_MAIN_ENDED = frozenset({1, 2, 3})

# systemd's "no value" for a 64-bit counter on versions that print it raw instead of "[not set]".
_UINT64_UNSET = 2**64 - 1
_ACTIVE_STATES = frozenset({"active", "reloading"})


@dataclass(frozen=True, slots=True)
class ClockReading:
    """Wall and monotonic time read together, to place a monotonic timestamp on the wall clock."""

    realtime: float
    monotonic: float


@dataclass(frozen=True, slots=True)
class UnitStatus:
    name: str
    # systemd's Id: the unit the name resolves to. An alias (mysql.service) reports its target's.
    unit_id: str
    description: str
    load_state: str
    active_state: str
    sub_state: str
    main_pid: int | None
    memory_bytes: int | None
    active_since: datetime | None
    restart_count: int | None
    unit_file_state: str | None
    can_reload: bool
    cpu_nsec: int | None = None  # CPUUsageNSec; None where systemd does not account CPU
    result: str | None = None  # systemd's Result: success, exit-code, signal, core-dump, timeout, ...
    main_exit_status: int | None = None  # the last main process's exit status or signal number
    tasks: int | None = None  # TasksCurrent; None where not accounted
    instance: str = ""  # which host it is of, where several are (a hub's view); "" for this one

    @property
    def installed(self) -> bool:
        return self.load_state != "not-found"

    @property
    def is_alias(self) -> bool:
        """Whether the name is another name of a unit (Debian's mysql.service is mariadb's)."""
        return self.installed and self.unit_id != unit_for(self.name)

    @property
    def active(self) -> bool:
        return self.active_state in _ACTIVE_STATES

    @property
    def change_key(self) -> tuple[str, str, int | None, str]:
        """What a subscriber is told about: a change here is an event, anything else is not."""
        return (self.active_state, self.sub_state, self.main_pid, self.load_state)

    def uptime_seconds(self, now: datetime) -> int | None:
        if self.active_since is None:
            return None
        return max(0, int((now - self.active_since).total_seconds()))


@dataclass(frozen=True, slots=True)
class StateCounts:
    """For a dashboard's header ("2 services have failed"). `active` includes reloading and
    `inactive` includes deactivating, so the four states add up to `total`."""

    total: int
    active: int
    failed: int
    inactive: int
    activating: int


def distinct_units(statuses: Sequence[UnitStatus]) -> list[UnitStatus]:
    """One status per systemd unit, in the order given: where several allowlisted names are one
    unit (an alias and its target), the name that is the unit's own wins, else the first."""
    chosen: dict[str, UnitStatus] = {}
    for status in statuses:
        kept = chosen.get(status.unit_id)
        if kept is None or (kept.is_alias and not status.is_alias):
            chosen[status.unit_id] = status
    keep = {id(status) for status in chosen.values()}
    return [status for status in statuses if id(status) in keep]


def count_states(statuses: Sequence[UnitStatus]) -> StateCounts:
    states = [status.active_state for status in statuses]
    return StateCounts(
        total=len(states),
        active=sum(state in _ACTIVE_STATES for state in states),
        failed=states.count("failed"),
        inactive=sum(state in ("inactive", "deactivating") for state in states),
        activating=states.count("activating"),
    )


class ShowOutputError(ValueError):
    """systemctl printed something that does not have the shape of `show` output."""


def parse_show_output(text: str, names: Sequence[str], clock: ClockReading) -> list[UnitStatus]:
    """Turn `systemctl show --property=... A.service B.service` output into one status per name.

    systemctl prints one block per unit, in the order asked, separated by blank lines, and a
    block even for a unit that is not installed (LoadState=not-found). Blocks are matched by
    position, not by Id, because an alias (mysql.service -> mariadb.service) reports its target.
    """
    blocks = list(_blocks(text))
    if len(blocks) != len(names):
        raise ShowOutputError(f"expected {len(names)} unit blocks from systemctl, got {len(blocks)}")
    return [_status_from_block(name, block, clock) for name, block in zip(names, blocks, strict=True)]


def _blocks(text: str) -> Iterator[dict[str, str]]:
    block: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            if block:
                yield block
                block = {}
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ShowOutputError(f"not a KEY=value line: {line[:80]!r}")
        block[key] = value
    if block:
        yield block


def _status_from_block(name: str, props: Mapping[str, str], clock: ClockReading) -> UnitStatus:
    try:
        load_state = props["LoadState"]
        active_state = props["ActiveState"]
        sub_state = props["SubState"]
    except KeyError as missing:
        raise ShowOutputError(f"systemctl show gave no {missing.args[0]} for {name}") from None
    active = active_state in _ACTIVE_STATES
    main_pid = _optional_int(props.get("MainPID"))
    return UnitStatus(
        name=name,
        unit_id=props.get("Id") or unit_for(name),
        description=props.get("Description") or name,
        load_state=load_state,
        active_state=active_state,
        sub_state=sub_state,
        main_pid=main_pid or None,
        memory_bytes=parse_memory(props.get("MemoryCurrent")),
        active_since=_active_since(props, clock) if active else None,
        restart_count=_optional_int(props.get("NRestarts")),
        unit_file_state=props.get("UnitFileState") or None,
        can_reload=props.get("CanReload") == "yes",
        cpu_nsec=parse_counter(props.get("CPUUsageNSec")),
        result=props.get("Result") or None,
        main_exit_status=_main_exit_status(props),
        tasks=parse_counter(props.get("TasksCurrent")),
    )


def _main_exit_status(props: Mapping[str, str]) -> int | None:
    """ExecMainStatus once a main process has ended (exit status, or signal number when killed)."""
    if _optional_int(props.get("ExecMainCode")) not in _MAIN_ENDED:
        return None
    return _optional_int(props.get("ExecMainStatus"))


def parse_memory(value: str | None) -> int | None:
    """MemoryCurrent in bytes, or None where systemd does not know it.

    "[not set]" (current systemd), 2^64-1 (old systemd) and 0 (no accounting) all mean unknown.
    """
    number = _optional_int(value)
    if number is None or number == 0 or number >= _UINT64_UNSET:
        return None
    return number


def parse_counter(value: str | None) -> int | None:
    """A 64-bit counter such as CPUUsageNSec, or None where systemd does not know it."""
    number = _optional_int(value)
    return None if number is None or number >= _UINT64_UNSET else number


def parse_timestamp(value: str | None) -> datetime | None:
    """A systemd timestamp as printed with TZ=UTC and LC_ALL=C, in either of its two forms.

    `--timestamp=unix` ("@1795725589") only exists from systemd 251, so unitgate does not ask for
    it; the default form is locale- and timezone-proof under the environment the runner sets
    ("Thu 2026-11-26 20:39:49 UTC"). Both are accepted; anything else is None.
    """
    if not value or value == "n/a":
        return None
    if value.startswith("@"):
        seconds = _optional_float(value[1:])
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
    parts = value.split()
    if len(parts) != 4 or parts[3] != "UTC":
        return None
    try:
        return datetime.strptime(f"{parts[1]} {parts[2]}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _active_since(props: Mapping[str, str], clock: ClockReading) -> datetime | None:
    wall = parse_timestamp(props.get("ActiveEnterTimestamp"))
    if wall is not None:
        return wall
    # Fallback for a format we do not know: CLOCK_MONOTONIC is shared with systemd.
    monotonic_usec = _optional_int(props.get("ActiveEnterTimestampMonotonic"))
    if not monotonic_usec:
        return None
    age = clock.monotonic - monotonic_usec / 1_000_000
    since = datetime.fromtimestamp(clock.realtime, UTC) - timedelta(seconds=max(0.0, age))
    return since.replace(microsecond=0)


def _optional_int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        return None
    return int(value)


def _optional_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None
