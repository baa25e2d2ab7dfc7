"""What the API can do with services: list, inspect, watch, restart, reload, read their logs.

The facade the resolvers call. It decides nothing about processes itself: it checks who may do
what (access), admits actions (guard), writes the audit, and hands the work to the systemd and
live layers, all built for it by the composition root (app.build_control).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime

from unitgate.services import errors
from unitgate.services.errors import UnitgateError
from unitgate.services.facade import CachedCheck, Health
from unitgate.services.live.log_follower import LogFollowers
from unitgate.services.live.reads import StatusReads
from unitgate.services.live.snapshot import Mode, StatusEvent
from unitgate.services.live.status_stream import status_changes
from unitgate.services.live.watcher import StatusWatcher
from unitgate.services.policy.access import Actor
from unitgate.services.policy.audit import AuditLog
from unitgate.services.policy.guard import ActionGuard
from unitgate.services.policy.timeline import Timeline
from unitgate.services.systemd.allowlist import Allowlist
from unitgate.services.systemd.history import History
from unitgate.services.systemd.journal import Journal
from unitgate.services.systemd.logs import LogEntry, check_cursor
from unitgate.services.systemd.runner import ProcessRunner
from unitgate.services.systemd.status import StateCounts, UnitStatus, count_states, distinct_units
from unitgate.services.systemd.systemctl import Systemctl
from unitgate.services.systemd.units import DEFAULT_ACTIONS, UnitVerb

LogEvent = LogEntry | UnitgateError
RECENT_LOG_LINES = 10  # carried by RestartFailed and ReloadFailed

__all__ = [
    "RECENT_LOG_LINES",
    "WATCHER_MODES",
    "Health",
    "LogEvent",
    "ServiceControl",
    "StatusEvent",
    "UnitStatus",
]

# How the watcher can learn of changes: what /metrics reports, one series each.
WATCHER_MODES: tuple[str, ...] = tuple(str(mode) for mode in Mode)


class ServiceControl:
    def __init__(
        self,
        *,
        systemctl: Systemctl,
        reads: StatusReads,
        watcher: StatusWatcher,
        journal: Journal,
        followers: LogFollowers,
        guard: ActionGuard,
        audit: AuditLog,
        enabled: frozenset[UnitVerb] = DEFAULT_ACTIONS,
        runner: ProcessRunner | None = None,
        instance_name: str = "unitgate",
    ) -> None:
        self.systemctl = systemctl
        self.reads = reads
        self.watcher = watcher
        self.journal = journal
        self.followers = followers
        self.guard = guard
        self.audit = audit
        self.enabled = enabled
        self.instance_name = instance_name
        self.runner = runner if runner is not None else ProcessRunner({})  # its counters, for /metrics
        # A health check anyone may call: one process per interval, not one per request.
        self._version = CachedCheck(self.systemctl.manager_version)
        self.timeline = Timeline(journal, audit.path)

    @property
    def allowlist(self) -> Allowlist:
        return self.systemctl.allowlist

    async def statuses(self, names: Sequence[str]) -> list[UnitStatus]:
        """Status of allowlisted `names` (checked first), in order, from one shared read."""
        return await self.reads.statuses(names)

    async def status_snapshot(self) -> Mapping[str, UnitStatus] | None:
        """What every status read would answer from now: the watcher's snapshot (one object per
        read, so the same object means the same state), or None when that would take a read (a
        process) or reads go to systemctl. Never starts anything: names are still unchecked."""
        return await self.reads.snapshot()

    def status_deadline(self) -> contextlib.AbstractContextManager[None]:
        """One budget for every status read of an operation (see StatusReads.deadline)."""
        return self.reads.deadline()

    def status_snapshot_is(self, statuses: Mapping[str, UnitStatus]) -> bool:
        """Whether `statuses` is still the watcher's latest read."""
        return self.watcher.store.latest.statuses is statuses

    async def list_installed(self, actor: Actor) -> list[UnitStatus]:
        """Every installed allowlisted unit in the caller's scope, once: an allowlisted alias of
        another allowlisted name (mysql of mariadb) is left out here, and still answers by its
        own name."""
        statuses = await self.reads.read_all()
        return distinct_units([s for s in statuses if s.installed and actor.sees(s.name)])

    @staticmethod
    def counts(statuses: Sequence[UnitStatus]) -> StateCounts:
        return count_states(statuses)

    async def get(self, name: str, actor: Actor) -> UnitStatus:
        (status,) = await self.get_many([name], actor)
        if isinstance(status, UnitgateError):
            raise status
        return status

    async def get_many(self, names: Sequence[str], actor: Actor) -> list[UnitStatus | UnitgateError]:
        """One outcome per name, from at most one `systemctl show`: what a DataLoader needs. A
        name outside the caller's scope is ServiceNotAllowed, as one outside the allowlist."""
        reached = [name for name in names if actor.sees(name)]
        found = dict(zip(reached, await self.reads.get_many(reached), strict=True)) if reached else {}
        return [found[name] if name in found else errors.ServiceNotAllowed(name) for name in names]

    async def restart(self, name: str, actor: Actor) -> UnitStatus:
        return await self.act(UnitVerb.RESTART, name, actor)

    async def reload(self, name: str, actor: Actor) -> UnitStatus:
        """Reload a service whose unit says CanReload=yes; ReloadNotSupported elsewhere."""
        return await self.act(UnitVerb.RELOAD, name, actor)

    async def start(self, name: str, actor: Actor) -> UnitStatus:
        return await self.act(UnitVerb.START, name, actor)

    async def stop(self, name: str, actor: Actor) -> UnitStatus:
        """Stop a service; one already inactive is a success with its status, as for systemctl."""
        return await self.act(UnitVerb.STOP, name, actor)

    async def act(self, verb: UnitVerb, name: str, actor: Actor) -> UnitStatus:
        """Offered, in the caller's scope, allowed to it, then the lock and the rate limit; every
        attempt, refused or not, is audited. Nothing runs for a refused one."""
        with self.audit.attempt(str(verb), name, actor):
            if verb not in self.enabled:
                raise errors.ActionNotEnabled(str(verb))
            checked = self._require_service(name, actor)
            if not actor.may(verb):
                scoped = actor.role.may_act()  # an operator whose token leaves this action out
                raise errors.Forbidden(actor.role, str(verb), actor.name if scoped else None)
            with self.guard.reserve(checked):
                # The unit systemd resolves the name to: the lock and the budgets are the unit's.
                status = await self.reads.installed(checked)
                if verb is UnitVerb.RELOAD and not status.can_reload:
                    raise errors.ReloadNotSupported(checked)
                with self.guard.admit(status.unit_id, checked, actor.name):
                    try:
                        return await self.systemctl.act(verb, checked)
                    except errors.ActionFailed as failure:
                        raise failure.with_logs(await self._recent_logs_for_failure(checked)) from None
                    finally:
                        # Whatever the outcome, the unit may have moved: let live dashboards see it.
                        self.watcher.refresh()

    async def _recent_logs_for_failure(self, name: str) -> list[LogEntry]:
        # The reason an action failed is worth one more process; no log is no reason to fail more.
        try:
            return await self.journal.recent(name, RECENT_LOG_LINES)
        except UnitgateError:
            return []

    async def logs(self, name: str, lines: int, actor: Actor) -> list[LogEntry]:
        """The last `lines` journal lines of one service. Logs can hold secrets: operators only,
        and audited."""
        with self.audit.attempt("logs", name, actor):
            checked = self._require_log_access(name, actor)
            await self.reads.installed(checked)
            return await self.journal.recent(checked, lines)

    async def follow_logs(
        self, name: str, actor: Actor, after_cursor: str | None = None
    ) -> AsyncGenerator[LogEvent, None]:
        """New journal lines of one service as they are written; with `after_cursor`, first every
        line since that one. An error ends the stream."""
        try:
            with self.audit.attempt("follow_logs", name, actor):
                checked = self._require_log_access(name, actor)
                if after_cursor is not None:
                    check_cursor(after_cursor)
                await self.reads.installed(checked)
        except UnitgateError as refused:
            yield refused
            return
        try:
            async with self.followers.follow(checked, after_cursor) as subscription:
                async for item in subscription:
                    yield item
        except UnitgateError as failure:
            yield failure

    async def history(self, name: str, since: datetime | None, limit: int, actor: Actor) -> History:
        """What happened to a service, newest first. Anyone who sees the service may read it: it
        holds the manager's words and the actions' askers, never a line of the service's log."""
        checked = self._require_service(name, actor)
        status = await self.reads.installed(checked)
        return await self.timeline.read(checked, status.unit_id, since, limit)

    def _require_log_access(self, name: str, actor: Actor) -> str:
        checked = self._require_service(name, actor)
        if not actor.role.may_read_logs():
            raise errors.Forbidden(actor.role, "logs")
        return checked

    def _require_service(self, name: str, actor: Actor) -> str:
        """Allowlisted and within the caller's scope: outside either it is the same refusal, so a
        scoped token learns nothing about the services it does not reach."""
        checked = self.allowlist.require(name)
        if not actor.sees(checked):
            raise errors.ServiceNotAllowed(checked)
        return checked

    def request_arrived(self) -> None:
        """A request has arrived that may read status: what it reads will be at least as new as
        now (the watcher begins the round trip to systemd that vouches for its snapshot)."""
        self.watcher.arrived()

    def visible(self, actor: Actor) -> list[str]:
        """The allowlisted services the caller reaches, sorted."""
        return [name for name in self.allowlist.sorted() if actor.sees(name)]

    def status_events(self, names: Sequence[str] | None, actor: Actor) -> AsyncGenerator[StatusEvent, None]:
        """The current status of each requested service, then one event per change.

        `names=None` follows every installed service, and an empty list nothing, so that stream
        ends at once. A name that is not allowed or not installed yields its error and ends the
        stream; a failed read later on yields the error and the stream goes on.
        """
        if names is not None and not names:
            return _only()
        try:
            wanted = None
            if names is not None:
                wanted = list(dict.fromkeys(self._require_service(name, actor) for name in names))
        except UnitgateError as refused:
            return _only(refused)
        # The watcher's own stream, not one wrapped around it: a thousand open subscriptions each
        # hold one generator fewer.
        return status_changes(self.watcher, wanted, include=actor.sees)

    @property
    def streams(self) -> int:
        """Subscriptions open now (status and logs), for /metrics."""
        return self.watcher.watchers + self.followers.subscribers

    @property
    def scope(self) -> str:
        return str(self.systemctl.options.scope)

    async def manager_version(self) -> str | None:
        """systemd's version; None when no manager answers (see _version)."""
        version = await self._version()
        return None if isinstance(version, UnitgateError) else version

    async def health(self) -> Health:
        """Whether systemctl reaches the manager (see _version), and how the watcher learns of
        changes."""
        watcher = (str(self.watcher.mode), self.watcher.mode_detail)
        version = await self._version()
        if isinstance(version, UnitgateError):
            return Health(False, str(version), *watcher)
        return Health(True, f"systemd {version}", *watcher)

    async def aclose(self) -> None:
        await self.watcher.stop()
        await self.followers.aclose()
        await self.reads.flights.drain()  # the stopped watcher's read, say: its process is reaped


async def _only(*events: StatusEvent) -> AsyncGenerator[StatusEvent, None]:
    """A stream of just these events (none: a stream that ends at once)."""
    for event in events:
        yield event
