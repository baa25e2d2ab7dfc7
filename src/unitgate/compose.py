"""The composition root of the services layer: every collaborator of a ServiceControl made
from the settings. Used by `serve` and by `agent`, which imports nothing of the GraphQL layer."""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from unitgate.config.settings import Settings
from unitgate.services.live.log_follower import LogFollowers
from unitgate.services.live.reads import StatusReads
from unitgate.services.live.watcher import StatusWatcher
from unitgate.services.policy.audit import AuditLog
from unitgate.services.policy.control import ServiceControl
from unitgate.services.policy.guard import ActionGuard
from unitgate.services.systemd.bus import SystemdSignals, bus_address
from unitgate.services.systemd.journal import Journal
from unitgate.services.systemd.process_state import killed_or_gone
from unitgate.services.systemd.route import ProcessFacts, choose_route, read_facts
from unitgate.services.systemd.runner import ProcessRunner, ProcessSlots
from unitgate.services.systemd.systemctl import Systemctl, systemctl_environment
from unitgate.services.systemd.units import Scope


def build_control(
    settings: Settings, environ: Mapping[str, str] | None = None, facts: ProcessFacts | None = None
) -> ServiceControl:
    """The composition root of the services layer: every collaborator is made here, from
    settings; `environ` is where the user manager is found, `facts` what this process may do
    (RouteUnusable when no restart route can work in it)."""
    scope = Scope(settings.scope)
    environ = os.environ if environ is None else environ
    facts = read_facts(settings.sudo_path) if facts is None else facts
    route = choose_route(settings.route(), scope, facts)
    allowlist = settings.build_allowlist()
    slots = ProcessSlots(settings.max_processes, settings.max_process_queue)
    runner = ProcessRunner(systemctl_environment(scope, environ), slots=slots)
    systemctl = Systemctl(allowlist, runner, settings.systemctl_options(), route)
    journal = Journal(allowlist, runner, settings.journal_options())
    wrapper_reads = StatusReads(systemctl)
    guard = ActionGuard(settings.action_rate_limit(), settings.unit_rate_limit())
    signals = (
        SystemdSignals(scope, bus_address(scope, environ), allowlist.names) if settings.dbus_events else None
    )
    watcher = StatusWatcher(
        wrapper_reads.read_all,
        settings.watcher_timings(),
        signals,
        # An action through the API makes its own signals; its own refresh covers them.
        accept_signal=lambda name: not guard.in_flight(name),
        dying=killed_or_gone,
    )
    # Queries answer from the watcher's snapshot while the bus vouches for it (dbus_events).
    reads = wrapper_reads.with_snapshot(functools.partial(watcher.fresh, settings.memory_max_age))
    return ServiceControl(
        systemctl=systemctl,
        reads=reads,
        watcher=watcher,
        journal=journal,
        followers=LogFollowers(journal),
        guard=guard,
        audit=AuditLog(Path(settings.audit_file) if settings.audit_file else None),
        enabled=settings.enabled_actions(),
        runner=runner,
        instance_name=settings.instance_name or socket.gethostname(),
    )
