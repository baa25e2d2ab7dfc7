"""Boot a private systemd with the 14 allowlisted names, start unitgate, and measure it against
its baselines in the same run. Prints one table; every goal is marked pass or fail."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from tests.helpers import free_port

from unitgate.sandbox import UserManagerSandbox
from unitgate.services.policy.tokens import new_token, token_sha256
from unitgate.services.systemd.allowlist import DEFAULT_ALLOWLIST
from unitgate.services.systemd.status import SHOW_PROPERTIES

# As on a real server, some allowlisted names are not installed.
ABSENT = {"php7.4-fpm", "php8.0-fpm", "mysql", "ufw"}
CRASHY = "postfix"  # its main process is SIGKILLed; systemd brings it back
RESTARTED = "nginx"
TOKEN = new_token()
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
SERVICES_QUERY = (
    "{ services { ... on ServiceList { services { "
    "name activeState subState mainPid memoryBytes uptimeSeconds } } } }"
)
SUBSCRIPTION = """subscription($names: [String!]) { serviceStatusChanged(names: $names) {
  ... on ServiceStatus { name activeState mainPid } } }"""


def units() -> dict[str, str]:
    made = {}
    for name in sorted(DEFAULT_ALLOWLIST - ABSENT):
        restart = "Restart=always\nRestartSec=100ms\n" if name == CRASHY else ""
        made[f"{name}.service"] = (
            f"[Unit]\nDescription=bench {name}\nStartLimitIntervalSec=0\n"
            f"[Service]\nExecStart=/bin/sleep infinity\n{restart}"
        )
    return made


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def pid_changed(old: object, event: dict[str, Any]) -> bool:
    """Whether a status event shows a new main process (not the old one, and not none)."""
    return event["mainPid"] not in (old, None)


def pid_gone(old: object, event: dict[str, Any]) -> bool:
    """Whether a status event no longer shows the old main process (the first event a kill makes,
    before systemd restarts the unit)."""
    return bool(event["mainPid"] != old)


@dataclass
class Server:
    url: str
    ws_url: str
    process: subprocess.Popen[bytes]

    async def stats(self, client: httpx.AsyncClient) -> dict[str, Any]:
        response = await client.get(self.url.replace("/graphql", "/_bench/stats"))
        return dict(response.json())


@contextlib.contextmanager
def unitgate(sandbox: UserManagerSandbox, **settings: Any) -> Iterator[Server]:
    port = free_port()
    values = {
        "scope": "user",
        "action_limit": 1_000_000,
        "max_websocket_connections": 5000,
        # Every subscriber comes from 127.0.0.1 at once: a flood, as far as admission can tell.
        "max_pending_websockets": 5000,
        "max_pending_websockets_per_address": 5000,
        "max_connections": 6000,
        "tokens": [{"name": "bench", "role": "operator", "sha256": token_sha256(TOKEN)}],
        **settings,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.server",
            "--port",
            str(port),
            "--runtime-dir",
            str(sandbox.runtime_dir),
            "--settings",
            json.dumps(values),
        ],
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    for line in process.stderr:  # uvicorn says when it listens: wait for that line
        if b"Uvicorn running" in line:
            break
    else:
        raise RuntimeError("unitgate did not start")
    # uvicorn logs every websocket: keep reading, or a full pipe would stall the server.
    threading.Thread(target=lambda: process.stderr and process.stderr.read(), daemon=True).start()
    try:
        yield Server(f"http://127.0.0.1:{port}/graphql", f"ws://127.0.0.1:{port}/graphql", process)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


@dataclass
class Row:
    number: str
    measure: str
    unitgate: str
    baseline: str
    ratio: str
    goal: str
    passed: bool | None

    def cells(self) -> list[str]:
        verdict = "n/a" if self.passed is None else ("pass" if self.passed else "FAIL")
        return [self.number, self.measure, self.unitgate, self.baseline, self.ratio, self.goal, verdict]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        row = Row(*cells)
        self.rows.append(row)
        print(" | ".join(row.cells()), file=sys.stderr, flush=True)

    def render(self) -> str:
        header = ["#", "measure", "unitgate", "baseline", "ratio", "goal", "result"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row.cells()) + " |" for row in self.rows]
        return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def bare_show(sandbox: UserManagerSandbox) -> None:
    argv = ["/usr/bin/systemctl", "--user", "show", "--no-pager", f"--property={','.join(SHOW_PROPERTIES)}"]
    argv += [f"{name}.service" for name in sorted(DEFAULT_ALLOWLIST)]
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC", **sandbox.env}
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, env=env)
    await process.communicate()


async def naive_request(sandbox: UserManagerSandbox) -> None:
    """The original REST plan: per request, per unit, one `systemctl cat` and one `systemctl show`."""
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC", **sandbox.env}
    for name in sorted(DEFAULT_ALLOWLIST):
        for verb in (["cat"], ["show", f"--property={','.join(SHOW_PROPERTIES)}"]):
            process = await asyncio.create_subprocess_exec(
                "/usr/bin/systemctl",
                "--user",
                "--no-pager",
                *verb,
                f"{name}.service",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            await process.communicate()


async def timed(fn: Callable[[], Awaitable[object]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return samples


async def timed_pair(
    ours: Callable[[], Awaitable[object]], baseline: Callable[[], Awaitable[object]], count: int
) -> tuple[list[float], list[float]]:
    """Alternate the two, so that drift in the machine's load falls on both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(count):
        a += await timed(ours, 1)
        b += await timed(baseline, 1)
    return a, b


async def throughput(fn: Callable[[], Awaitable[object]], clients: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await fn()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - start)


async def query(
    client: httpx.AsyncClient, url: str, document: str, variables: dict[str, Any] | None = None
) -> Any:
    response = await client.post(url, json={"query": document, "variables": variables or {}})
    response.raise_for_status()
    body = response.json()
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]


class Subscriber:
    """One dashboard on graphql-transport-ws, following `names`."""

    def __init__(self, url: str, names: list[str]) -> None:
        self.url = url
        self.names = names
        self.ws: Any = None
        self.latest: dict[str, Any] = {}
        self.changed = asyncio.Event()
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ws = await websockets.connect(self.url, subprotocols=["graphql-transport-ws"], max_queue=64)  # type: ignore[list-item]
        await self.ws.send(json.dumps({"type": "connection_init", "payload": HEADERS}))
        assert json.loads(await self.ws.recv())["type"] == "connection_ack"
        payload = {"query": SUBSCRIPTION, "variables": {"names": self.names}}
        await self.ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        for _ in self.names:
            self._record(json.loads(await self.ws.recv()))
        self._reader = asyncio.create_task(self._read())

    def _record(self, message: dict[str, Any]) -> None:
        if message.get("type") != "next":
            return
        event = message["payload"]["data"]["serviceStatusChanged"]
        self.latest[event["name"]] = event
        self.arrivals.append((time.perf_counter(), event))
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
async def subscribers(url: str, count: int, names: list[str]) -> AsyncIterator[list[Subscriber]]:
    made = [Subscriber(url, names) for _ in range(count)]
    try:
        for start in range(0, count, 100):  # connect in waves, as dashboards open over time
            await asyncio.gather(*(subscriber.start() for subscriber in made[start : start + 100]))
        yield made
    finally:
        await asyncio.gather(*(subscriber.close() for subscriber in made))


async def measure(sandbox: UserManagerSandbox, quick: bool) -> Report:
    report = Report()
    scale = 0.2 if quick else 1.0
    async with httpx.AsyncClient(
        headers=HEADERS, timeout=60, limits=httpx.Limits(max_connections=200)
    ) as client:
        with unitgate(sandbox, memory_interval=3600, poll_interval=3600) as server:
            # 1. latency, one client
            count = max(50, int(500 * scale))
            await query(client, server.url, SERVICES_QUERY)
            ours, bare = await timed_pair(
                lambda: query(client, server.url, SERVICES_QUERY), lambda: bare_show(sandbox), count
            )
            for p in (50, 99):
                ratio = percentile(ours, p) / percentile(bare, p)
                report.add(
                    f"1 p{p}",
                    "`services` latency, 1 client",
                    ms(percentile(ours, p)),
                    f"{ms(percentile(bare, p))} bare `systemctl show`",
                    f"{ratio:.2f}x",
                    "<= 1.25x",
                    ratio <= 1.25,
                )

            # 2. throughput
            seconds = 3.0 * scale
            for clients in (1, 16, 64):
                ours_rate = await throughput(
                    lambda: query(client, server.url, SERVICES_QUERY), clients, seconds
                )
                naive_rate = await throughput(lambda: naive_request(sandbox), clients, seconds)
                ratio = ours_rate / naive_rate
                report.add(
                    f"2 c{clients}",
                    f"`services` throughput, {clients} clients",
                    f"{ours_rate:.0f} req/s",
                    f"{naive_rate:.1f} req/s naive cat+show per unit",
                    f"{ratio:.1f}x",
                    ">= 10x" if clients == 64 else "-",
                    ratio >= 10 if clients == 64 else None,
                )

            # 3. processes for 14 aliased service(name)
            aliases = " ".join(
                f'a{i}: service(name: "{name}") {{ __typename }}'
                for i, name in enumerate(sorted(DEFAULT_ALLOWLIST))
            )
            before = (await server.stats(client))["spawned"]
            await query(client, server.url, f"{{ {aliases} }}")
            spawned = (await server.stats(client))["spawned"] - before
            report.add(
                "3",
                "processes for 14 aliased `service(name)`",
                str(spawned),
                "14 (one per field)",
                f"{spawned / 14:.2f}x",
                "1",
                spawned == 1,
            )

            # 4. 1,000 subscribers
            count = int(1000 * scale)
            rss_before = (await server.stats(client))["rss"]
            async with subscribers(server.ws_url, count, [RESTARTED]) as subs:
                stats = await server.stats(client)
                per_subscriber = (stats["rss"] - rss_before) / count
                latencies: list[float] = []
                reads: list[int] = []
                for _ in range(3 if quick else 5):
                    old_pid = subs[0].latest[RESTARTED]["mainPid"]
                    reads_before = (await server.stats(client))["reads"]
                    waits = [
                        asyncio.create_task(s.wait_for(functools.partial(pid_changed, old_pid))) for s in subs
                    ]
                    await asyncio.sleep(0)
                    start = time.perf_counter()
                    await query(
                        client, server.url, 'mutation { restartService(name: "nginx") { __typename } }'
                    )
                    arrivals = await asyncio.gather(*waits)
                    latencies += [arrival - start for arrival in arrivals]
                    reads.append((await server.stats(client))["reads"] - reads_before)
                p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
                report.add(
                    "4 p50", f"restart -> all {count} subscribers have it", ms(p50), "-", "-", "-", None
                )
                report.add(
                    "4 p99",
                    f"restart -> all {count} subscribers have it",
                    ms(p99),
                    "-",
                    "-",
                    "<= 1 s",
                    p99 <= 1.0,
                )
                worst = max(reads)
                report.add(
                    "4 reads",
                    "status reads per change",
                    f"{worst} (worst of {len(reads)})",
                    f"{count} (one per subscriber)",
                    f"{worst / count:.4f}x",
                    "1",
                    worst == 1,
                )
                report.add(
                    "4 mem",
                    "memory per subscriber",
                    f"{per_subscriber / 1024:.1f} KiB",
                    "-",
                    "-",
                    "<= 50 KiB",
                    per_subscriber <= 50 * 1024,
                )

            # 6a. idle cost, nobody subscribed
            window = 20.0 * scale if not quick else 4.0
            before = (await server.stats(client))["spawned"]
            await asyncio.sleep(window)
            idle = ((await server.stats(client))["spawned"] - before) * 60 / window
            report.add(
                "6 idle", "processes per minute, no subscriber", f"{idle:.1f}", "-", "-", "0", idle == 0
            )

        # 5. kill -> event, event-driven against polling
        kills = 5 if quick else 20
        with unitgate(sandbox, memory_interval=3600, poll_interval=3600) as events_server:
            driven = await kill_latencies(events_server, kills)
        with unitgate(sandbox, memory_interval=3600, poll_interval=2.0, dbus_events=False) as polling_server:
            polled = await kill_latencies(polling_server, max(3, kills // 4))
        for p in (50, 99):
            ratio = percentile(driven, p) / percentile(polled, p)
            goal = "<= 100 ms" if p == 50 else "-"
            report.add(
                f"5 p{p}",
                "SIGKILL of main process -> event at a subscriber",
                ms(percentile(driven, p)),
                f"{ms(percentile(polled, p))} polling every 2 s",
                f"{ratio:.3f}x",
                goal,
                percentile(driven, p) <= 0.1 if p == 50 else None,
            )

        # 6b. idle cost with 100 idle subscribers
        memory_interval = 5.0
        with unitgate(sandbox, memory_interval=memory_interval, poll_interval=3600) as server:
            async with subscribers(server.ws_url, 100, sorted(DEFAULT_ALLOWLIST - ABSENT)):
                window = 4 * memory_interval if not quick else 2 * memory_interval
                before = (await server.stats(client))["spawned"]
                await asyncio.sleep(window)
                spawned = (await server.stats(client))["spawned"] - before
                per_interval = spawned / (window / memory_interval)
                report.add(
                    "6 subs",
                    f"processes per {memory_interval:g} s memory interval, 100 idle subscribers",
                    f"{per_interval:.2f}",
                    "-",
                    "-",
                    "<= 1",
                    per_interval <= 1,
                )
    return report


async def kill_latencies(server: Server, kills: int) -> list[float]:
    samples = []
    async with subscribers(server.ws_url, 1, [CRASHY]) as (subscriber,):
        for _ in range(kills):
            state = subscriber.latest[CRASHY]
            if state["activeState"] != "active" or not state["mainPid"]:
                await subscriber.wait_for(lambda e: e["activeState"] == "active" and bool(e["mainPid"]))
            pid = subscriber.latest[CRASHY]["mainPid"]
            waiting = asyncio.create_task(subscriber.wait_for(functools.partial(pid_gone, pid)))
            await asyncio.sleep(0)
            start = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            samples.append(await waiting - start)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer samples and shorter windows (a smoke run)"
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    with UserManagerSandbox(units(), start=list(units())) as sandbox:
        report = asyncio.run(measure(sandbox, args.quick))
    print(report.render())
    failed = [row for row in report.rows if row.passed is False]
    print(f"\n{len(report.rows) - len(failed)} rows met their goal or have none; {len(failed)} missed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
