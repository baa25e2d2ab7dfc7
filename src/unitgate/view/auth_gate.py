"""ASGI: answer 401 to an HTTP request without a valid token, before GraphQL sees it."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from unitgate.services.policy.tokens import Authenticator
from unitgate.view.auth import UNAUTHENTICATED, authenticate, client_address


class AuthGate:
    """Puts the authenticated Actor in `scope["state"]["actor"]` for the view, or answers 401.

    The GraphiQL page itself (a browser GET naming no operation) holds nothing and needs no token.
    """

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, on_admitted: Callable[[], None] = lambda: None
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        # Told of each authenticated request as it arrives: status reads begin their round trip
        # to systemd then, while the request is still being read and checked.
        self.on_admitted = on_admitted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            if not is_ide_page(request):
                actor = authenticate(
                    self.authenticator, request.headers.get("authorization"), client_address(request)
                )
                if actor is None:
                    await unauthorized()(scope, receive, send)
                    return
                scope.setdefault("state", {})["actor"] = actor
                self.on_admitted()
        await self.app(scope, receive, send)


# What makes a GET an operation rather than the page: any of these runs a document (a trusted
# one by its hash included), so a request carrying one needs a token whatever it accepts.
OPERATION_PARAMS = frozenset({"query", "documentId", "extensions", "variables", "operationName"})


def is_ide_page(request: Request) -> bool:
    return (
        request.method == "GET"
        and "text/html" in request.headers.get("accept", "")
        and OPERATION_PARAMS.isdisjoint(request.query_params.keys())
    )


def unauthorized() -> JSONResponse:
    body = {"errors": [{"message": UNAUTHENTICATED, "extensions": {"code": "UNAUTHENTICATED"}}]}
    # Connection: close, so that no byte of the body is read: kept alive, uvicorn would drain it.
    headers = {"WWW-Authenticate": 'Bearer realm="unitgate"', "Connection": "close"}
    return JSONResponse(body, status_code=401, headers=headers)
