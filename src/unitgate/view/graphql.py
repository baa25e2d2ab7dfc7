"""strawberry's ASGI view for /graphql: context, websocket auth, media types, GraphiQL offline."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry import Schema
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from unitgate.resolvers import Context
from unitgate.services.facade import Facade
from unitgate.services.policy.tokens import Authenticator
from unitgate.view.auth import UNAUTHENTICATED, authenticate, authorization_param, client_address
from unitgate.view.graphiql_assets import CDN, offline_page, session_only
from unitgate.view.json_guard import decode_guarded
from unitgate.view.media import GRAPHQL_RESPONSE_JSON, is_request_error, negotiate_media_type
from unitgate.view.page_headers import inline_sources, page_headers, page_policy
from unitgate.view.trusted_documents import TrustedDocuments
from unitgate.view.ws_admission import WebSocketAdmission
from unitgate.view.ws_protocols import GraphQLTransportWSHandler, GraphQLWSHandler


class UnitgateGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = GraphQLTransportWSHandler
    graphql_ws_handler_class = GraphQLWSHandler

    def __init__(
        self,
        schema: Schema,
        control: Facade,
        authenticator: Authenticator,
        *,
        allowed_origins: tuple[str, ...] = (),
        max_subscriptions_per_connection: int = 20,
        connection_init_timeout: float = 10.0,
        offline_ide: bool = False,
        admission: WebSocketAdmission | None = None,
        trusted: TrustedDocuments | None = None,
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
        self.admission = admission
        self.trusted = trusted or TrustedDocuments({})
        # GraphiQL's scripts and styles from unitgate itself, for browsers with no CDN.
        page = session_only(self.graphql_ide_html)
        self._ide_html = offline_page(page) if offline_ide else page
        cdn = None if offline_ide else CDN.rstrip("/")
        scripts, styles = inline_sources(self._ide_html, cdn)
        self._ide_policy = (scripts, styles, f" {cdn}" if cdn else "")

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        policy = page_policy(request.headers.get("host", ""), *self._ide_policy)
        return HTMLResponse(self._ide_html, headers=page_headers(policy))

    def encode_json(self, data: object) -> str | bytes:
        # A result shared by many callers (a status event, a status query) is serialized once.
        shared = getattr(self.schema, "shared", None)
        return shared.encode(data) if shared is not None else super().encode_json(data)

    def decode_json(self, data: str | bytes) -> object:
        return decode_guarded(super().decode_json, data)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        # Over HTTP the AuthGate has put the caller in the scope; a websocket names it at init.
        actor = request.scope.get("state", {}).get("actor") if isinstance(request, Request) else None
        return Context(
            control=self.control, actor=actor, address=client_address(request), connection=id(request.scope)
        )

    async def on_ws_connect(self, context: Context) -> None:
        authorization = authorization_param(context.connection_params)
        actor = authenticate(self.authenticator, authorization, context.address)
        if actor is None:
            raise ConnectionRejectionError({"message": UNAUTHENTICATED})
        context.actor = actor
        context.connection_params = None  # the token is not kept for the connection's life
        if self.admission is not None:
            self.admission.authenticated(context.connection)

    # GraphQL over HTTP: application/graphql-response+json when the client prefers it, with 400
    # and no `data` for requests that never reached execution; application/json stays as it was.
    # strawberry hands process_result no sub-response, so the negotiated one waits in the
    # request's state between the three steps.
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
