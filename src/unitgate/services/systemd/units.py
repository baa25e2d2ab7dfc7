"""The vocabulary every layer shares about units: which manager, which verb, which unit file."""

from __future__ import annotations

import enum

SERVICE_SUFFIX = ".service"


class Scope(enum.StrEnum):
    """Which systemd manager unitgate talks to."""

    SYSTEM = "system"
    USER = "user"


class UnitVerb(enum.StrEnum):
    """What unitgate may ask systemd to do to an allowlisted unit, and nothing else."""

    RESTART = "restart"
    RELOAD = "reload"
    START = "start"
    STOP = "stop"


# What a server offers unless its configuration says more (`actions`).
DEFAULT_ACTIONS: frozenset[UnitVerb] = frozenset({UnitVerb.RESTART, UnitVerb.RELOAD})


def unit_for(name: str) -> str:
    """The unit of an allowlisted service name: `nginx` is `nginx.service`."""
    return name + SERVICE_SUFFIX
