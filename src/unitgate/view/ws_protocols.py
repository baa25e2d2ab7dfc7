"""Both websocket protocols, hardened: every message's shape is checked before strawberry's
handlers index into it (a malformed one closes the socket with 4400, no traceback); the legacy
protocol gets the connection_init timeout and the single connection_init strawberry gives only the
new one; and a subscription past the cap closes the socket with 4429 in both."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ErrorMessage as TransportError
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage as LegacyError

from unitgate.resolvers import Context
from unitgate.view.trusted_documents import Refusal, TrustedDocuments

INVALID = 4400
TOO_MANY = 4429  # graphql-transport-ws's close code for a repeated connection_init
SUBSCRIPTION_LIMIT = "Subscription limit reached"

# The message types whose fields each protocol's handler reads, and the operation they carry.
_TRANSPORT_WITH_ID = frozenset({"subscribe", "complete"})
_LEGACY_WITH_ID = frozenset({"start", "stop"})


def _optional(payload: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> bool:
    return payload.get(key) is None or isinstance(payload[key], kind)


def operation_problem(payload: object) -> str | None:
    """Why a subscribe/start payload cannot be run, or None."""
    if not isinstance(payload, dict):
        return "payload must be an object"
    if not isinstance(payload.get("query"), str):
        return "payload.query must be a string"
    if not _optional(payload, "variables", dict) or not _optional(payload, "extensions", dict):
        return "payload.variables and payload.extensions must be objects"
    if not _optional(payload, "operationName", str):
        return "payload.operationName must be a string"
    return None


def message_problem(message: object, *, legacy: bool) -> str | None:
    """Why a message of graphql-transport-ws (or, `legacy`, graphql-ws) is malformed, or None."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message must be an object with a string type"
    kind = message["type"]
    if kind in (_LEGACY_WITH_ID if legacy else _TRANSPORT_WITH_ID):
        operation_id = message.get("id")
        if not isinstance(operation_id, str) or not operation_id or len(operation_id) > 256:
            return f"a {kind} message needs an id: a string of 1 to 256 characters"
        if kind in ("subscribe", "start"):
            return operation_problem(message.get("payload"))
    if kind in ("connection_init", "ping", "pong") and not _optional(message, "payload", dict):
        return f"a {kind} payload must be an object"
    return None


def with_document(message: Any, trusted: TrustedDocuments | None) -> Any:
    """A subscribe (or start) message with the document its payload names, or the Refusal; any
    other message as it is (its shape is checked next)."""
    if trusted is None or not isinstance(message, dict) or message.get("type") not in ("subscribe", "start"):
        return message
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return message
    resolved = trusted.resolve(payload)
    return resolved if isinstance(resolved, Refusal) else {**message, "payload": resolved}


class GraphQLTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_message(self, message: Any) -> None:
        resolved = with_document(message, getattr(self.view, "trusted", None))
        if isinstance(resolved, Refusal):
            error = TransportError(type="error", id=str(message.get("id")), payload=[resolved.error()])
            await self.send_message(error)
            return
        message = resolved
        problem = message_problem(message, legacy=False)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        if message["type"] == "subscribe" and at_cap(self.operations, self.max_subscriptions_per_connection):
            await self.websocket.close(code=TOO_MANY, reason=SUBSCRIPTION_LIMIT)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        # Cancelled by now; kept, the task would hold its CancelledError, traceback and frames
        # for the whole connection.
        self.connection_init_timeout_task = None


class GraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    async def handle_message(self, message: Any) -> None:
        resolved = with_document(message, getattr(self.view, "trusted", None))
        if isinstance(resolved, Refusal):
            error = LegacyError(type="error", id=str(message.get("id")), payload=resolved.error())
            await self.send_message(error)
            return
        message = resolved
        problem = message_problem(message, legacy=True)
        if problem is not None:
            await self._close(INVALID, problem)
            return
        kind = message["type"]
        if kind == "connection_init" and self.connection_acknowledged:
            # strawberry acknowledges every one, each with a keep-alive task never cancelled.
            await self._close(TOO_MANY, "Too many initialisation requests")
            return
        if (
            kind == "start"
            and message["id"] not in self.tasks
            and at_cap(self.tasks, self.max_subscriptions_per_connection)
        ):
            await self._close(TOO_MANY, SUBSCRIPTION_LIMIT)
            return
        await super().handle_message(message)

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

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
            await self._close(4408, "Connection initialisation timeout")


def at_cap(operations: Mapping[str, object], cap: int | None) -> bool:
    """Whether a connection running `operations` may start no more."""
    return cap is not None and len(operations) >= cap
