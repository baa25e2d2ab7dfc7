"""What subscribers hear: pure decisions on two readings of every unit's status."""

from __future__ import annotations

from collections.abc import Mapping

from unitgate.services.systemd.status import UnitStatus


def worth_sending(last: UnitStatus | None, status: UnitStatus, follow_new: bool, memory: bool) -> bool:
    """Whether a subscriber that last heard `last` of a unit should hear `status` now."""
    if last is None:
        return follow_new and status.installed
    return last.change_key != status.change_key or (memory and last.memory_bytes != status.memory_bytes)


def state_changed(previous: Mapping[str, UnitStatus], statuses: Mapping[str, UnitStatus]) -> bool:
    if previous.keys() != statuses.keys():
        return True
    return any(previous[name].change_key != s.change_key for name, s in statuses.items())


def memory_changed(previous: Mapping[str, UnitStatus], statuses: Mapping[str, UnitStatus]) -> bool:
    return any(
        name in previous and previous[name].memory_bytes != s.memory_bytes for name, s in statuses.items()
    )
