"""The units the test sandbox boots: each named like an allowlisted service, each a real process."""

from __future__ import annotations

import sys
from pathlib import Path

HEALTHY = "nginx"  # restarted by the tests
CRASHY = "postfix"  # its main process gets killed; systemd brings it back
FAILING = "php8.2-fpm"  # its start (and so every restart) fails
HANGING = "mariadb"  # its restart hangs until the job is cancelled
MISSING = "redis-server"  # allowlisted, never installed
LOGGY = "fail2ban"  # writes a long line and invalid UTF-8 to its journal at every start
LONG_LINE = "x" * 5000

UNITS: dict[str, str] = {
    f"{HEALTHY}.service": (
        "[Unit]\nDescription=Test web server\nStartLimitIntervalSec=0\n"
        "[Service]\nExecStartPre=/bin/sh -c 'echo start >> %t/nginx.starts'\n"
        "ExecStart=/bin/sleep infinity\nExecReload=/bin/true\n"
    ),
    f"{CRASHY}.service": (
        "[Unit]\nDescription=Test mail server\nStartLimitIntervalSec=0\n"
        "[Service]\nExecStart=/bin/sleep infinity\nRestart=always\nRestartSec=200ms\n"
    ),
    f"{FAILING}.service": (
        "[Unit]\nDescription=Test PHP pool that cannot start\n"
        "[Service]\nExecStartPre=/bin/sh -c 'echo \"config test failed\" >&2; exit 3'\n"
        "ExecStart=/bin/sleep infinity\n"
    ),
    f"{HANGING}.service": (
        "[Unit]\nDescription=Test database whose start hangs\n"
        "[Service]\nExecStartPre=/bin/sleep infinity\nExecStart=/bin/sleep infinity\n"
        "TimeoutStartSec=infinity\n"
    ),
    # One long-lived process writes it all: journald tags a line with its unit by the sender's
    # cgroup, which a short-lived helper (tr, head) may have left before the line is read.
    f"{LOGGY}.service": (
        "[Unit]\nDescription=Test service with a lot to say\nStartLimitIntervalSec=0\n"
        f'[Service]\nExecStart={sys.executable} -c "import sys, time; out = sys.stdout.buffer; '
        "out.write(b'started\\\\n' + b'x' * 5000 + b'\\\\nbad \\\\xff\\\\xfe bytes\\\\n'); out.flush(); "
        'time.sleep(1e9)"\n'
    ),
}

# Booted with the sandbox; the hanging one is not, or boot would never finish.
STARTED = [f"{HEALTHY}.service", f"{CRASHY}.service", f"{FAILING}.service", f"{LOGGY}.service"]


def starts(runtime_dir: Path) -> int:
    """How many times the healthy unit has been started: systemd's own record, not ours."""
    path = runtime_dir / f"{HEALTHY}.starts"
    return len(path.read_text().splitlines()) if path.exists() else 0
