"""Dashboards of a hub for the fleet benchmark, in a process of their own, each on a loopback
address of its own (127.x.y.z), as real dashboards come from many addresses. Each follows nginx
on the hosts the bench changes. On stdin: {"arm": {"web042/nginx": old_pid, ...}} answers
{"armed": true}, then {"arrivals": [...]}: per subscriber, when (CLOCK_MONOTONIC) it had heard
of every one of those services running another main process; {"close": true} ends it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

import websockets
from websockets.typing import Subprotocol

from bench.subscribers import commands, say

SUBSCRIPTION = """subscription($instances: [String!]) {
  serviceStatusChanged(names: ["nginx"], instances: $instances) { ... on ServiceStatus { id mainPid } } }"""


def address(index: int) -> str:
    """A distinct loopback address per dashboard: 127.1.0.1, 127.1.0.2, ..."""
    return f"127.{1 + index // 65025}.{(index // 255) % 255}.{1 + index % 255}"


class Dashboard:
    def __init__(self, index: int, url: str, token: str, instances: list[str]) -> None:
        self.index, self.url, self.token, self.instances = index, url, token, instances
        self.latest: dict[str, int] = {}
        self.waiting: dict[str, int] = {}  # id -> the main process it must move away from
        self.done: asyncio.Future[float] | None = None

    async def run(self, ready: asyncio.Event) -> None:
        async with websockets.connect(
            self.url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            max_queue=256,
            local_addr=(address(self.index), 0),
        ) as ws:
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}})
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            payload = {"query": SUBSCRIPTION, "variables": {"instances": self.instances}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") != "next":
                    continue
                stamp = time.monotonic()
                event = message["payload"]["data"]["serviceStatusChanged"]
                self.latest[event["id"]] = event["mainPid"]
                if len(self.latest) == len(self.instances):
                    ready.set()
                if event["id"] in self.waiting and event["mainPid"] != self.waiting[event["id"]]:
                    del self.waiting[event["id"]]
                    if not self.waiting and self.done is not None and not self.done.done():
                        self.done.set_result(stamp)


async def serve(url: str, token: str, count: int, instances: list[str]) -> None:
    dashboards = [Dashboard(i, url, token, instances) for i in range(count)]
    tasks = []
    for start in range(0, count, 100):  # in waves, as dashboards open over time
        wave = [(d, asyncio.Event()) for d in dashboards[start : start + 100]]
        tasks += [asyncio.create_task(d.run(ready)) for d, ready in wave]
        await asyncio.wait_for(asyncio.gather(*(ready.wait() for _, ready in wave)), 120)
    say(ready=count, pids=dashboards[0].latest)
    loop = asyncio.get_running_loop()
    try:
        async for command in commands():
            for dashboard in dashboards:
                dashboard.waiting = {
                    i: pid for i, pid in command["arm"].items() if dashboard.latest.get(i) == pid
                }
                dashboard.done = loop.create_future()
                if not dashboard.waiting:
                    dashboard.done.set_result(time.monotonic())
            say(armed=True)
            stamps = await asyncio.wait_for(asyncio.gather(*(d.done for d in dashboards if d.done)), 60)
            say(arrivals=stamps, pids=dashboards[0].latest)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_subscribers", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("instances", nargs="+")
    args = parser.parse_args()
    asyncio.run(serve(args.url, args.token, args.count, args.instances))


if __name__ == "__main__":
    main()
