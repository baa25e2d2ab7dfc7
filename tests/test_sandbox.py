"""The sandbox itself: private, isolated from the host and from other sandboxes, and leak-free."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import running
from tests.units import HEALTHY
from unitgate.sandbox.host import cgroup_mounts, descendants
from unitgate.sandbox.manager import UserManagerSandbox

UNIT = {f"{HEALTHY}.service": "[Service]\nExecStart=/bin/sleep infinity\n"}


def sandbox_cgroups() -> set[str]:
    return {
        entry.name
        for mount in cgroup_mounts()
        for entry in mount.iterdir()
        if entry.name.startswith("unitgate-")
    }


def test_sandboxes_are_isolated_and_leave_nothing(sandbox: UserManagerSandbox) -> None:
    host_cgroups_before = {mount: sorted(p.name for p in mount.iterdir()) for mount in cgroup_mounts()}
    shared_pid = sandbox.show(f"{HEALTHY}.service", "MainPID")["MainPID"]
    with UserManagerSandbox(UNIT, start=UNIT) as other:
        assert other.cgroups, "the sandbox runs in cgroups of its own"
        control_group = other.show(f"{HEALTHY}.service", "ControlGroup")["ControlGroup"]
        assert "/user-0.slice/user@0.service/" in control_group
        root = other.root
        family = descendants(other.pid or 0)
        assert family
        # Stopping a unit in one sandbox must not touch the unit of the same name in another.
        other.systemctl("stop", f"{HEALTHY}.service")
    assert sandbox.show(f"{HEALTHY}.service", "MainPID")["MainPID"] == shared_pid
    assert not [pid for pid in family if running(pid)]
    assert not root.exists()
    after = {mount: sorted(p.name for p in mount.iterdir()) for mount in cgroup_mounts()}
    assert after == host_cgroups_before


def test_the_host_sees_none_of_the_sandbox_mounts(sandbox: UserManagerSandbox) -> None:
    # The tmpfs on /run/systemd lives only in the sandbox's mount namespace.
    assert os.readlink(f"/proc/{sandbox.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    with open(f"/proc/{sandbox.pid}/mountinfo") as mounts:
        assert [line for line in mounts if " /run/systemd " in line and " - tmpfs " in line]
    with open("/proc/self/mountinfo") as mounts:
        assert not [line for line in mounts if " /run/systemd " in line and " - tmpfs " in line]


def host_journal_state() -> dict[str, list[str]]:
    places = [Path("/run/log"), Path("/var/log/journal"), Path("/run/systemd")]
    return {
        str(place): sorted(str(p) for p in place.rglob("*")) if place.exists() else [] for place in places
    }


def command_of(pid: int) -> str | None:
    """A process's name, or None for one that ended since it was listed (a unit's helper, say:
    reading every descendant's name had raced with their exits)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return None


def test_own_journal_leaves_the_hosts_as_it_was(own_systemd: None) -> None:
    before = host_journal_state()
    with UserManagerSandbox(UNIT, start=UNIT) as other:
        assert other.journal_directory is not None
        assert other.journal_directory.is_relative_to(other.root)
        journald = [pid for pid in descendants(other.pid or 0) if command_of(pid) == "systemd-journal"]
        assert len(journald) == 1
        assert host_journal_state() == before  # the journal lives in the sandbox's folder
        assert list(other.journal_directory.rglob("*.journal"))
    assert not running(journald[0])
    assert host_journal_state() == before
