"""The composition root of the services layer: every collaborator of a ServiceControl made
from the settings. Used by `serve` and by `agent`, which imports nothing of the GraphQL layer
(nor pydantic: it is given a ControlPlan made in a child, see cli/agent.py)."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from unitgate.services.live.log_follower import LogFollowers
from unitgate.services.live.reads import StatusReads
from unitgate.services.live.snapshot import WatcherTimings
from unitgate.services.live.watcher import StatusWatcher
from unitgate.services.policy.audit import AuditLog
from unitgate.services.policy.control import ServiceControl
from unitgate.services.policy.guard import ActionGuard, RateLimit
from unitgate.services.systemd.allowlist import Allowlist
from unitgate.services.systemd.bus import SystemdSignals, bus_address
from unitgate.services.systemd.journal import Journal, JournalOptions
from unitgate.services.systemd.process_state import killed_or_gone
from unitgate.services.systemd.route import ProcessFacts, RestartVia, choose_route, read_facts
from unitgate.services.systemd.runner import ProcessRunner, ProcessSlots
from unitgate.services.systemd.status import UnitStatus
from unitgate.services.systemd.systemctl import Systemctl, SystemctlOptions, systemctl_environment
from unitgate.services.systemd.units import Scope, UnitVerb

if TYPE_CHECKING:
    from unitgate.config.settings import Settings


@dataclass(frozen=True, slots=True)
class ControlPlan:
    """What a ServiceControl is made of: the settings' values as the services layer takes them,
    frozen and free of pydantic (so they pickle, and an agent can run without loading it)."""

    scope: Scope
    sudo_path: str
    restart_via: RestartVia
    allowlist: Allowlist
    max_processes: int
    max_process_queue: int
    systemctl: SystemctlOptions
    journal: JournalOptions
    action_limit: RateLimit
    unit_limit: RateLimit
    dbus_events: bool
    timings: WatcherTimings
    memory_max_age: float
    audit_file: str | None
    enabled: frozenset[UnitVerb]
    instance_name: str


def control_plan(settings: Settings) -> ControlPlan:
    return ControlPlan(
        scope=Scope(settings.scope),
        sudo_path=settings.sudo_path,
        restart_via=settings.route(),
        allowlist=settings.build_allowlist(),
        max_processes=settings.max_processes,
        max_process_queue=settings.max_process_queue,
        systemctl=settings.systemctl_options(),
        journal=settings.journal_options(),
        action_limit=settings.action_rate_limit(),
        unit_limit=settings.unit_rate_limit(),
        dbus_events=settings.dbus_events,
        timings=settings.watcher_timings(),
        memory_max_age=settings.memory_max_age,
        audit_file=settings.audit_file,
        enabled=settings.enabled_actions(),
        instance_name=settings.instance_name or socket.gethostname(),
    )


def build_control(
    settings: Settings, environ: Mapping[str, str] | None = None, facts: ProcessFacts | None = None
) -> ServiceControl:
    """The ServiceControl of these settings (see control_from_plan)."""
    return control_from_plan(control_plan(settings), environ, facts)


def control_from_plan(
    plan: ControlPlan, environ: Mapping[str, str] | None = None, facts: ProcessFacts | None = None
) -> ServiceControl:
    """The composition root of the services layer: every collaborator is made here, from the
    plan; `environ` is where the user manager is found, `facts` what this process may do
    (RouteUnusable when no restart route can work in it)."""
    scope = plan.scope
    environ = os.environ if environ is None else environ
    facts = read_facts(plan.sudo_path) if facts is None else facts
    route = choose_route(plan.restart_via, scope, facts)
    allowlist = plan.allowlist
    slots = ProcessSlots(plan.max_processes, plan.max_process_queue)
    runner = ProcessRunner(systemctl_environment(scope, environ), slots=slots)
    systemctl = Systemctl(allowlist, runner, plan.systemctl, route)
    journal = Journal(allowlist, runner, plan.journal)
    wrapper_reads = StatusReads(systemctl)
    guard = ActionGuard(plan.action_limit, plan.unit_limit)
    bus = bus_address(scope, environ)
    signals = SystemdSignals(scope, bus, allowlist.names) if plan.dbus_events else None
    watcher = StatusWatcher(
        wrapper_reads.read_all,
        plan.timings,
        signals,
        # An action through the API makes its own signals; its own refresh covers them.
        accept_signal=lambda name: not guard.in_flight(name),
        dying=killed_or_gone,
    )

    # Queries answer from the watcher's snapshot while the bus vouches for it (dbus_events), and
    # while it is at most memory_max_age old when they show memory.
    def fresh(read: bool = True, memory: bool = True) -> Awaitable[Mapping[str, UnitStatus] | None]:
        return watcher.fresh(plan.memory_max_age if memory else math.inf, read)

    reads = wrapper_reads.with_snapshot(fresh)
    return ServiceControl(
        systemctl=systemctl,
        reads=reads,
        watcher=watcher,
        journal=journal,
        followers=LogFollowers(journal),
        guard=guard,
        audit=AuditLog(Path(plan.audit_file) if plan.audit_file else None),
        enabled=plan.enabled,
        runner=runner,
        instance_name=plan.instance_name,
    )
