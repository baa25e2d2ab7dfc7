"""API tokens: making them, hashing them for the config, and checking a presented one."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Protocol

from unitgate.services.policy.access import Actor, Role

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


def new_token() -> str:
    """A fresh random token; the prefix lets secret scanners recognise a leaked one."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def config_snippet(name: str, role: Role, token: str) -> str:
    return f'[[tokens]]\nname = "{name}"\nrole = "{role}"\nsha256 = "{token_sha256(token)}"\n'


class Authenticator:
    """Checks a presented token against the configured ones, in constant time."""

    def __init__(self, tokens: Iterable[TokenEntry]) -> None:
        self._tokens = [(bytes.fromhex(token.sha256), token.name, Role(token.role)) for token in tokens]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def authenticate(self, token: str, address: str | None) -> Actor | None:
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found: Actor | None = None
        # Compare against every token, matched or not, so timing tells nothing about which.
        for digest, name, role in self._tokens:
            if hmac.compare_digest(presented, digest):
                found = Actor(name=name, role=role, address=address)
        return found
