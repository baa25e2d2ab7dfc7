"""The legacy graphql-ws protocol, with the connection_init timeout strawberry gives only the new one."""

from __future__ import annotations

import asyncio
import contextlib

from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from unitgate.resolvers import Context


class GraphQLWSHandlerWithInitTimeout(BaseGraphQLWSHandler[Context, None]):
    """Closes an idle socket that never says hello, as graphql-transport-ws would close it."""

    async def handle(self) -> None:
        timer = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")
