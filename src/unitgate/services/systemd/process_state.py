"""Whether a main process is dead or dying, from /proc: a hint that systemd will soon say so."""

from __future__ import annotations

import os

_SIGKILL_BIT = 1 << (9 - 1)  # signal n is bit n-1 of the pending masks


def killed(status: bytes) -> bool:
    """Whether a /proc/<pid>/status text shows a zombie or a SIGKILL pending (sent, not yet acted
    on by the dying process: kill(2) returns before the process has exited)."""
    if _field(status, b"\nState:")[:1] in (b"Z", b"X"):
        return True
    return any(int(_field(status, key) or b"0", 16) & _SIGKILL_BIT for key in (b"\nSigPnd:", b"\nShdPnd:"))


def _field(status: bytes, key: bytes) -> bytes:
    # A find per field, not a split of every line: this runs for each main process per query.
    start = status.find(key)
    if start < 0:
        return b""
    end = status.find(b"\n", start + 1)
    return status[start + len(key) : end if end >= 0 else None].strip()


def killed_or_gone(pid: int) -> bool:
    """Whether process `pid` has exited or has a SIGKILL on its way. Between kill(2) returning and
    systemd handling the death there is a window of a millisecond or two in which systemd (and so
    any D-Bus round trip to it) still names it the main process; this closes that window. False
    when /proc cannot tell (hidepid, no permission): the signals still come, a moment later."""
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        return False
    try:
        return killed(os.read(fd, 8192))
    except ProcessLookupError:  # reaped between open and read
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
