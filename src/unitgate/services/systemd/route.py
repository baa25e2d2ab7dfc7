"""How an action gets its privilege: the route in `restart_via`, checked against what this process can do."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from unitgate.services.systemd.units import Scope

# Where Debian's polkitd lives, and the D-Bus activation file any distribution's polkit installs.
POLKIT_DAEMONS = (
    "/usr/lib/polkit-1/polkitd",
    "/usr/share/dbus-1/system-services/org.freedesktop.PolicyKit1.service",
)


class RestartVia(enum.StrEnum):
    """`auto` picks the route that can work in the running process (see choose_route)."""

    AUTO = "auto"
    DIRECT = "direct"  # systemctl itself: root, the user manager, or polkit deciding
    SUDO = "sudo"  # sudo -n systemctl VERB UNIT, as the sudoers drop-in allows
    POLKIT = "polkit"  # systemctl --no-ask-password over D-Bus, as the polkit rule allows


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What decides which route can work here."""

    euid: int
    no_new_privileges: bool  # sudo cannot gain root under it
    polkit_installed: bool
    sudo_installed: bool


class RouteUnusable(ValueError):
    """No route can work in this process as configured; the message names the fix."""


_SUDO_UNDER_NNP = (
    "sudo cannot work here: this process runs with NoNewPrivileges (systemd sets it for a non-root "
    'User= with most hardening options). Use the polkit route (restart_via = "polkit", with '
    "`unitgate polkit-rule` installed), or install the sudo drop-in "
    "(deploy/unitgate.service.d/sudo.conf; `unitgate setup --restart-via sudo` does both)"
)
_NO_POLKIT = (
    "the polkit route needs polkitd, which is not installed: `apt install polkitd`, then "
    "`unitgate setup --restart-via polkit` (or install `unitgate polkit-rule` yourself)"
)


def choose_route(configured: RestartVia, scope: Scope, facts: ProcessFacts) -> RestartVia:
    """The route actions take; never one that cannot work in this process (RouteUnusable)."""
    needs_privilege = scope is Scope.SYSTEM and facts.euid != 0
    if configured is RestartVia.AUTO:
        if not needs_privilege:
            return RestartVia.DIRECT
        if facts.no_new_privileges or not facts.sudo_installed:
            if not facts.polkit_installed:
                raise RouteUnusable(f'restart_via = "auto" finds no route: {_NO_POLKIT}')
            return RestartVia.POLKIT
        return RestartVia.SUDO
    if configured is RestartVia.SUDO and facts.no_new_privileges:
        raise RouteUnusable(f'restart_via = "sudo": {_SUDO_UNDER_NNP}')
    if configured is RestartVia.POLKIT and needs_privilege and not facts.polkit_installed:
        raise RouteUnusable(f'restart_via = "polkit": {_NO_POLKIT}')
    return configured


def no_new_privileges(status: str) -> bool:
    """Whether /proc/PID/status text says NoNewPrivs is set."""
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == "NoNewPrivs":
            return value.strip() == "1"
    return False


def read_facts(sudo_path: str = "/usr/bin/sudo") -> ProcessFacts:
    """The facts of the running process and machine."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        status = ""
    return ProcessFacts(
        euid=os.geteuid(),
        no_new_privileges=no_new_privileges(status),
        polkit_installed=any(Path(path).exists() for path in POLKIT_DAEMONS),
        sudo_installed=os.access(sudo_path, os.X_OK),
    )
