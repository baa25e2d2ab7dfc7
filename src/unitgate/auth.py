"""API tokens: making them, hashing them for the config, and checking a presented one."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from unitgate.config import TokenConfig
from unitgate.services.access import Actor, Role

TOKEN_PREFIX = "ugt_"  # noqa: S105 (a prefix, not a secret)
_TOKEN_BYTES = 32  # 256 bits
_MAX_HEADER = 1024


def new_token() -> str:
    """A fresh random token; the prefix lets secret scanners recognise a leaked one."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def config_snippet(name: str, role: Role, token: str) -> str:
    return f'[[tokens]]\nname = "{name}"\nrole = "{role}"\nsha256 = "{token_sha256(token)}"\n'


def bearer_token(authorization: object) -> str | None:
    """The token of an `Authorization: Bearer <token>` value, or None for anything else."""
    if not isinstance(authorization, str) or len(authorization) > _MAX_HEADER:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token or not token.isascii() or not token.isprintable():
        return None
    return token


class Authenticator:
    def __init__(self, tokens: Iterable[TokenConfig]) -> None:
        self._tokens = [(bytes.fromhex(token.sha256), token.name, Role(token.role)) for token in tokens]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def authenticate(self, authorization: object, address: str | None) -> Actor | None:
        token = bearer_token(authorization)
        if token is None:
            return None
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found: Actor | None = None
        # Compare against every token, matched or not, so timing tells nothing about which.
        for digest, name, role in self._tokens:
            if hmac.compare_digest(presented, digest):
                found = Actor(name=name, role=role, address=address)
        return found
