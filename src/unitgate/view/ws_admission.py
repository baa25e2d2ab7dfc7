"""ASGI: which websockets are let in. A socket that has not finished connection_init is pending;
pending sockets are capped per client address and in all (memory and descriptors), and when a cap
is reached the oldest pending socket makes room for the newcomer, so silent sockets can never lock
out a dashboard that authenticates promptly, from its own address or from a proxy's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# graphql-transport-ws's "connection initialisation timeout": the socket did not authenticate
# before it was needed for a newer one. Clients retry it, as they retry their own timeout.
EVICTED = 4408
EVICTED_REASON = "No connection_init before newer sockets needed the room"


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    connections: int = 2000  # every open websocket
    pending: int = 256  # not yet through connection_init, in all
    pending_per_address: int = 128  # ... from one client address


class WebSocketAdmission:
    """The counts, and the decisions; keyed by connection (the ASGI scope's id while it lives).
    Dicts keep insertion order, which is age order: the first key is the oldest."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.open = 0
        self._pending: dict[int, str] = {}  # connection -> its address, until authenticated
        self._by_address: dict[str, dict[int, Callable[[], None]]] = {}  # address -> evictions
        self._closing: set[int] = set()  # evicted, still open for a moment

    @property
    def pending(self) -> int:
        return len(self._pending)

    def admit(self, key: int, address: str, evict: Callable[[], None]) -> bool:
        """Let a new socket in, making room by evicting old pending ones; refused only when every
        open socket has authenticated and there are `connections` of them."""
        if self.open - len(self._closing) >= self.limits.connections and not self._pending:
            return False
        own = self._by_address.get(address)
        if own is not None and len(own) >= self.limits.pending_per_address:
            self._evict(next(iter(own)))
        while self._pending and (
            len(self._pending) >= self.limits.pending
            or self.open - len(self._closing) >= self.limits.connections
        ):
            # From the address that holds the most: a flood from one address evicts its own.
            crowded = max(self._by_address.values(), key=len)
            self._evict(next(iter(crowded)))
        self.open += 1
        self._pending[key] = address
        self._by_address.setdefault(address, {})[key] = evict
        return True

    def _evict(self, key: int) -> None:
        evict = self._forget(key)
        if evict is not None:
            self._closing.add(key)
            evict()

    def _forget(self, key: int) -> Callable[[], None] | None:
        address = self._pending.pop(key, None)
        if address is None:
            return None
        own = self._by_address[address]
        evict = own.pop(key)
        if not own:
            del self._by_address[address]
        return evict

    def authenticated(self, key: int) -> None:
        """connection_init carried a valid token: the socket no longer counts as pending."""
        self._forget(key)

    def is_pending(self, key: int) -> bool:
        return key in self._pending

    def leave(self, key: int) -> None:
        self._forget(key)
        self._closing.discard(key)
        self.open -= 1


class WebSocketGate:
    """Refuses a websocket the admission will not take, before the handshake (HTTP 403), and
    closes an evicted one (EVICTED): its app is told the client left, and what it sends after
    that is dropped."""

    def __init__(self, app: ASGIApp, admission: WebSocketAdmission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        key = id(scope)
        address = scope["client"][0] if scope.get("client") else ""
        evicted: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def evict() -> None:
            evicted.set_result(None)

        if not self.admission.admit(key, address, evict):
            await send({"type": "websocket.close", "code": 1013, "reason": "Too many connections"})
            return
        admission = self.admission
        closed: list[bool] = []

        async def receive_until_evicted() -> Message:
            if admission.is_pending(key):
                message = asyncio.ensure_future(receive())
                await asyncio.wait((message, evicted), return_when=asyncio.FIRST_COMPLETED)
                if message.done():
                    return message.result()
                message.cancel()
            elif not evicted.done():
                return await receive()
            if not closed:
                closed.append(True)
                await send({"type": "websocket.close", "code": EVICTED, "reason": EVICTED_REASON})
            return {"type": "websocket.disconnect", "code": EVICTED}

        async def send_unless_evicted(message: Message) -> None:
            if not evicted.done():
                await send(message)

        try:
            await self.app(scope, receive_until_evicted, send_unless_evicted)
        finally:
            self.admission.leave(key)
