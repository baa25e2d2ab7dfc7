"""API tokens: making them, hashing them for the config, and checking a presented one."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from typing import Protocol

from unitgate.services.policy.access import Actor, Role, scoped_actor
from unitgate.services.systemd.units import DEFAULT_ACTIONS, UnitVerb

TOKEN_PREFIX = "ugt_"  # noqa: S105 (a prefix, not a secret)
_TOKEN_BYTES = 32  # 256 bits


class TokenEntry(Protocol):
    """A token as the config keeps it (config.TokenConfig): never the token itself."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def services(self) -> Sequence[str] | None: ...
    @property
    def actions(self) -> Sequence[str] | None: ...
    @property
    def instances(self) -> Sequence[str] | None: ...


def new_token() -> str:
    """A fresh random token; the prefix lets secret scanners recognise a leaked one."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def config_snippet(
    name: str,
    role: Role,
    token: str,
    services: Sequence[str] | None = None,
    actions: Sequence[str] | None = None,
    instances: Sequence[str] | None = None,
) -> str:
    """The [[tokens]] entry for the config file: the token's hash, never the token."""
    lines = ["[[tokens]]", f'name = "{name}"', f'role = "{role}"', f'sha256 = "{token_sha256(token)}"']
    if services is not None:
        lines.append(f"services = {json.dumps(list(services))}")
    if actions is not None:
        lines.append(f"actions = {json.dumps(list(actions))}")
    if instances is not None:
        lines.append(f"instances = {json.dumps(list(instances))}")
    return "\n".join(lines) + "\n"


class Authenticator:
    """Checks a presented token against the configured ones, in constant time, and makes the
    caller it names with its scope. `open` (--insecure-no-auth): everyone is the anonymous
    operator, with every action the server offers."""

    def __init__(
        self,
        tokens: Iterable[TokenEntry],
        enabled: Iterable[UnitVerb] = DEFAULT_ACTIONS,
        *,
        open: bool = False,
    ) -> None:
        self.enabled = frozenset(enabled)
        self.open = open
        # Each token's caller, scope and all, made once: a request only adds its address.
        self._tokens = [
            (
                bytes.fromhex(token.sha256),
                scoped_actor(
                    token.name,
                    Role(token.role),
                    None,
                    self.enabled,
                    token.services,
                    token.actions,
                    token.instances,
                ),
            )
            for token in tokens
        ]

    def anonymous(self, address: str | None) -> Actor:
        return scoped_actor("anonymous", Role.OPERATOR, address, self.enabled)

    def authenticate(self, token: str, address: str | None) -> Actor | None:
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found: Actor | None = None
        # Compare against every token, matched or not, so timing tells nothing about which.
        for digest, actor in self._tokens:
            if hmac.compare_digest(presented, digest):
                found = actor
        return None if found is None else dataclasses.replace(found, address=address)
