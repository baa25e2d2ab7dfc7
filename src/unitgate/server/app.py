"""The Starlette application: /graphql (HTTP, websockets, GraphiQL) and /healthz."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from unitgate.compose import build_control as build_control
from unitgate.config.network import TrustedProxies
from unitgate.config.settings import Settings
from unitgate.schema.limits import DocumentLimits
from unitgate.schema.root import build_schema
from unitgate.server import log_hygiene
from unitgate.services.facade import Facade
from unitgate.services.host import HostFacade
from unitgate.services.policy.control import ServiceControl
from unitgate.services.policy.tokens import Authenticator
from unitgate.view import graphiql_assets
from unitgate.view.auth import authenticate
from unitgate.view.auth_gate import AuthGate
from unitgate.view.body_limit import BodilessElsewhere, BodyLimit
from unitgate.view.forwarded import ForwardedFor
from unitgate.view.graphql import UnitgateGraphQL
from unitgate.view.host_check import HostCheck
from unitgate.view.metrics import Metrics, metrics_endpoint
from unitgate.view.page_headers import StrictHeaders, dashboard_headers
from unitgate.view.trusted_documents import TrustedDocuments, TrustedDocumentsGate, load_manifest
from unitgate.view.ws_admission import AdmissionLimits, WebSocketAdmission, WebSocketGate
from unitgate.view.ws_shortcut import WebSocketShortcut

log = logging.getLogger(__name__)


DASHBOARD = Path(__file__).parents[1] / "dashboard"


def takes_body(scope: Mapping[str, object]) -> bool:
    """The one route that reads a request body: a GraphQL POST."""
    return scope["method"] == "POST" and scope["path"] == "/graphql"


def create_app(settings: Settings, control: ServiceControl | Facade | None = None) -> Starlette:
    """The app over this host's services (a ServiceControl, built from settings by default), or
    over any other facade (a hub's fleet)."""
    engine = control if control is not None else build_control(settings)
    facade: Facade = HostFacade(engine) if isinstance(engine, ServiceControl) else engine
    # Open only with the CLI's loopback-checked --insecure-no-auth: everyone the anonymous operator.
    authenticator = Authenticator(settings.tokens, settings.enabled_actions(), open=settings.insecure_no_auth)
    metrics = Metrics(settings.instance_name)
    schema = build_schema(
        DocumentLimits(
            max_depth=settings.max_query_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
            max_fields=settings.max_query_fields,
            max_log_lines=settings.max_log_lines_per_request,
        ),
        observe=metrics.operation_finished,
    )
    assets_dir = (
        Path(settings.graphiql_assets_dir) if settings.graphiql_assets_dir else graphiql_assets.DEFAULT_DIR
    )
    absent = graphiql_assets.missing(assets_dir, graphiql_assets.vendored_assets())
    if absent:
        log.warning(
            "GraphiQL's files are not in %s (%d missing), so the page loads them from a CDN; "
            "`unitgate graphiql-assets` fetches them",
            assets_dir,
            len(absent),
        )
    manifest = load_manifest(Path(settings.trusted_documents)) if settings.trusted_documents else {}
    trusted = TrustedDocuments(manifest, only=settings.trusted_documents_only)
    admission = WebSocketAdmission(
        AdmissionLimits(
            connections=settings.max_websocket_connections,
            pending=settings.max_pending_websockets,
            pending_per_address=settings.max_pending_websockets_per_address,
        )
    )
    graphql = UnitgateGraphQL(
        schema,
        facade,
        authenticator,
        allowed_origins=settings.allowed_origins,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        connection_init_timeout=settings.connection_init_timeout,
        admission=admission,
        trusted=trusted,
        offline_ide=not absent,
    )

    async def healthz(request: Request) -> JSONResponse:
        health = await facade.health()
        body: dict[str, str] = {"status": "ok" if health.ok else "unavailable"}
        # The systemd version is for callers with a token; how the watcher listens (the bus
        # socket's path) is an internal, for operators who reach every service.
        actor = authenticate(authenticator, request.headers.get("authorization"), None)
        if actor is not None:
            body["detail"] = health.detail
            if actor.role.may_act() and actor.services is None:
                body |= {"watcher": health.watcher, "watcherDetail": health.watcher_detail}
        return JSONResponse(body, status_code=200 if health.ok else 503)

    async def root(request: Request) -> FileResponse:
        return FileResponse(
            DASHBOARD / "index.html", headers=dashboard_headers(request.headers.get("host", ""))
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Everything loaded so far lives as long as the process: keep the collector from
        # walking it again and again (a full collection shows up in the latency tail).
        gc.freeze()
        # After uvicorn has configured its loggers: strip query strings, rate-limit repeats.
        log_hygiene.install()
        await facade.start()
        try:
            yield
        finally:
            await facade.aclose()

    websockets = WebSocketGate(graphql, admission)
    middleware = [
        # Outermost first: a request for another host name is refused before anything else.
        Middleware(HostCheck, allowed=settings.host_names()),
        Middleware(StrictHeaders),
        Middleware(BodilessElsewhere, takes_body=takes_body),
        Middleware(WebSocketShortcut, graphql=websockets),
    ]
    proxies = TrustedProxies.parse(settings.trusted_proxies)
    if proxies:
        middleware.insert(1, Middleware(ForwardedFor, trusted=proxies))
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
            Route(
                "/graphql",
                AuthGate(
                    BodyLimit(
                        TrustedDocumentsGate(graphql, trusted, settings.max_body_bytes),
                        settings.max_body_bytes,
                        settings.body_read_timeout,
                    ),
                    authenticator,
                    facade.request_arrived,
                ),
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route(
                "/metrics",
                metrics_endpoint(metrics, facade, authenticator, settings.metrics_public, admission),
                methods=["GET"],
            ),
            Mount(
                graphiql_assets.URL_PREFIX.rstrip("/"),
                StaticFiles(directory=assets_dir, check_dir=False),
                name="graphiql-assets",
            ),
            Route("/", root, methods=["GET"]),
            # The same page by its file name, with the same headers (not as a bare static file).
            Route("/dashboard/index.html", root, methods=["GET"]),
            Mount("/dashboard", StaticFiles(directory=DASHBOARD), name="dashboard"),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.control = engine
    app.state.graphql = graphql
    app.state.websockets = websockets
    return app
