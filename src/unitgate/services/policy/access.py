"""Who is asking, and what they may do: roles, and a token's scope of services and actions."""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from unitgate.services.systemd.units import UnitVerb


class Role(enum.StrEnum):
    VIEWER = "viewer"  # queries and status subscriptions
    OPERATOR = "operator"  # and actions and logs

    def may_act(self) -> bool:
        """Whether this role may act on a service at all (which actions: the token's scope)."""
        return self is Role.OPERATOR

    def may_read_logs(self) -> bool:
        """Logs can hold secrets: the same bar as acting on a service."""
        return self is Role.OPERATOR


@dataclass(frozen=True, slots=True)
class Actor:
    """An authenticated caller as the audit log names it (never the token itself), with what its
    token reaches: `services` None means every allowlisted one; `actions` is what it may do,
    already cut to what the server offers (none for a viewer)."""

    name: str
    role: Role
    address: str | None = None
    services: frozenset[str] | None = None
    actions: frozenset[UnitVerb] = frozenset()
    # Which instances of a fleet it reaches: names or shell-style patterns (web-*); None, all.
    instances: tuple[str, ...] | None = None

    def reaches(self, instance: str) -> bool:
        """Whether the token reaches this instance: one outside is answered as if unknown."""
        return self.instances is None or any(fnmatch.fnmatchcase(instance, p) for p in self.instances)

    def sees(self, name: str) -> bool:
        """Whether the token reaches this service: one outside is answered as if not allowlisted."""
        return self.services is None or name in self.services

    def may(self, verb: UnitVerb) -> bool:
        return self.role.may_act() and verb in self.actions


def scoped_actor(
    name: str,
    role: Role,
    address: str | None,
    enabled: Iterable[UnitVerb],
    services: Iterable[str] | None = None,
    actions: Iterable[str] | None = None,
    instances: Iterable[str] | None = None,
) -> Actor:
    """The caller a token makes: its services (all by default) and its actions (for an operator,
    all the server offers by default; for a viewer, none whatever the token says)."""
    offered = frozenset(enabled)
    granted = offered if actions is None else frozenset(UnitVerb(a) for a in actions) & offered
    return Actor(
        name=name,
        role=role,
        address=address,
        services=None if services is None else frozenset(services),
        actions=granted if role.may_act() else frozenset(),
        instances=None if instances is None else tuple(instances),
    )
