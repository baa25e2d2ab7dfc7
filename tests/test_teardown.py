"""A test run stopped from outside leaves nothing behind: SIGTERM tears down like Ctrl-C, and even
a run killed outright has its systemd manager shut down (the parent-death signal)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import running, wait_until
from unitgate.sandbox.host import cgroup_pids, descendants, remove_cgroups

ROOT = Path(__file__).parents[1]
PROBE = Path(__file__).parent / "probes" / "probe_sandbox.py"


def held_sandbox() -> tuple[subprocess.Popen[str], int, Path, list[Path]]:
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(PROBE)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.stdout is not None
    for line in run.stdout:
        if line.startswith("READY "):
            pid, root, *cgroups = line.split()[1:]
            return run, int(pid), Path(root), [Path(c) for c in cgroups]
    raise AssertionError("the probe run never held its sandbox")


@pytest.mark.timeout(90)
def test_sigterm_tears_the_sandbox_down(own_systemd: None) -> None:
    run, manager, root, cgroups = held_sandbox()
    family = descendants(manager)
    assert family  # journald, dbus, the units
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=60)
    # The teardown killed what was left and waited for the cgroups to empty; a killed process
    # may still be on its way out for a moment (running() counts a zombie as gone).
    wait_until(lambda: not running(manager) and not [pid for pid in family if running(pid)], timeout=10)
    assert not root.exists()
    assert not [c for c in cgroups if c.exists()], out[-2000:]


@pytest.mark.timeout(90)
def test_a_run_killed_outright_still_stops_its_manager(own_systemd: None) -> None:
    run, manager, root, cgroups = held_sandbox()
    family = descendants(manager)
    try:
        run.kill()  # no teardown at all
        run.communicate(timeout=30)
        wait_until(lambda: not running(manager) and not [pid for pid in family if running(pid)], timeout=30)
    finally:
        # What only a teardown removes: the cgroups and the folder (any process is gone by now,
        # or killed here so the next run starts clean).
        for pid in cgroup_pids(cgroups) | {p for p in family if running(p)}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        remove_cgroups(cgroups)
        shutil.rmtree(root, ignore_errors=True)
