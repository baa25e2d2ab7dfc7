"""Who is asking: roles and what each may do."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    VIEWER = "viewer"  # queries and status subscriptions
    OPERATOR = "operator"  # and actions (restart, reload) and logs

    def may_act(self) -> bool:
        """Whether this role may restart or reload a service."""
        return self is Role.OPERATOR

    def may_read_logs(self) -> bool:
        """Logs can hold secrets: the same bar as acting on a service."""
        return self is Role.OPERATOR


@dataclass(frozen=True, slots=True)
class Actor:
    """An authenticated caller as the audit log names it: never the token itself."""

    name: str
    role: Role
    address: str | None = None
