"""The fleet part of `make bench`: a real nats-server with JetStream, the hub under uvicorn as its
own process, simulated hosts (bench/fleet_hosts.py: the real agent over statuses in memory) at
50, 100 and 200 hosts of 14 services, 1,000 dashboards on their own loopback addresses, and one
real agent on the bench's systemd. Every row is printed at each size."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
from tests.helpers import fleet_init, free_port

from bench.fleet_hosts import SERVICES
from bench.fleet_page import card_latencies
from bench.http_client import ReplayClient
from unitgate.deploy.install import set_key
from unitgate.sandbox import demo_fleet
from unitgate.sandbox.manager import UserManagerSandbox

HOSTS_PER_PROCESS = 50
SUBSCRIBERS = 1000
CHANGED = 20  # hosts whose nginx the subscribers follow, and that change at once


class Report(Protocol):
    def add(self, *cells: Any) -> None: ...


def names(count: int) -> list[str]:
    return [f"web{i:03d}" for i in range(1, count + 1)]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def private_kib(pid: int) -> int:
    """What the process alone holds (USS): its RSS less the library pages other processes share."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    )
    return int(fields["Private_Clean"].split()[0]) + int(fields["Private_Dirty"].split()[0])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found.update(int(child) for child in (task / "children").read_text().split())
    return found


def children_started(pid: int, seconds: float) -> int:
    """The child processes `pid` starts over `seconds`, looked for every 2 ms (a systemctl lives
    longer than that): this process's own, whatever else the machine runs meanwhile."""
    before = children(pid)
    seen: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen |= children(pid)
        time.sleep(0.002)
    return len(seen - before)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


class Lines:
    """A child process spoken to in JSON lines on stdin and stdout."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, stderr=subprocess.DEVNULL
        )

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.process.args!r} ended")
        return dict(json.loads(line))

    def send(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None
            self.process.stdin.write('{"close": true}\n')
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Fleet:
    def __init__(self, directory: Path, count: int) -> None:
        self.directory, self.count = directory, count
        self.nats_port, self.monitor_port, self.hub_port = free_port(), free_port(), free_port()
        self.token = fleet_init(
            directory, ",".join(["real1", *names(count)]), f"nats://127.0.0.1:{self.nats_port}"
        )
        config = directory / "nats-server.conf"
        config.write_text(config.read_text() + f'http: "127.0.0.1:{self.monitor_port}"\n')
        hub = directory / "hub.toml"
        hub.write_text(set_key(hub.read_text(), "port", str(self.hub_port)))
        self.url = f"http://127.0.0.1:{self.hub_port}/graphql"
        self.hosts: dict[str, Lines] = {}
        self.agent_env: dict[str, str] = {}  # where the real agent finds its manager

    def connections(self) -> dict[str, dict[str, Any]]:
        """nats-server's own count of each client's messages, by the client's name."""
        answer = httpx.get(f"http://127.0.0.1:{self.monitor_port}/connz?limit=4096", timeout=30).json()
        return {c.get("name", ""): c for c in answer.get("connections", [])}

    def host_process(self, name: str) -> Lines:
        return self.hosts[name]


@contextlib.contextmanager
def running_fleet(directory: Path, count: int, sandbox: UserManagerSandbox) -> Iterator[Fleet]:
    fleet = Fleet(directory, count)
    with contextlib.ExitStack() as stack:
        stack.callback(
            demo_fleet.stop, demo_fleet.start_nats(directory / "nats-server.conf", fleet.nats_port)
        )
        all_names = names(count)
        for start in range(0, count, HOSTS_PER_PROCESS):
            chunk = all_names[start : start + HOSTS_PER_PROCESS]
            process = Lines([sys.executable, "-m", "bench.fleet_hosts", "--dir", str(directory), *chunk])
            stack.callback(process.close)
            assert process.read()["ready"] == len(chunk)
            fleet.hosts.update(dict.fromkeys(chunk, process))
        # One real agent too, on the bench's own systemd: its cost is the one a web server pays.
        config = directory / "real1.toml"
        head, table = config.read_text().split("[fleet]\n", 1)
        config.write_text(head + 'scope = "user"\n[fleet]\n' + table)
        real = subprocess.Popen(
            [sys.executable, "-m", "unitgate", "agent", "--config", str(config)],
            env={**os.environ, **sandbox.env},
            stderr=subprocess.DEVNULL,
        )
        stack.callback(demo_fleet.stop, real)
        fleet.real_agent = real  # type: ignore[attr-defined]
        fleet.agent_env = sandbox.env
        yield fleet


def hub_process(fleet: Fleet) -> tuple[subprocess.Popen[bytes], float]:
    """The hub as its own process, and how long from its start to a complete view: every
    host's statuses in, and every host online."""
    started = time.monotonic()
    hub = subprocess.Popen(
        [sys.executable, "-m", "unitgate", "hub", "--config", str(fleet.directory / "hub.toml")],
        stderr=subprocess.DEVNULL,
    )
    wanted = (fleet.count + 1) * len(SERVICES)
    query = {"query": "{ instances { online } services { ... on ServiceList { total } } }"}
    headers = {"Authorization": f"Bearer {fleet.token}"}
    while True:  # another process's state: ask until it is whole
        with contextlib.suppress(httpx.TransportError, KeyError, TypeError):
            data = httpx.post(fleet.url, json=query, headers=headers, timeout=10).json()["data"]
            instances = data["instances"]
            if (
                data["services"]["total"] >= wanted - len(SERVICES)  # the real agent has fewer than 14
                and len(instances) == fleet.count + 1
                and all(instance["online"] for instance in instances)
            ):
                return hub, time.monotonic() - started
        if time.monotonic() - started > 120:
            raise RuntimeError("the hub's view did not fill")
        time.sleep(0.01)


def stop_hub(hub: subprocess.Popen[bytes]) -> None:
    hub.send_signal(signal.SIGTERM)
    hub.wait(30)


async def replay_p50(url: str, document: str, token: str, count: int) -> float:
    samples = []
    async with ReplayClient(url, document, {"Authorization": f"Bearer {token}"}) as client:
        for _ in range(count):
            started = time.perf_counter()
            await client.request()
            samples.append(time.perf_counter() - started)
    return percentile(samples, 50)


def changes(fleet: Fleet, targets: list[str]) -> float:
    """nginx changed on every target host at once (per process, one command); when it began."""
    by_process: dict[int, list[list[str]]] = {}
    for name in targets:
        by_process.setdefault(id(fleet.hosts[name]), []).append([name, "nginx"])
    processes = {id(p): p for p in fleet.hosts.values()}
    stamps = [float(processes[key].send(change=batch)["at"]) for key, batch in by_process.items()]
    return min(stamps)


def measure(report: Report, sandbox: UserManagerSandbox, workdir: Path, quick: bool) -> None:
    sizes = (50,) if quick else (50, 100, 200)
    rss_by_size: dict[int, int] = {}
    for count in sizes:
        directory = workdir / f"fleet-{count}"
        directory.mkdir()
        with running_fleet(directory, count, sandbox) as fleet:
            # The fleet's first hub makes the bucket the hosts wait for; the one measured is a
            # hub started again over a running fleet.
            first_hub, first = hub_process(fleet)
            stop_hub(first_hub)
            hub, cold = hub_process(fleet)
            try:
                rows_at(report, fleet, hub, (first, cold), count, rss_by_size, quick)
            finally:
                stop_hub(hub)


def rows_at(
    report: Report, fleet: Fleet, hub: subprocess.Popen[bytes], starts: tuple[float, float], count: int,
    rss_by_size: dict[int, int], quick: bool,
) -> None:  # fmt: skip
    tag = f"F{count}"
    first, cold = starts
    report.add(
        f"{tag} cold",
        f"a restarted hub to a complete view (statuses in, hosts online), {count} hosts",
        f"{cold:.2f} s",
        f"{first:.2f} s the fleet's first hub",
        "-",
        "<= 2 s",
        cold <= 2,
    )
    samples = 50 if quick else 300
    every = asyncio.run(
        replay_p50(
            fleet.url,
            "{ services { ... on ServiceList { total services { id activeState mainPid } } } }",
            fleet.token,
            samples,
        )
    )
    report.add(
        f"{tag} all",
        f"hub services over {count * 14} services, p50",
        f"{every * 1000:.1f} ms",
        "-",
        "-",
        "<= 15 ms",
        every <= 0.015,
    )
    one = asyncio.run(
        replay_p50(
            fleet.url,
            '{ services(instances: ["web042"]) { ... on ServiceList { total } } }',
            fleet.token,
            samples,
        )
    )
    report.add(
        f"{tag} one",
        'hub services(instances: ["web042"]), p50',
        f"{one * 1000:.2f} ms",
        "-",
        "-",
        "<= 2 ms",
        one <= 0.002,
    )
    act = asyncio.run(
        replay_p50(
            fleet.url,
            'mutation { restartService(name: "nginx", instance: "web007") { __typename } }',
            fleet.token,
            20 if quick else 100,
        )
    )
    report.add(
        f"{tag} act",
        "action through the hub to an agent and back, p50",
        f"{act * 1000:.1f} ms",
        "-",
        "-",
        "<= 5 ms",
        act <= 0.005,
    )
    rss_by_size[count] = rss_kib(hub.pid)
    first = min(rss_by_size)
    if count == first:  # a slope needs two sizes: the whole RSS holds Python and the app too
        report.add(f"{tag} rss", "hub RSS", f"{rss_by_size[count] // 1024} MiB", "-", "-", "-", None)
    else:
        per_host = (rss_by_size[count] - rss_by_size[first]) / (count - first)
        text = f"{per_host:.0f} KiB (from {first} to {count} hosts)"
        report.add(
            f"{tag} rss",
            "hub RSS per host",
            text,
            f"{rss_by_size[count] // 1024} MiB in all",
            "-",
            "<= 100 KiB",
            per_host <= 100,
        )
    messages_per_change(report, fleet, tag)
    subscribers_rows(report, fleet, tag, quick)
    page_row(report, fleet, tag, quick)
    if count == 50:
        real_agent_rows(report, fleet, quick)


def messages_per_change(report: Report, fleet: Fleet, tag: str) -> None:
    """What one status change costs NATS, counted by nats-server itself on the host's connection."""
    name = "unitgate-agent-web013"
    before = fleet.connections()[name]["in_msgs"]
    started = time.monotonic()
    rounds = 20
    for _ in range(rounds):
        changes(fleet, ["web013"])
        time.sleep(0.05)
    time.sleep(0.5)  # the last write lands
    after = fleet.connections()[name]["in_msgs"]
    heartbeats = (time.monotonic() - started) / 2.0  # one each heartbeat_interval (2 s)
    per_change = (after - before - heartbeats) / rounds
    report.add(
        f"{tag} msgs",
        "NATS messages per status change",
        f"{per_change:.2f}",
        "-",
        "-",
        "<= 2",
        per_change <= 2.0,
    )


def subscribers_rows(report: Report, fleet: Fleet, tag: str, quick: bool) -> None:
    targets = [f"web{i:03d}" for i in range(1, CHANGED + 1)]
    count = 100 if quick else SUBSCRIBERS
    dashboards = Lines(
        [sys.executable, "-m", "bench.fleet_subscribers", "--url", fleet.url.replace("http", "ws"),
         "--token", fleet.token, "--count", str(count), *targets]
    )  # fmt: skip
    try:
        pids = dashboards.read()["pids"]
        singles: list[float] = []
        for round_ in range(3 if quick else 10):
            host = targets[round_ % len(targets)]
            assert dashboards.send(arm={f"{host}/nginx": pids[f"{host}/nginx"]})["armed"]
            began = changes(fleet, [host])
            answer = dashboards.read()
            singles.append(max(answer["arrivals"]) - began)
            pids = answer["pids"]
        p99 = percentile(singles, 99)
        report.add(
            f"{tag} one->all",
            f"one host's change -> all {count} subscribers, p99",
            f"{p99 * 1000:.0f} ms",
            "-",
            "-",
            "<= 250 ms",
            p99 <= 0.25,
        )
        bursts: list[float] = []
        for _ in range(2 if quick else 5):
            assert dashboards.send(arm={f"{h}/nginx": pids[f"{h}/nginx"] for h in targets})["armed"]
            began = changes(fleet, targets)
            answer = dashboards.read()
            bursts.append(max(answer["arrivals"]) - began)
            pids = answer["pids"]
        p99 = percentile(bursts, 99)
        report.add(
            f"{tag} 20->all",
            f"{CHANGED} hosts change at once -> all {count} have all, p99",
            f"{p99 * 1000:.0f} ms",
            "-",
            "-",
            "<= 1 s",
            p99 <= 1.0,
        )
    finally:
        dashboards.close()


def page_row(report: Report, fleet: Fleet, tag: str, quick: bool) -> None:
    def send_change(host: str, service: str) -> None:
        fleet.hosts[host].send(change=[[host, service]])

    base = fleet.url.removesuffix("/graphql")
    cards, latencies = card_latencies(base, fleet.token, names(fleet.count), send_change, 10 if quick else 40)
    p95 = percentile(latencies, 95)
    report.add(
        f"{tag} page",
        f"dashboard, {cards} cards: status event -> its card, next frame, p95",
        f"{p95:.1f} ms",
        f"p50 {percentile(latencies, 50):.1f} ms",
        "-",
        "<= 100 ms",
        p95 <= 100,
    )


@contextlib.contextmanager
def agent_floor(fleet: Fleet) -> Iterator[subprocess.Popen[bytes]]:
    """bench/agent_floor.py on the real agent's own server, key, CA and bus, ready."""
    config = tomllib.loads((fleet.directory / "real1.toml").read_text())
    argv = [sys.executable, "-m", "bench.agent_floor", config["fleet"]["servers"][0]]
    argv += [config["fleet"]["credentials"], config["fleet"]["tls_ca"], "real1"]
    floor = subprocess.Popen(argv, env={**os.environ, **fleet.agent_env}, stdout=subprocess.PIPE)
    try:
        assert floor.stdout is not None
        if floor.stdout.readline().strip() != b"ready":
            raise RuntimeError("the agent's floor did not connect")
        yield floor
    finally:
        floor.kill()
        floor.wait()


def real_agent_rows(report: Report, fleet: Fleet, quick: bool) -> None:
    with agent_floor(fleet) as floor:
        idle_agent_rows(report, fleet, floor, quick)


def idle_agent_rows(report: Report, fleet: Fleet, floor: subprocess.Popen[bytes], quick: bool) -> None:
    agent = fleet.real_agent  # type: ignore[attr-defined]
    time.sleep(3)  # its first writes are done
    window = 20.0 if quick else 600.0  # the ten idle minutes
    name = "unitgate-agent-real1"
    messages, cpu = fleet.connections()[name]["in_msgs"], cpu_seconds(agent.pid)
    running = len(children(agent.pid))
    started = children_started(agent.pid, window)
    beyond = fleet.connections()[name]["in_msgs"] - messages - window / 2.0
    used = (cpu_seconds(agent.pid) - cpu) / window * 100
    per_minute = 60 / window
    report.add(
        "A idle",
        f"an idle agent: processes started per minute ({running} running)",
        f"{started * per_minute:.1f}",
        "-",
        "-",
        "0",
        started == 0,
    )
    report.add(
        "A msgs",
        "an idle agent: NATS messages per minute, beyond a heartbeat",
        f"{max(0.0, beyond) * per_minute:.1f}",
        "-",
        "-",
        "0",
        beyond < 1,
    )
    rss, own, base = rss_kib(agent.pid), private_kib(agent.pid), rss_kib(floor.pid)
    report.add(
        "A rss",
        f"one real agent's RSS on the bench's units (USS {own / 1024:.1f} MiB)",
        f"{rss / 1024:.1f} MiB",
        f"{base / 1024:.1f} MiB its libraries alone, connected (bench/agent_floor.py)",
        f"{rss / base:.2f}",
        "<= 30 MiB",
        rss <= 30 * 1024,
    )
    report.add(
        "A cpu",
        f"one real agent's CPU, idle over {window:.0f} s",
        f"{used:.3f} %",
        "-",
        "-",
        "<= 0.1 %",
        used <= 0.1,
    )


def fleet_targets(count: int) -> list[str]:
    return random.sample(names(count), CHANGED)
