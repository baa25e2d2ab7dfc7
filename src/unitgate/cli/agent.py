"""What `unitgate agent` does: its settings read and checked in a forked child and handed back
as frozen values, then this host's services bridged to NATS on them. The agent itself never
loads pydantic, which it would hold all its life (about 10 MiB of an idle agent's memory) to
read one file once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import nats

from unitgate.cli.fleet import FleetUsageError, fleet_settings, raise_interrupt
from unitgate.compose import ControlPlan, control_from_plan, control_plan
from unitgate.services.fleet import subjects
from unitgate.services.fleet.agent import Agent, serve_agent
from unitgate.services.fleet.tls import with_tls
from unitgate.services.fleet.wire import HostInfo

T = TypeVar("T")
# The agent writes a status only when more than its memory, CPU or tasks changed: reading
# memory on a timer would start a process every memory_interval for nothing.
AGENT_MEMORY_INTERVAL = 86_400.0


@dataclass(frozen=True, slots=True)
class AgentPlan:
    control: ControlPlan
    instance_name: str
    scope: str
    servers: tuple[str, ...]
    credentials: str
    tls_ca: str | None
    heartbeat_interval: float


class ConfigReadFailed(Exception):
    """The child reading the config gave no plan and no refusal: it died, or hit a bug (whose
    traceback it printed). Said in one line, exit status 1: nothing the user typed was wrong."""


def agent_plan(path: Path | None) -> AgentPlan:
    """The plan of the agent `path` configures (this loads pydantic: see read_in_child)."""
    settings = fleet_settings(path)
    fleet = settings.fleet
    assert fleet is not None
    name = settings.instance_name
    if name is None or subjects.instance_problem(name):
        raise FleetUsageError("instance_name must be set: one name of letters, digits, - and _")
    settings = settings.model_copy(update={"memory_interval": AGENT_MEMORY_INTERVAL})
    return AgentPlan(
        control=control_plan(settings),
        instance_name=name,
        scope=settings.scope,
        servers=tuple(fleet.servers),
        credentials=fleet.credentials,
        tls_ca=fleet.tls_ca,
        heartbeat_interval=fleet.heartbeat_interval,
    )


def run_agent(args: argparse.Namespace) -> int:
    """`unitgate agent`: until SIGTERM or Ctrl-C."""
    try:
        plan = read_in_child(lambda: agent_plan(args.config))
    except ConfigReadFailed as failed:
        print(f"unitgate agent: {failed}", file=sys.stderr)
        return 1

    async def run() -> None:
        control = control_from_plan(plan.control)
        host = HostInfo(
            systemd_version=await control.manager_version(),
            scope=plan.scope,
            services=tuple(control.allowlist.sorted()),
            actions=tuple(sorted(str(verb) for verb in control.enabled)),
        )
        try:
            bridge = Agent(control, host, plan.heartbeat_interval)
            connect = with_tls(nats.connect, plan.tls_ca)
            await serve_agent(connect, bridge, list(plan.servers), plan.credentials)
        finally:
            await control.aclose()

    signal.signal(signal.SIGTERM, raise_interrupt)
    servers = ", ".join(plan.servers)
    print(f"unitgate agent {plan.instance_name}: connecting to {servers}", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


def read_in_child(make: Callable[[], T]) -> T:
    """make()'s answer, computed in a forked child whose memory dies with it; what it raised is
    raised here. The pickle comes from this program's own child over a pipe no one else holds."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        status = 1
        try:
            with os.fdopen(write_end, "wb") as out:
                out.write(_outcome(make))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        data = answer.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise ConfigReadFailed(f"the child reading the config ended with wait status {status} and no answer")
    made, value = pickle.loads(data)  # noqa: S301 (our own child's answer: see the docstring)
    if not made:
        raise value
    return value  # type: ignore[no-any-return]


def _outcome(make: Callable[[], object]) -> bytes:
    from unitgate.config.errors import ConfigError

    try:
        return pickle.dumps((True, make()))
    except (ConfigError, ValueError, KeyboardInterrupt) as refused:  # the CLI's own refusals
        try:
            return pickle.dumps((False, refused))
        except Exception:
            return pickle.dumps((False, ConfigError(str(refused))))
    except BaseException:
        traceback.print_exc()
        return pickle.dumps((False, ConfigReadFailed("reading the config failed: see the traceback above")))
