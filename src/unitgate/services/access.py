"""Who is asking: roles and what each may do."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    VIEWER = "viewer"  # queries and subscriptions
    OPERATOR = "operator"  # and restarts

    def may_restart(self) -> bool:
        return self is Role.OPERATOR


@dataclass(frozen=True, slots=True)
class Actor:
    """An authenticated caller as the audit log names it: never the token itself."""

    name: str
    role: Role
    address: str | None = None
