"""ASGI: a cap on open websockets; one past it is refused before the handshake."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class WebSocketCap:
    def __init__(self, app: ASGIApp, max_connections: int) -> None:
        self.app = app
        self.max_connections = max_connections
        self.open = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        if self.open >= self.max_connections:
            # Closing before accepting refuses the handshake (HTTP 403) without spending more on it.
            await send({"type": "websocket.close", "code": 1013, "reason": "Too many connections"})
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
