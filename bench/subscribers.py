"""Dashboards for the benchmark, in a process of their own: `python -m bench.subscribers` opens
the subscribers, then answers the timing process on stdin and stdout, one JSON object a line, so
that the clients' own event loop does not slow the server it measures (nor its clock)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import websockets

SUBSCRIPTION = """subscription($names: [String!]) { serviceStatusChanged(names: $names) {
  ... on ServiceStatus { name activeState mainPid } } }"""


class Subscriber:
    """One dashboard on graphql-transport-ws, following `names`; every arrival is stamped with
    time.monotonic() (CLOCK_MONOTONIC: one clock for every process on the machine)."""

    def __init__(self, url: str, token: str, names: list[str]) -> None:
        self.url = url
        self.token = token
        self.names = names
        self.ws: Any = None
        self.latest: dict[str, Any] = {}
        self.changed = asyncio.Event()
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.on_event: Callable[[float, dict[str, Any]], None] = lambda stamp, event: None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ws = await websockets.connect(self.url, subprotocols=["graphql-transport-ws"], max_queue=64)  # type: ignore[list-item]
        auth = {"Authorization": f"Bearer {self.token}"}
        await self.ws.send(json.dumps({"type": "connection_init", "payload": auth}))
        assert json.loads(await self.ws.recv())["type"] == "connection_ack"
        payload = {"query": SUBSCRIPTION, "variables": {"names": self.names}}
        await self.ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        for _ in self.names:
            self._record(json.loads(await self.ws.recv()))
        self._reader = asyncio.create_task(self._read())

    def _record(self, message: dict[str, Any]) -> None:
        if message.get("type") != "next":
            return
        stamp = time.monotonic()
        event = message["payload"]["data"]["serviceStatusChanged"]
        self.latest[event["name"]] = event
        self.arrivals.append((stamp, event))
        self.on_event(stamp, event)
        self.changed.set()

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                self._record(json.loads(raw))

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> float:
        """Time of the first arrival (from now on) that satisfies `predicate`."""
        seen = len(self.arrivals)
        async with asyncio.timeout(timeout):
            while True:
                for stamp, event in self.arrivals[seen:]:
                    if predicate(event):
                        return stamp
                seen = len(self.arrivals)
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()


@contextlib.asynccontextmanager
async def subscribers(url: str, token: str, count: int, names: list[str]) -> AsyncIterator[list[Subscriber]]:
    made = [Subscriber(url, token, names) for _ in range(count)]
    try:
        for start in range(0, count, 100):  # connect in waves, as dashboards open over time
            await asyncio.gather(*(subscriber.start() for subscriber in made[start : start + 100]))
        yield made
    finally:
        await asyncio.gather(*(subscriber.close() for subscriber in made))


class Arrivals:
    """When each subscriber first heard of `name` running a main process other than `old`."""

    def __init__(self, count: int, name: str, old: object) -> None:
        self.name, self.old = name, old
        self.stamps: list[float | None] = [None] * count
        self.missing = count
        self.done = asyncio.Event()

    def record(self, index: int, stamp: float, event: dict[str, Any]) -> None:
        if (
            self.stamps[index] is None
            and event["name"] == self.name
            and event["mainPid"] not in (self.old, None)
        ):
            self.stamps[index] = stamp
            self.missing -= 1
            if self.missing == 0:
                self.done.set()


def say(**message: Any) -> None:
    print(json.dumps(message), flush=True)


async def commands() -> AsyncIterator[dict[str, Any]]:
    """The timing process's commands on stdin, one JSON object a line, until it closes the pipe
    or says {"close": true}."""
    lines = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    while line := await lines.readline():
        command = json.loads(line)
        if command.get("close"):
            return
        yield command


async def serve(url: str, token: str, count: int, name: str) -> None:
    """Commands on stdin: {"arm": pid} answers {"armed": true} at once, then {"arrivals": [...]}
    once every subscriber has a status of `name` whose main process is neither `pid` nor none;
    {"close": true} ends it. Any other line is an error."""
    async with subscribers(url, token, count, [name]) as subs:
        say(ready=count, pid=subs[0].latest[name]["mainPid"])
        async for command in commands():
            arrivals = Arrivals(count, name, command["arm"])
            for index, subscriber in enumerate(subs):
                subscriber.on_event = functools.partial(arrivals.record, index)
            say(armed=True)
            await asyncio.wait_for(arrivals.done.wait(), 60)
            say(arrivals=arrivals.stamps)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.subscribers", description=__doc__)
    parser.add_argument("--url", required=True, help="unitgate's ws:// GraphQL address")
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--name", required=True, help="the service every subscriber follows")
    args = parser.parse_args()
    asyncio.run(serve(args.url, args.token, args.count, args.name))


if __name__ == "__main__":
    main()
