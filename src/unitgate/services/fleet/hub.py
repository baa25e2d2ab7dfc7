"""The hub's side of NATS: the bucket made (if need be) and watched into the view, heartbeats
heard, silent hosts marked offline, and requests to agents with their failures typed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from unitgate.services.errors import CommandTimeout, InstanceOffline, SystemdUnavailable, UnitgateError
from unitgate.services.fleet import subjects, wire
from unitgate.services.fleet.view import FleetView
from unitgate.services.fleet.wire import WireError

log = logging.getLogger(__name__)
_EXPIRY_TICK = 0.5  # how often silent hosts are looked for
BUCKET_WAIT = 30.0  # seconds a starting hub waits for JetStream to be ready
ROLL_CALL_AT_ONCE = 256  # a starting hub's "are you there" requests in flight


class HubLink:
    def __init__(self, view: FleetView, heartbeat_interval: float) -> None:
        self.view = view
        self.heartbeat_interval = heartbeat_interval
        self.nc: Client | None = None
        self.kv: KeyValue | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._roll_calls: set[asyncio.Task[None]] = set()
        self.requests = 0  # sent to agents: none for a refusal made here

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def start(self, connect: Callable[..., Awaitable[Client]], servers: list[str], seed: str) -> None:
        async def errored(error: Exception) -> None:
            log.warning("fleet: %s", error)

        async def reconnected() -> None:
            # The watch's consumer lived on the server that went away (or another node of the
            # cluster): it may never deliver again. A new one starts from the current values.
            if self._tasks:
                self._tasks[0].cancel()
                self._tasks[0] = asyncio.create_task(self._watch(), name="unitgate-fleet-watch")

        self.nc = await connect(
            servers,
            nkeys_seed=seed,
            name="unitgate-hub",
            inbox_prefix=subjects.inbox_prefix(subjects.HUB_USER),
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=errored,
            reconnected_cb=reconnected,
        )
        self.kv = await self._bucket(self.nc.jetstream(), replicas=min(3, len(servers)))
        await self.nc.subscribe(subjects.heartbeat("*"), cb=self._heartbeat)
        self._tasks = [
            asyncio.create_task(self._watch(), name="unitgate-fleet-watch"),
            asyncio.create_task(self._expire(), name="unitgate-fleet-expiry"),
        ]

    @staticmethod
    async def _bucket(js: JetStreamContext, replicas: int) -> KeyValue:
        """The bucket, made if need be: kept on up to three servers of a cluster, so a node that
        dies loses no status. A cluster still electing its leader answers "unavailable" for a
        few seconds: asked again until BUCKET_WAIT has passed."""
        deadline = asyncio.get_running_loop().time() + BUCKET_WAIT
        while True:
            try:
                try:
                    return await js.key_value(subjects.BUCKET)
                except BucketNotFoundError:
                    # History 1: each host's latest word, not a log (history reads journals).
                    return await js.create_key_value(bucket=subjects.BUCKET, history=1, replicas=replicas)
            except (NatsError, TimeoutError) as error:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("fleet: JetStream is not ready (%s); asking again", error)
                await asyncio.sleep(0.5)

    async def _heartbeat(self, msg: Msg) -> None:
        # unitgate.<instance>.heartbeat: the server lets only that instance's agent publish it.
        self.view.heard_from(msg.subject.split(".")[1])

    async def _watch(self) -> None:
        """Every value in the bucket, then every change, for as long as the hub runs; the watch
        is made again when it ends (a restarted server), and the view is complete when the
        current values are in."""
        assert self.kv is not None
        while True:
            watcher = None
            try:
                watcher = await self.kv.watchall()
                async for entry in watcher:
                    if entry is None:  # the end of the current values
                        self.view.ready.set()
                        self._roll_call_soon()
                        continue
                    deleted = entry.operation in ("DEL", "PURGE")
                    self.view.apply(entry.key, None if deleted else entry.value)
            except asyncio.CancelledError:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(watcher.stop())  # type: ignore[no-untyped-call]
                raise
            except Exception as error:  # a reconnect: watch again from the current values
                log.warning("fleet: the bucket's watch ended (%s); watching again", error)
                await asyncio.sleep(0.5)

    def _roll_call_soon(self) -> None:
        task = asyncio.create_task(self._roll_call(), name="unitgate-fleet-roll-call")
        self._roll_calls.add(task)
        task.add_done_callback(self._roll_calls.discard)

    async def _roll_call(self) -> None:
        """Every host the bucket names, asked whether it is there: a starting hub knows who is
        online in one round trip, not when each next heartbeat comes. Whoever answers is heard
        from (only that host's agent receives its commands, so only it can answer); whoever
        does not is left to the heartbeats, as before."""
        assert self.nc is not None
        nc = self.nc
        slots = asyncio.Semaphore(ROLL_CALL_AT_ONCE)

        async def ask(name: str) -> None:
            async with slots:
                with contextlib.suppress(NatsError, TimeoutError):
                    await nc.request(subjects.command(name, "ping"), b"{}", timeout=self.heartbeat_interval)
                    self.view.heard_from(name)

        await asyncio.gather(*(ask(name) for name in list(self.view.hosts)))

    async def _expire(self) -> None:
        while True:
            self.view.expire()
            await asyncio.sleep(_EXPIRY_TICK)

    async def request(
        self, instance: str, verb: str, payload: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """One command to one agent: its answer, or the typed failure (nobody there is
        InstanceOffline at once, from the server's no-responders reply)."""
        if self.nc is None or not self.nc.is_connected:
            raise SystemdUnavailable("the hub is not connected to NATS")
        self.requests += 1
        try:
            reply = await self.nc.request(
                subjects.command(instance, verb), wire.dumps(payload), timeout=timeout
            )
        except NoRespondersError:
            raise InstanceOffline(instance) from None
        except NatsTimeout:
            raise CommandTimeout(f"{instance} {verb}", timeout) from None
        return answer_of(reply.data)

    async def aclose(self) -> None:
        tasks = [*self._tasks, *self._roll_calls]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()


def answer_of(data: bytes) -> dict[str, Any]:
    """An agent's answer, or the typed error it carries; one that does not parse is the agent's
    fault, and said so."""
    try:
        answer = wire.loads(data)
        if "error" in answer:
            error = answer["error"]
            raise wire.error_from_wire(error if isinstance(error, dict) else {})
    except WireError as error:
        raise SystemdUnavailable(f"the agent's answer does not parse: {error}") from None
    except UnitgateError:
        raise
    return answer
