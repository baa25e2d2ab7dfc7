"""Not collected by default: a run that holds the session sandbox until it is stopped from outside
(tests/test_teardown.py sends it SIGTERM or SIGKILL)."""

from __future__ import annotations

import time

from unitgate.sandbox.manager import UserManagerSandbox


def test_hold_the_sandbox(sandbox: UserManagerSandbox) -> None:
    cgroups = " ".join(str(path) for path in sandbox.cgroups)
    print(f"\nREADY {sandbox.pid} {sandbox.root} {cgroups}", flush=True)
    time.sleep(60)
