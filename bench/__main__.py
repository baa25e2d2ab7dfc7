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
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.helpers import free_port

from bench import fleet
from bench.http_client import ReplayClient
from bench.subscribers import subscribers
from unitgate.sandbox.manager import UserManagerSandbox
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
        "max_websocket_connections": 6000,
        # Every subscriber comes from 127.0.0.1 at once: a flood, as far as admission can tell.
        "max_pending_websockets": 6000,
        "max_pending_websockets_per_address": 6000,
        "max_connections": 7000,
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


async def throughput(clients: list[Callable[[], Awaitable[object]]], seconds: float) -> float:
    """Requests per second with each of `clients` (a request function) asking again at once."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(fn: Callable[[], Awaitable[object]]) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await fn()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(client(fn) for fn in clients))
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


class SubscriberProcess:
    """`python -m bench.subscribers`: `count` dashboards following RESTARTED, in their own process."""

    def __init__(self, server: Server, count: int) -> None:
        self.server, self.count = server, count
        self.process: asyncio.subprocess.Process | None = None
        self.pid: int = 0

    async def __aenter__(self) -> SubscriberProcess:
        argv = [
            "--url",
            self.server.ws_url,
            "--token",
            TOKEN,
            "--count",
            str(self.count),
            "--name",
            RESTARTED,
        ]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.subscribers",
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,  # the arrivals of 5,000 subscribers come as one line
        )
        self.pid = int((await self._read(300))["pid"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        with contextlib.suppress(Exception):
            self._send(close=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 60)
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def _send(self, **command: Any) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("bench.subscribers ended early")
        return dict(json.loads(line))

    async def restart(self, client: httpx.AsyncClient) -> list[float]:
        """Restart RESTARTED through the API: how long until each subscriber had its new PID."""
        self._send(arm=self.pid)
        await self._read(30)
        start = time.monotonic()
        mutation = (
            'mutation { restartService(name: "nginx") { ... on RestartSucceeded { service { mainPid } } } }'
        )
        self.pid = (await query(client, self.server.url, mutation))["restartService"]["service"]["mainPid"]
        arrivals = (await self._read(90))["arrivals"]
        return [arrival - start for arrival in arrivals]


async def latency_rows(report: Report, server: Server, sandbox: UserManagerSandbox, scale: float) -> None:
    count = max(50, int(500 * scale))
    async with ReplayClient(server.url, SERVICES_QUERY, HEADERS) as replay:
        await replay.request()
        ours, bare = await timed_pair(replay.request, lambda: bare_show(sandbox), count)
    for p, goal in ((50, 0.1), (99, None)):
        ratio = percentile(ours, p) / percentile(bare, p)
        report.add(
            f"1 p{p}",
            "`services` latency, 1 client",
            ms(percentile(ours, p)),
            f"{ms(percentile(bare, p))} bare `systemctl show`",
            f"{ratio:.3f}x",
            f"<= {goal}x" if goal else "-",
            ratio <= goal if goal else None,
        )


async def process_rows(report: Report, server: Server, client: httpx.AsyncClient, max_age: float) -> None:
    before = (await server.stats(client))["spawned"]
    start = time.monotonic()
    async with ReplayClient(server.url, SERVICES_QUERY, HEADERS) as replay:
        for _ in range(1000):
            await replay.request()
    allowed = 1 + math.ceil((time.monotonic() - start) / max_age)
    spawned = (await server.stats(client))["spawned"] - before
    report.add(
        "1 procs",
        "processes for 1,000 sequential unchanged `services`",
        str(spawned),
        "1000 (one per query)",
        f"{spawned / 1000:.3f}x",
        f"<= {allowed} (1 + memory refreshes)",
        spawned <= allowed,
    )


async def alias_row(report: Report, server: Server, client: httpx.AsyncClient) -> None:
    aliases = " ".join(
        f'a{i}: service(name: "{name}") {{ __typename }}' for i, name in enumerate(sorted(DEFAULT_ALLOWLIST))
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
        "<= 1",
        spawned <= 1,
    )


async def throughput_rows(report: Report, server: Server, sandbox: UserManagerSandbox, scale: float) -> None:
    seconds = 3.0 * scale
    rates: dict[int, float] = {}
    for clients in (1, 16, 64):
        async with contextlib.AsyncExitStack() as stack:
            replays = [
                await stack.enter_async_context(ReplayClient(server.url, SERVICES_QUERY, HEADERS))
                for _ in range(clients)
            ]
            ours_rate = await throughput([replay.request for replay in replays], seconds)
        rates[clients] = ours_rate
        naive_rate = await throughput([lambda: naive_request(sandbox)] * clients, seconds)
        ratio = ours_rate / naive_rate
        last = clients == 64
        report.add(
            f"2 c{clients}",
            f"`services` throughput, {clients} clients",
            f"{ours_rate:.0f} req/s",
            f"{naive_rate:.1f} req/s naive cat+show per unit",
            f"{ratio:.1f}x",
            f">= 50x and >= c16 ({rates[16]:.0f} req/s)" if last else "-",
            ratio >= 50 and ours_rate >= rates[16] if last else None,
        )


async def subscriber_rows(
    report: Report, server: Server, client: httpx.AsyncClient, count: int, quick: bool, row: str, goal: float
) -> None:
    rss_before = (await server.stats(client))["rss"]
    async with SubscriberProcess(server, count) as subs:
        per_subscriber = ((await server.stats(client))["rss"] - rss_before) / count
        latencies: list[float] = []
        reads: list[int] = []
        for _ in range(3 if quick else 5):
            reads_before = (await server.stats(client))["reads"]
            latencies += await subs.restart(client)
            reads.append((await server.stats(client))["reads"] - reads_before)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    report.add(f"{row} p50", f"restart -> all {count} subscribers have it", ms(p50), "-", "-", "-", None)
    report.add(
        f"{row} p99",
        f"restart -> all {count} subscribers have it",
        ms(p99),
        "-",
        "-",
        f"<= {goal * 1000:.0f} ms",
        p99 <= goal,
    )
    worst = max(reads)
    report.add(
        f"{row} reads",
        "status reads per change",
        f"{worst} (worst of {len(reads)})",
        f"{count} (one per subscriber)",
        f"{worst / count:.4f}x",
        "1",
        worst == 1,
    )
    report.add(
        f"{row} mem",
        "memory per subscriber",
        f"{per_subscriber / 1024:.1f} KiB",
        "-",
        "-",
        "<= 40 KiB" if row == "4" else "-",
        per_subscriber <= 40 * 1024 if row == "4" else None,
    )


async def measure(sandbox: UserManagerSandbox, quick: bool) -> Report:
    report = Report()
    scale = 0.2 if quick else 1.0
    max_age = 2.0
    async with httpx.AsyncClient(
        headers=HEADERS, timeout=120, limits=httpx.Limits(max_connections=200)
    ) as client:
        settings = {
            "memory_interval": 3600,
            "poll_interval": 3600,
            "memory_max_age": max_age,
            "idle_after": 10,
        }
        with unitgate(sandbox, **settings) as server:
            await latency_rows(report, server, sandbox, scale)
            await process_rows(report, server, client, max_age)
            await throughput_rows(report, server, sandbox, scale)
            await alias_row(report, server, client)
            await subscriber_rows(report, server, client, int(1000 * scale), quick, "4", goal=0.3)
            await subscriber_rows(report, server, client, int(5000 * scale), quick, "4b", goal=1.5)

            # 6a. idle cost, nobody subscribed and no query for idle_after
            await wait_idle(server, client)
            window = 20.0 * scale if not quick else 4.0
            before = (await server.stats(client))["spawned"]
            await asyncio.sleep(window)
            idle = ((await server.stats(client))["spawned"] - before) * 60 / window
            report.add("6 idle", "processes per minute, no client", f"{idle:.1f}", "-", "-", "0", idle == 0)

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
            async with subscribers(server.ws_url, TOKEN, 100, sorted(DEFAULT_ALLOWLIST - ABSENT)):
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


async def wait_idle(server: Server, client: httpx.AsyncClient) -> None:
    """Until the watcher has let go of the bus (idle_after after the last query)."""
    async with asyncio.timeout(120):
        # Another process's state: nothing to wait on but its answer.
        while (await server.stats(client))["mode"] != "idle":  # noqa: ASYNC110
            await asyncio.sleep(1)


async def kill_latencies(server: Server, kills: int) -> list[float]:
    samples = []
    async with subscribers(server.ws_url, TOKEN, 1, [CRASHY]) as (subscriber,):
        for _ in range(kills):
            state = subscriber.latest[CRASHY]
            if state["activeState"] != "active" or not state["mainPid"]:
                await subscriber.wait_for(lambda e: e["activeState"] == "active" and bool(e["mainPid"]))
            pid = subscriber.latest[CRASHY]["mainPid"]
            waiting = asyncio.create_task(subscriber.wait_for(functools.partial(pid_gone, pid)))
            await asyncio.sleep(0)
            start = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            samples.append(await waiting - start)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer samples and shorter windows (a smoke run)"
    )
    parser.add_argument("--fleet-only", action="store_true", help="only the fleet's rows")
    parser.add_argument("--no-fleet", action="store_true", help="only the single host's rows")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    with UserManagerSandbox(units(), start=list(units())) as sandbox:
        report = Report() if args.fleet_only else asyncio.run(measure(sandbox, args.quick))
        if not args.no_fleet:
            with tempfile.TemporaryDirectory(prefix="unitgate-bench-fleet-") as workdir:
                fleet.measure(report, sandbox, Path(workdir), args.quick)
    print(report.render())
    print(f"\n{os.cpu_count()} cores; unitgate, the subscribers and the timing client: one process each")
    failed = [row for row in report.rows if row.passed is False]
    print(f"\n{len(report.rows) - len(failed)} rows met their goal or have none; {len(failed)} missed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
