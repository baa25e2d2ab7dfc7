"""`unitgate demo`: a private systemd user manager with a few real services, and unitgate on it."""

from __future__ import annotations

import sys

from unitgate.sandbox.manager import UserManagerSandbox

# Small real processes under familiar names. redis-server crashes now and then and systemd
# brings it back, so the demo shows failures, restart counts and live events.
DEMO_UNITS: dict[str, str] = {
    "nginx.service": (
        "[Unit]\nDescription=nginx (unitgate demo)\nStartLimitIntervalSec=0\n"
        # Like nginx itself, SIGHUP means "read the configuration again", not "die".
        '[Service]\nExecStart=/bin/sh -c \'trap "echo reloaded" HUP; '
        'while :; do echo "GET / 200"; sleep 10 & wait; done\'\n'
        "ExecReload=/bin/kill -HUP $MAINPID\n"
    ),
    "php8.2-fpm.service": (
        "[Unit]\nDescription=PHP 8.2 FastCGI Process Manager (unitgate demo)\n"
        "[Service]\nExecStart=/bin/sleep infinity\n"
    ),
    "mariadb.service": (
        "[Unit]\nDescription=MariaDB database server (unitgate demo)\n"
        "[Service]\nExecStart={python} -c "
        "'import time; ballast = bytearray(48 << 20); time.sleep(10**9)'\n"
    ),
    "redis-server.service": (
        "[Unit]\nDescription=Advanced key-value store (unitgate demo, flaky)\n"
        "[Service]\nExecStart=/bin/sh -c 'echo ready; sleep 45; echo \"crashed\" >&2; exit 1'\n"
        "Restart=on-failure\nRestartSec=5\n"
    ),
}


def demo_sandbox() -> UserManagerSandbox:
    units = {name: body.replace("{python}", sys.executable) for name, body in DEMO_UNITS.items()}
    return UserManagerSandbox(units, start=list(units))
