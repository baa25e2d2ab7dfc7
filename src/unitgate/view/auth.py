"""Who is asking, from what a transport carries: an HTTP Authorization header or a connection_init."""

from __future__ import annotations

from starlette.requests import Request
from starlette.websockets import WebSocket

from unitgate.services.policy.access import Actor
from unitgate.services.policy.tokens import Authenticator

UNAUTHENTICATED = "missing or invalid bearer token"
_MAX_HEADER = 1024


def bearer_token(authorization: object) -> str | None:
    """The token of an `Authorization: Bearer <token>` value, or None for anything else."""
    if not isinstance(authorization, str) or len(authorization) > _MAX_HEADER:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token or not token.isascii() or not token.isprintable():
        return None
    return token


def authorization_param(params: object) -> object:
    """The Authorization value of a connection_init payload. Clients send connectionParams as
    their users write them: either spelling, at the top or (as some do) under "headers"."""
    for holder in (params, params.get("headers") if isinstance(params, dict) else None):
        if isinstance(holder, dict):
            for key in ("Authorization", "authorization"):
                if key in holder:
                    return holder[key]
    return None


def authenticate(authenticator: Authenticator, authorization: object, address: str | None) -> Actor | None:
    """The caller an Authorization value names; anyone is the anonymous operator when the
    authenticator is open (--insecure-no-auth)."""
    if authenticator.open:
        return authenticator.anonymous(address)
    token = bearer_token(authorization)
    return None if token is None else authenticator.authenticate(token, address)


def client_address(connection: Request | WebSocket) -> str | None:
    return connection.client.host if connection.client else None
