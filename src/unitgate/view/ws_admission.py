"""ASGI: which websockets are let in. Sockets that have not finished connection_init are few and
short-lived, per client address and in all, so a flood of silent sockets never locks out a
dashboard with a token; every socket counts against the overall cap."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    connections: int = 2000  # every open websocket
    pending: int = 64  # not yet through connection_init, in all
    pending_per_address: int = 8  # ... from one client address


class WebSocketAdmission:
    """The counts, and the decisions; keyed by connection (the ASGI scope's id while it lives)."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.open = 0
        self._pending: dict[int, str] = {}  # connection -> its address, until authenticated
        self._pending_by_address: Counter[str] = Counter()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def admit(self, key: int, address: str) -> bool:
        if (
            self.open >= self.limits.connections
            or len(self._pending) >= self.limits.pending
            or self._pending_by_address[address] >= self.limits.pending_per_address
        ):
            return False
        self.open += 1
        self._pending[key] = address
        self._pending_by_address[address] += 1
        return True

    def authenticated(self, key: int) -> None:
        """connection_init carried a valid token: the socket no longer counts as pending."""
        address = self._pending.pop(key, None)
        if address is not None:
            self._pending_by_address[address] -= 1
            if not self._pending_by_address[address]:
                del self._pending_by_address[address]

    def leave(self, key: int) -> None:
        self.authenticated(key)
        self.open -= 1


class WebSocketGate:
    """Refuses a websocket the admission will not take, before the handshake (HTTP 403)."""

    def __init__(self, app: ASGIApp, admission: WebSocketAdmission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        key = id(scope)
        address = scope["client"][0] if scope.get("client") else ""
        if not self.admission.admit(key, address):
            await send({"type": "websocket.close", "code": 1013, "reason": "Too many connections"})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave(key)
