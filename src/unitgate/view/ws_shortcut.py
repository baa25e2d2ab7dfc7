"""ASGI: /graphql websockets go straight to the GraphQL view, past the rest of the stack."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class WebSocketShortcut:
    """Every layer between the server and the view would hold its frame and wrappers for the
    whole life of a connection, and a thousand idle dashboards make that add up (bench/
    measures memory per subscriber)."""

    def __init__(self, app: ASGIApp, graphql: ASGIApp) -> None:
        self.app = app
        self.graphql = graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/graphql":
            await self.graphql(scope, receive, send)
        else:
            await self.app(scope, receive, send)
