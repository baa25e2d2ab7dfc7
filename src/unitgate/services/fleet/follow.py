"""The hub's side of a log follow: a subject of the agent's for this follow alone, each batch
answered (so an agent whose hub went away stops), and a follower too slow to keep up ended with
LogStreamLagged and the cursor to resume from."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from nats.aio.msg import Msg

from unitgate.services import errors
from unitgate.services.errors import UnitgateError
from unitgate.services.fleet import subjects, wire
from unitgate.services.fleet.hub import HubLink, answer_of
from unitgate.services.fleet.view import Host
from unitgate.services.policy.access import Actor
from unitgate.services.policy.audit import AuditLog
from unitgate.services.systemd.logs import MAX_LINES, LogEntry

_FOLLOW_QUEUE = 1000  # batches a slow follower may have waiting before it is ended


class FollowSource(Protocol):
    """What a follow needs of the hub's facade (FleetControl): its checks, its link, its count."""

    audit: AuditLog
    link: HubLink
    request_timeout: float
    streams: int

    async def ready(self) -> None: ...
    def host(self, instance: str | None, actor: Actor) -> Host: ...
    def require_logs(self, host: Host, name: str, actor: Actor) -> None: ...
    def caller(self, actor: Actor) -> dict[str, Any]: ...


async def follow(
    fleet: FollowSource, name: str, actor: Actor, after_cursor: str | None, instance: str | None
) -> AsyncGenerator[LogEntry | UnitgateError, None]:
    """The agent's lines as it sends them; each batch is answered, so an agent whose hub
    went away stops."""
    stream = secrets.token_hex(16)
    try:
        with fleet.audit.attempt("follow_logs", f"{instance or ''}/{name}", actor):
            await fleet.ready()
            host = fleet.host(instance, actor)
            fleet.require_logs(host, name, actor)
    except UnitgateError as refused:
        yield refused
        return
    nc = fleet.link.nc
    assert nc is not None
    batches: asyncio.Queue[bytes] = asyncio.Queue(_FOLLOW_QUEUE)
    lagged = False

    async def received(msg: Msg) -> None:
        nonlocal lagged
        if batches.full():  # unanswered, the agent stops; this follower says where it was
            lagged = True
            return
        batches.put_nowait(msg.data)
        with contextlib.suppress(Exception):
            await msg.respond(b"")

    subscription = await nc.subscribe(subjects.log_stream(host.name, stream), cb=received)
    fleet.streams += 1
    try:
        payload = {
            "caller": fleet.caller(actor),
            "name": name,
            "after_cursor": after_cursor,
            "stream": stream,
        }
        try:
            await fleet.link.request(host.name, "follow", payload, fleet.request_timeout)
        except UnitgateError as failure:
            yield failure
            return
        last: str | None = after_cursor
        while True:
            if lagged and batches.empty():
                yield errors.LogStreamLagged(last)
                return
            data = await batches.get()
            try:
                lines = wire.lines_from_wire(answer_of(data), limit=MAX_LINES)
            except UnitgateError as failure:
                yield failure
                return
            except wire.WireError as error:
                yield errors.SystemdUnavailable(f"the agent's lines do not parse: {error}")
                return
            for line in lines:
                last = line.cursor
                yield line
    finally:
        fleet.streams -= 1
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        with contextlib.suppress(Exception):
            await fleet.link.request(host.name, "follow", {"stop": stream}, fleet.request_timeout)
