"""The dead-or-killed hint from /proc: the pure parse, and real processes killed under it."""

from __future__ import annotations

import os
import signal
import subprocess

from unitgate.services.systemd.process_state import killed, killed_or_gone

ALIVE = b"Name:\tsleep\nState:\tS (sleeping)\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n"


def test_the_parse() -> None:
    assert not killed(ALIVE)
    assert killed(ALIVE.replace(b"S (sleeping)", b"Z (zombie)"))
    assert killed(ALIVE.replace(b"ShdPnd:\t0000000000000000", b"ShdPnd:\t0000000000000100"))
    assert killed(ALIVE.replace(b"SigPnd:\t0000000000000000", b"SigPnd:\t0000000000004100"))
    # A SIGTERM pending (bit 15) may be handled: only SIGKILL is certain death.
    assert not killed(ALIVE.replace(b"ShdPnd:\t0000000000000000", b"ShdPnd:\t0000000000004000"))


def test_a_killed_process_is_dying_from_the_moment_kill_returns() -> None:
    for _ in range(50):
        child = subprocess.Popen(["sleep", "60"])
        try:
            assert not killed_or_gone(child.pid)
            os.kill(child.pid, signal.SIGKILL)
            assert killed_or_gone(child.pid)  # before it has exited, while a zombie, and after
            child.wait()
        finally:
            child.kill()
            child.wait()
        assert killed_or_gone(child.pid)  # reaped: gone (its number is not reused this fast)


def test_a_stopped_process_is_alive() -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(child.pid, signal.SIGSTOP)
        assert not killed_or_gone(child.pid)
    finally:
        child.kill()
        child.wait()
