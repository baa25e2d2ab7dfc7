"""The Starlette application: /graphql (HTTP, websockets, GraphiQL) and /healthz."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as ASGIScope

from unitgate import graphiql_assets
from unitgate.auth import Authenticator
from unitgate.config import Settings
from unitgate.graphql_view import AuthGate, UnitgateGraphQL
from unitgate.schema.limits import DocumentLimits
from unitgate.schema.root import build_schema
from unitgate.services.audit import AuditLog
from unitgate.services.control import ServiceControl
from unitgate.services.journal import Journal
from unitgate.services.runner import ProcessRunner
from unitgate.services.systemctl import Scope, Systemctl, systemctl_environment
from unitgate.services.systemd_bus import SystemdSignals, bus_address

log = logging.getLogger(__name__)


def build_control(settings: Settings, environ: Mapping[str, str] | None = None) -> ServiceControl:
    """Wire the services layer from settings; `environ` is where the user manager is found."""
    scope = Scope(settings.scope)
    environ = os.environ if environ is None else environ
    allowlist = settings.build_allowlist()
    runner = ProcessRunner(systemctl_environment(scope, environ))
    signals = (
        SystemdSignals(scope, bus_address(scope, environ), allowlist.names) if settings.dbus_events else None
    )
    return ServiceControl(
        Systemctl(allowlist, runner, settings.systemctl_options()),
        timings=settings.watcher_timings(),
        restart_limit=settings.restart_rate_limit(),
        audit=AuditLog(Path(settings.audit_file) if settings.audit_file else None),
        journal=Journal(allowlist, runner, settings.journal_options()),
        signals=signals,
    )


class WebSocketShortcut:
    """Hands /graphql websockets straight to the GraphQL view. Every layer between them would
    hold its frame and wrappers for the whole life of the connection, and a thousand idle
    dashboards make that add up (bench/ measures memory per subscriber)."""

    def __init__(self, app: ASGIApp, graphql: ASGIApp) -> None:
        self.app = app
        self.graphql = graphql

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/graphql":
            await self.graphql(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(settings: Settings, control: ServiceControl | None = None) -> Starlette:
    control = control if control is not None else build_control(settings)
    # No tokens means no authentication: only the CLI's loopback-checked --insecure-no-auth gets here.
    authenticator = Authenticator(settings.tokens) if not settings.insecure_no_auth else None
    schema = build_schema(
        DocumentLimits(
            max_depth=settings.max_query_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
        )
    )
    assets_dir = (
        Path(settings.graphiql_assets_dir) if settings.graphiql_assets_dir else graphiql_assets.DEFAULT_DIR
    )
    absent = graphiql_assets.missing(
        assets_dir, graphiql_assets.page_assets(graphiql_assets.strawberry_page())
    )
    if absent:
        log.warning(
            "GraphiQL's files are not in %s (%d missing), so the page loads them from a CDN; "
            "`unitgate graphiql-assets` fetches them",
            assets_dir,
            len(absent),
        )
    graphql = UnitgateGraphQL(
        schema,
        control,
        authenticator,
        allowed_origins=settings.allowed_origins,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        max_websocket_connections=settings.max_websocket_connections,
        connection_init_timeout=settings.connection_init_timeout,
        offline_ide=not absent,
    )

    async def healthz(request: Request) -> JSONResponse:
        health = await control.health()
        body = {
            "status": "ok" if health.ok else "unavailable",
            "detail": health.detail,
            "watcher": health.watcher,
            "watcherDetail": health.watcher_detail,
        }
        return JSONResponse(body, status_code=200 if health.ok else 503)

    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse("/graphql")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Everything loaded so far lives as long as the process: keep the collector from
        # walking it again and again (a full collection shows up in the latency tail).
        gc.freeze()
        try:
            yield
        finally:
            await control.aclose()

    middleware = [Middleware(WebSocketShortcut, graphql=graphql)]
    if settings.allowed_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.allowed_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "Accept"],
                max_age=600,
            )
        )
    app = Starlette(
        routes=[
            Route("/graphql", AuthGate(graphql, authenticator, settings.max_body_bytes)),
            Route("/healthz", healthz, methods=["GET"]),
            Mount(
                graphiql_assets.URL_PREFIX.rstrip("/"),
                StaticFiles(directory=assets_dir, check_dir=False),
                name="graphiql-assets",
            ),
            Route("/", root, methods=["GET"]),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.control = control
    app.state.graphql = graphql
    return app
