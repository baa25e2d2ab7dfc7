"""Simulated hosts for the fleet benchmark, many to a process: the agent's real publishing,
key-value and action-serving code (services/fleet/agent.py) over a status source that needs no
systemd (200 managers do not fit on this machine). Driven on stdin, one JSON object a line:
{"change": [["web042", "nginx"], ...]} changes those services at once and answers
{"changed": n, "at": CLOCK_MONOTONIC}; {"close": true} ends it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import nats

from bench.subscribers import commands
from unitgate.config.settings import load_settings
from unitgate.services.errors import ServiceNotAllowed, UnitgateError
from unitgate.services.fleet.agent import Agent, serve_agent
from unitgate.services.fleet.tls import with_tls
from unitgate.services.fleet.wire import HostInfo
from unitgate.services.policy.access import Actor
from unitgate.services.systemd.allowlist import DEFAULT_ALLOWLIST
from unitgate.services.systemd.history import History
from unitgate.services.systemd.logs import LogEntry
from unitgate.services.systemd.status import UnitStatus
from unitgate.services.systemd.units import UnitVerb

SERVICES = sorted(DEFAULT_ALLOWLIST)  # 14 a host
_pids = itertools.count(1000)


def running(name: str) -> UnitStatus:
    return UnitStatus(
        name=name,
        unit_id=f"{name}.service",
        description=f"simulated {name}",
        load_state="loaded",
        active_state="active",
        sub_state="running",
        main_pid=next(_pids),
        memory_bytes=None,
        active_since=datetime.now(UTC),
        restart_count=0,
        unit_file_state="enabled",
        can_reload=True,
    )


class SimulatedHost:
    """The HostControl an agent serves: statuses held in memory, changed on command; an action
    answers at once (a new main process), so the bench times the fleet's path, not systemd's."""

    def __init__(self, name: str) -> None:
        self.instance_name = name
        self.enabled = frozenset(UnitVerb)
        self.statuses = {service: running(service) for service in SERVICES}
        self._listeners: list[asyncio.Queue[UnitStatus]] = []

    def change(self, service: str) -> UnitStatus:
        old = self.statuses[service]
        new = dataclasses.replace(
            old,
            main_pid=next(_pids),
            active_since=datetime.now(UTC),
            restart_count=(old.restart_count or 0) + 1,
        )
        self.statuses[service] = new
        for listener in self._listeners:
            listener.put_nowait(new)
        return new

    async def status_events(
        self, names: Sequence[str] | None, actor: Actor
    ) -> AsyncGenerator[UnitStatus | UnitgateError, None]:
        listener: asyncio.Queue[UnitStatus] = asyncio.Queue()
        self._listeners.append(listener)
        try:
            for status in self.statuses.values():
                yield status
            while True:
                yield await listener.get()
        finally:
            self._listeners.remove(listener)

    async def act(self, verb: UnitVerb, name: str, actor: Actor) -> UnitStatus:
        if name not in self.statuses:
            raise ServiceNotAllowed(name)
        return self.change(name)

    async def logs(self, name: str, lines: int, actor: Actor) -> list[LogEntry]:
        return []

    async def follow_logs(
        self, name: str, actor: Actor, after_cursor: str | None = None
    ) -> AsyncGenerator[LogEntry | UnitgateError, None]:
        await asyncio.Event().wait()
        yield ServiceNotAllowed(name)  # never reached: a simulated host writes no log

    async def history(self, name: str, since: datetime | None, limit: int, actor: Actor) -> History:
        return History(name, (), None, True, instance=self.instance_name)


async def serve(directory: Path, names: list[str]) -> None:
    hosts = {name: SimulatedHost(name) for name in names}
    tasks = []
    for name, host in hosts.items():
        settings = load_settings(directory / f"{name}.toml")
        assert settings.fleet is not None
        info = HostInfo("simulated", "system", tuple(SERVICES), tuple(sorted(str(v) for v in UnitVerb)))
        agent = Agent(host, info, settings.fleet.heartbeat_interval)
        tasks.append(
            asyncio.create_task(
                serve_agent(
                    with_tls(nats.connect, settings.fleet.tls_ca),
                    agent,
                    list(settings.fleet.servers),
                    settings.fleet.credentials,
                )
            )
        )
    print(json.dumps({"ready": len(hosts)}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        async for command in commands():
            at = loop.time()
            for name, service in command["change"]:
                hosts[name].change(service)
            print(json.dumps({"changed": len(command["change"]), "at": at}), flush=True)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_hosts", description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="what `unitgate fleet init` wrote")
    parser.add_argument("names", nargs="+", help="the instances this process simulates")
    args = parser.parse_args()
    asyncio.run(serve(args.dir, args.names))


if __name__ == "__main__":
    main()
