"""ASGI: a request must name one of unitgate's own host names (`allowed_hosts`) in its Host
header, or it gets 421, in every mode: a page on a name that an attacker's DNS points at
127.0.0.1 (DNS rebinding) otherwise reaches a server that trusts its loopback address."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from unitgate.config.network import AllowedHosts

REFUSAL = b"unitgate answers only for the host names in its allowed_hosts setting\n"


class HostCheck:
    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allowed.allows(scope["headers"]):
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(REFUSAL))]
        if scope["type"] == "http":
            # Closed after the answer: a body it announced is never read.
            headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": 421, "headers": headers})
            await send({"type": "http.response.body", "body": REFUSAL})
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 421, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": REFUSAL})
        else:
            await send({"type": "websocket.close", "code": 1008})
