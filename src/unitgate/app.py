"""The Starlette application: /graphql (HTTP, websockets, GraphiQL) and /healthz."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from unitgate.config import Settings
from unitgate.resolvers import Context
from unitgate.schema.root import schema
from unitgate.services.control import ServiceControl
from unitgate.services.runner import ProcessRunner
from unitgate.services.systemctl import Scope, Systemctl, systemctl_environment


def build_control(settings: Settings, environ: Mapping[str, str] | None = None) -> ServiceControl:
    """Wire the services layer from settings; `environ` is where the user manager is found."""
    options = settings.systemctl_options()
    runner = ProcessRunner(systemctl_environment(Scope(settings.scope), environ))
    return ServiceControl(Systemctl(settings.build_allowlist(), runner, options), settings.poll_interval)


class UnitgateGraphQL(GraphQL[Context, None]):
    def __init__(self, control: ServiceControl) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            keep_alive=True,
            keep_alive_interval=15,
            connection_init_wait_timeout=timedelta(seconds=10),
        )
        self.control = control

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        return Context(control=self.control)


def create_app(settings: Settings, control: ServiceControl | None = None) -> Starlette:
    control = control if control is not None else build_control(settings)
    graphql = UnitgateGraphQL(control)

    async def healthz(request: Request) -> JSONResponse:
        health = await control.health()
        body = {"status": "ok" if health.ok else "unavailable", "detail": health.detail}
        return JSONResponse(body, status_code=200 if health.ok else 503)

    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse("/graphql")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await control.aclose()

    app = Starlette(
        routes=[
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/", root, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.control = control
    return app
