"""ASGI: the client's real address behind a proxy unitgate trusts (`trusted_proxies`), taken from
X-Forwarded-For; from anyone else that header means nothing. Everything after it (the audit, the
websocket admission, the rate limits, the log) reads the address from the scope."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from unitgate.config.network import TrustedProxies


class ForwardedFor:
    """Puts the real client address into the scope (and https for what the proxy got over TLS)."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
            client = self.trusted.client(peer, forwarded)
            if client is not peer:
                scope["client"] = client
                proto = [value for name, value in scope["headers"] if name == b"x-forwarded-proto"]
                if proto == [b"https"]:
                    scope["scheme"] = "wss" if scope["type"] == "websocket" else "https"
        await self.app(scope, receive, send)
