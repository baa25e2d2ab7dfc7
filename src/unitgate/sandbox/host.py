"""The host as the sandbox sees it: cgroup hierarchies to make and clean, and the process tree."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path


def cgroup_mounts() -> list[Path]:
    """Where the cgroup hierarchies are mounted: cgroup2 and every v1 one but cpuset.

    systemd tracks processes in cgroup2 and v1 name=systemd, and on a hybrid host it reads
    MemoryCurrent from the v1 memory controller. cpuset is left out: a new cpuset cgroup takes
    no process until its cpus and mems are filled in, and nothing here needs it.
    """
    mounts: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ", 1)
        if len(fields) != 2:
            continue
        fstype, _source, options = [*fields[1].split(), "", ""][:3]
        if fstype == "cgroup2" or (fstype == "cgroup" and "cpuset" not in options.split(",")):
            mounts.append(Path(fields[0].split()[4]))
    return mounts


def make_cgroups(slice_name: str) -> list[Path]:
    """The sandbox's top cgroup, `X.slice`, in every hierarchy; none where we may not create
    cgroups (an unprivileged user)."""
    made: list[Path] = []
    for mount in cgroup_mounts():
        top = mount / f"{slice_name}.slice"
        try:
            top.mkdir()
        except OSError:
            remove_cgroups(made)
            return []
        made.append(top)
    return made


def cgroup_pids(cgroups: Iterable[Path]) -> set[int]:
    pids: set[int] = set()
    for cgroup in cgroups:
        for procs in cgroup.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in procs.read_text().split())
    return pids


def remove_cgroups(tops: Iterable[Path]) -> None:
    """Remove each sandbox cgroup tree, deepest first, up to and including its top slice."""
    for top in tops:
        deadline = time.monotonic() + 5
        while top.exists():
            # Killed processes leave their cgroup once reaped, which can take a moment.
            for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
            if not top.exists() or time.monotonic() > deadline:
                break
            time.sleep(0.01)


def process_tree() -> dict[int, list[int]]:
    """Parent pid -> child pids of every process (zombies included), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; fields resume after the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(root_pid: int) -> set[int]:
    """Every process below `root_pid`."""
    children = process_tree()
    found: set[int] = set()
    pending = [root_pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found
