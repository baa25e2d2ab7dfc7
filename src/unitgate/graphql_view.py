"""strawberry's ASGI view, hardened: who is asking, how many sockets, how long before init."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry import Schema
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult

from unitgate.auth import Authenticator
from unitgate.graphiql_assets import offline_page
from unitgate.resolvers import Context
from unitgate.services.access import Actor, Role
from unitgate.services.control import ServiceControl

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"

# Used when the server runs with --insecure-no-auth (loopback only) or as the demo.
ANONYMOUS_ROLE = Role.OPERATOR
_UNAUTHENTICATED = "missing or invalid bearer token"


def client_address(connection: Request | WebSocket) -> str | None:
    return connection.client.host if connection.client else None


class GraphQLWSHandlerWithInitTimeout(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol has no connection_init timeout in strawberry: add one, so
    an idle socket that never says hello is closed as graphql-transport-ws would close it."""

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


class UnitgateGraphQL(GraphQL[Context, None]):
    graphql_ws_handler_class = GraphQLWSHandlerWithInitTimeout

    def __init__(
        self,
        schema: Schema,
        control: ServiceControl,
        authenticator: Authenticator | None,
        *,
        allowed_origins: tuple[str, ...] = (),
        max_subscriptions_per_connection: int = 20,
        max_websocket_connections: int = 2000,
        connection_init_timeout: float = 10.0,
        offline_ide: bool = False,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            keep_alive=True,
            keep_alive_interval=15,
            connection_init_wait_timeout=timedelta(seconds=connection_init_timeout),
            max_subscriptions_per_connection=max_subscriptions_per_connection,
            allowed_origins=allowed_origins,
        )
        self.control = control
        self.authenticator = authenticator
        self.max_websocket_connections = max_websocket_connections
        self.open_websockets = 0
        # GraphiQL's scripts and styles from unitgate itself, for browsers with no CDN.
        self._ide_html = offline_page(self.graphql_ide_html) if offline_ide else self.graphql_ide_html

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self._ide_html)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        if self.open_websockets >= self.max_websocket_connections:
            # Closing before accepting refuses the handshake (HTTP 403) without spending more on it.
            await send({"type": "websocket.close", "code": 1013, "reason": "Too many connections"})
            return
        self.open_websockets += 1
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.open_websockets -= 1

    def decode_json(self, data: str | bytes) -> object:
        """json.loads, but a hostile body (nested past the recursion limit, or not an object at
        all) is malformed JSON to strawberry, which answers 400 or closes the socket, never 500."""
        try:
            value = super().decode_json(data)
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", "", 0) from None
        if not isinstance(value, dict | list):
            raise json.JSONDecodeError("expected a JSON object", "", 0)
        return value

    # GraphQL over HTTP: application/graphql-response+json when the client prefers it, with 400
    # and no `data` for requests that never reached execution; application/json stays as it was.
    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = negotiate_media_type(request.headers.get("accept"))
        request.state.unitgate_sub_response = sub_response
        return sub_response

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        sub_response = getattr(request.state, "unitgate_sub_response", None)
        if (
            sub_response is not None
            and sub_response.media_type == GRAPHQL_RESPONSE_JSON
            and is_request_error(result)
        ):
            response.pop("data", None)
            sub_response.status_code = 400
        return response

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        if sub_response.media_type == GRAPHQL_RESPONSE_JSON:
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
        return response

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        actor = request.scope.get("state", {}).get("actor") if isinstance(request, Request) else None
        return Context(control=self.control, actor=actor, address=client_address(request))

    async def on_ws_connect(self, context: Context) -> None:
        authorization = authorization_param(context.connection_params)
        actor = authenticate(self.authenticator, authorization, context.address)
        if actor is None:
            raise ConnectionRejectionError({"message": _UNAUTHENTICATED})
        context.actor = actor


def authorization_param(params: object) -> object:
    """The Authorization value of a connection_init payload. Clients send connectionParams as
    their users write them: either spelling, at the top or (as some do) under "headers"."""
    for holder in (params, params.get("headers") if isinstance(params, dict) else None):
        if isinstance(holder, dict):
            for key in ("Authorization", "authorization"):
                if key in holder:
                    return holder[key]
    return None


def negotiate_media_type(accept: str | None) -> str:
    """The response type for an Accept header: graphql-response+json only when asked for by
    name, at least as strongly as application/json; anything else (no header, */*) gets the
    application/json that legacy clients expect."""
    if not accept:
        return APPLICATION_JSON
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        weights[media] = max(weights.get(media, 0.0), quality)
    modern = weights.get(GRAPHQL_RESPONSE_JSON, 0.0)
    legacy = max(
        weights.get(APPLICATION_JSON, 0.0), weights.get("application/*", 0.0), weights.get("*/*", 0.0)
    )
    return GRAPHQL_RESPONSE_JSON if modern > 0 and modern >= legacy else APPLICATION_JSON


def is_request_error(result: ExecutionResult) -> bool:
    """Parse, validation and variable-coercion errors: no data, and no error tied to a field."""
    return (
        result.data is None and bool(result.errors) and all(not error.path for error in result.errors or ())
    )


def authenticate(
    authenticator: Authenticator | None, authorization: object, address: str | None
) -> Actor | None:
    if authenticator is None:
        return Actor(name="anonymous", role=ANONYMOUS_ROLE, address=address)
    return authenticator.authenticate(authorization, address)


class AuthGate:
    """Answers 401 to an HTTP request without a valid token before GraphQL sees it (the
    GraphiQL page itself, a browser GET with no query, holds nothing and needs none), and 413
    to a body larger than `max_body_bytes` before anyone holds it all in memory."""

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator | None, max_body_bytes: int = 1 << 20
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            if not _is_ide_page(request):
                actor = authenticate(
                    self.authenticator, request.headers.get("authorization"), client_address(request)
                )
                if actor is None:
                    await _unauthorized()(scope, receive, send)
                    return
                scope.setdefault("state", {})["actor"] = actor
            body = await _read_body(receive, self.max_body_bytes)
            if body is None:
                await _error(413, f"the request body is larger than {self.max_body_bytes} bytes")(
                    scope, receive, send
                )
                return
            receive = _replay(body)
        await self.app(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it grows past `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _error(status: int, message: str) -> Response:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status)


def _is_ide_page(request: Request) -> bool:
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and "text/html" in request.headers.get("accept", "")
    )


def _unauthorized() -> Response:
    body: dict[str, Any] = {
        "errors": [{"message": _UNAUTHENTICATED, "extensions": {"code": "UNAUTHENTICATED"}}]
    }
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="unitgate"'})
