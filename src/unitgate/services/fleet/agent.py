"""An agent: this host's ServiceControl bridged to NATS. It writes each status change to the
bucket once, answers the commands addressed to its instance (checking everything again with its
own config, its own guard and its own audit), and says it is still there. It opens no port."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from unitgate.services.errors import ServerBusy, UnitgateError
from unitgate.services.facade import HostControl
from unitgate.services.fleet import subjects, wire
from unitgate.services.fleet.history_wire import history_to_wire
from unitgate.services.fleet.wire import HostInfo, WireError
from unitgate.services.policy.access import Role, scoped_actor
from unitgate.services.systemd.logs import MAX_LINES, LogEntry
from unitgate.services.systemd.status import UnitStatus
from unitgate.services.systemd.units import UnitVerb

log = logging.getLogger(__name__)
MAX_COMMANDS = 64  # commands answered at once; past it, ServerBusy
_RETRY = 0.5  # seconds between tries of a write the bucket refused
_STREAM_ID = re.compile(r"^[A-Za-z0-9]{8,64}$")


def quiet(status: UnitStatus) -> UnitStatus:
    """What decides whether a status is written again: not its memory, CPU or task count, which
    move all the time (an idle host would otherwise write every memory refresh)."""
    return dataclasses.replace(status, memory_bytes=None, cpu_nsec=None, tasks=None)


class Agent:
    def __init__(self, control: HostControl, host: HostInfo, heartbeat_interval: float) -> None:
        self.control = control
        self.host = host
        self.name = control.instance_name
        self.heartbeat_interval = heartbeat_interval
        self._latest: dict[str, UnitStatus] = {}  # every service's status as last read
        self._written: dict[str, UnitStatus] = {}  # what the bucket holds of ours, as last written
        self._dirty: set[str] = set()  # services whose latest status the bucket does not hold yet
        self._host_dirty = True  # and what the host says of itself
        self._wake = asyncio.Event()
        self._wake.set()
        self._commands = 0
        self._follows: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.kv: KeyValue | None = None
        self._nc: Client | None = None

    async def run(self, nc: Client) -> None:
        """Serve until cancelled: the bucket (once a hub has made it), commands, heartbeats."""
        self._nc = nc
        await nc.subscribe(f"{subjects.PREFIX}.{self.name}.cmd.>", cb=self._on_command)
        self.kv = await self._bucket(nc)
        helpers = [asyncio.create_task(self._flush()), asyncio.create_task(self._heartbeat(nc))]
        try:
            await self._publish_statuses()
        finally:
            for task in [*helpers, *self._tasks, *self._follows.values()]:
                task.cancel()

    def rewrite(self) -> None:
        """After a reconnect: everything again, as it is now (what changed while the server was
        away was never written; the server may have lost the bucket too)."""
        self._host_dirty = True
        self._dirty.update(self._latest)
        self._wake.set()

    async def _flush(self) -> None:
        """Write what the bucket does not hold yet, until it does: a write that fails (NATS
        away, a cluster electing a new leader for the bucket) is tried again, never dropped."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._host_dirty or self._dirty:
                try:
                    await self._write_pending()
                except Exception as error:
                    log.warning("fleet: could not write to the bucket (%s); trying again", error)
                    await asyncio.sleep(_RETRY)

    async def _write_pending(self) -> None:
        assert self.kv is not None
        if self._host_dirty:
            await self.kv.put(subjects.host_key(self.name), wire.dumps(wire.host_to_wire(self.host)))
            self._host_dirty = False
        for name in sorted(self._dirty):
            status = self._latest[name]
            await self.kv.put(subjects.status_key(self.name, name), _encoded(status))
            self._written[name] = status
            if self._latest[name] is status:  # else it changed meanwhile: once more
                self._dirty.discard(name)

    @staticmethod
    async def _bucket(nc: Client) -> KeyValue:
        while True:
            try:
                return await nc.jetstream().key_value(subjects.BUCKET)
            except BucketNotFoundError:
                log.warning("fleet: no bucket %r yet (a hub makes it); trying again", subjects.BUCKET)
            except (NatsError, TimeoutError) as error:  # a cluster electing its leader, say
                log.warning("fleet: JetStream is not ready (%s); trying again", error)
            await asyncio.sleep(1.0)

    async def _publish_statuses(self) -> None:
        actor = scoped_actor(f"agent:{self.name}", Role.VIEWER, None, ())
        async for event in self.control.status_events(None, actor):
            if isinstance(event, UnitgateError):
                log.warning("fleet: status read failed: %s", event)
                continue
            self._latest[event.name] = event
            last = self._written.get(event.name)
            if last is None or quiet(last) != quiet(event):
                self._dirty.add(event.name)
                self._wake.set()

    async def _heartbeat(self, nc: Client) -> None:
        while True:
            with contextlib.suppress(Exception):  # a reconnect is under way: the next one goes
                await nc.publish(subjects.heartbeat(self.name), b"")
            await asyncio.sleep(self.heartbeat_interval)

    async def _on_command(self, msg: Msg) -> None:
        # A task each: the client hands a subscription's messages over one at a time, and a
        # restart must not hold up a log tail behind it.
        task = asyncio.create_task(self._command(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _command(self, msg: Msg) -> None:
        if not msg.reply:
            return
        if self._commands >= MAX_COMMANDS:
            await msg.respond(wire.dumps({"error": wire.error_to_wire(ServerBusy(1))}))
            return
        self._commands += 1
        try:
            answer = await self._answer(msg.subject.rsplit(".", 1)[-1], msg.data)
        except UnitgateError as error:
            answer = {"error": wire.error_to_wire(error)}
        except WireError as error:
            log.warning("fleet: a command that does not parse: %s", error)
            answer = {"error": {"type": "SystemdUnavailable", "reason": "the request does not parse"}}
        finally:
            self._commands -= 1
        with contextlib.suppress(Exception):
            await msg.respond(wire.dumps(answer))

    async def _answer(self, verb: str, payload: bytes) -> dict[str, Any]:
        if verb == "ping":
            return {"ok": True}
        request = wire.loads(payload)
        if verb == "follow" and isinstance(request.get("stop"), str):
            task = self._follows.pop(request["stop"], None)
            if task is not None:
                task.cancel()
            return {"ok": True}
        caller = wire.caller_from_wire(request.get("caller") or {})
        # The caller as the hub names it, cut to what this host's own config offers: a hub can
        # do no more here than this host allows.
        actor = scoped_actor(
            caller.name,
            Role(caller.role),
            caller.address,
            self.control.enabled,
            caller.services,
            caller.actions,
        )
        name = request.get("name")
        if not isinstance(name, str):
            raise WireError("name: not a string")
        if verb in ("restart", "reload", "start", "stop"):
            status = await self.control.act(UnitVerb(verb), name, actor)
            return {"status": wire.status_to_wire(status)}
        if verb == "logs":
            lines = request.get("lines")
            if not isinstance(lines, int) or isinstance(lines, bool):
                raise WireError("lines: not a number")
            entries = await self.control.logs(name, max(0, min(lines, MAX_LINES)), actor)
            return {"lines": [wire.line_to_wire(entry) for entry in entries]}
        if verb == "follow":
            return await self._start_follow(request, name, actor)
        if verb == "history":
            return await self._history(request, name, actor)
        raise WireError(f"no command {verb[:20]!r}")

    async def _history(self, request: dict[str, Any], name: str, actor: Any) -> dict[str, Any]:
        limit, since = request.get("limit"), request.get("since")
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise WireError("limit: not a number")
        if since is not None and not isinstance(since, str):
            raise WireError("since: not a time")
        history = await self.control.history(name, wire._time(since), max(0, min(limit, MAX_LINES)), actor)
        return history_to_wire(history)

    async def _start_follow(self, request: dict[str, Any], name: str, actor: Any) -> dict[str, Any]:
        stream = request.get("stream")
        after = request.get("after_cursor")
        if not isinstance(stream, str) or not _STREAM_ID.match(stream) or stream in self._follows:
            raise WireError("stream: not a fresh stream id")
        if after is not None and not isinstance(after, str):
            raise WireError("after_cursor: not a string")
        task = asyncio.create_task(self._follow(stream, name, actor, after))
        self._follows[stream] = task
        task.add_done_callback(lambda done: self._follows.pop(stream, None))
        return {"ok": True}

    async def _follow(self, stream: str, name: str, actor: Any, after: str | None) -> None:
        """Each batch of lines (what has arrived since the last one went) is a request the hub's
        subscriber answers: when none does (the hub or its subscriber is gone), the follow ends
        here too. A slow hub holds the batch back; the follower's own bound covers the rest."""
        assert self._nc is not None
        subject = subjects.log_stream(self.name, stream)
        events = self.control.follow_logs(name, actor, after)
        queue: asyncio.Queue[LogEntry | UnitgateError | None] = asyncio.Queue(maxsize=1000)

        async def pump() -> None:
            try:
                async for event in events:
                    await queue.put(event)
            finally:
                await queue.put(None)

        pumping = asyncio.create_task(pump())
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, UnitgateError):
                    await self._nc.request(
                        subject, wire.dumps({"error": wire.error_to_wire(item)}), timeout=5
                    )
                    return
                batch = [wire.line_to_wire(item)]
                while len(batch) < 200 and not queue.empty():
                    more = queue.get_nowait()
                    if not isinstance(more, LogEntry):
                        queue.put_nowait(more)  # an error or the end: after this batch
                        break
                    batch.append(wire.line_to_wire(more))
                await self._nc.request(subject, wire.dumps({"lines": batch}), timeout=5)
        except (NoRespondersError, NatsTimeout):
            pass
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
            await events.aclose()


def _encoded(status: UnitStatus) -> bytes:
    return wire.dumps(wire.status_to_wire(status))


async def serve_agent(
    connect: Callable[..., Awaitable[Client]], agent: Agent, servers: list[str], seed: str
) -> None:
    """Connect (and reconnect, for ever) and run the agent until cancelled."""
    nc: Client | None = None

    async def reconnected() -> None:
        log.warning("fleet: reconnected to NATS; writing every status again")
        agent.rewrite()

    async def disconnected() -> None:
        # A revoked or rotated key ends here too: the reconnects then fail with "Authorization
        # Violation" until the host's new key is in place and the agent restarted.
        log.warning("fleet: disconnected from NATS")

    async def errored(error: Exception) -> None:
        log.warning("fleet: %s", error)

    try:
        nc = await connect(
            servers,
            nkeys_seed=seed,
            name=f"unitgate-agent-{agent.name}",
            inbox_prefix=subjects.inbox_prefix(agent.name),
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            reconnected_cb=reconnected,
            disconnected_cb=disconnected,
            error_cb=errored,
        )
        await agent.run(nc)
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
