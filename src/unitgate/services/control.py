"""What the API can do with services: list, inspect, watch, restart, reload, read their logs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass

from unitgate.services import errors
from unitgate.services.access import Actor
from unitgate.services.allowlist import Allowlist
from unitgate.services.audit import AuditLog, AuditRecord, now
from unitgate.services.errors import ServiceNotFound, UnitgateError
from unitgate.services.guard import RateLimit, RestartGuard
from unitgate.services.journal import Journal, LogEntry, check_cursor
from unitgate.services.log_follower import LogFollowers
from unitgate.services.singleflight import SingleFlight
from unitgate.services.status import StateCounts, UnitStatus, count_states
from unitgate.services.systemctl import Systemctl, UnitVerb
from unitgate.services.watcher import StatusWatcher, UnitSignals, WatcherTimings

StatusEvent = UnitStatus | UnitgateError
LogEvent = LogEntry | UnitgateError
RECENT_LOG_LINES = 10  # carried by RestartFailed and ReloadFailed

# What the audit log says of each way a restart can end.
_OUTCOMES: dict[type[UnitgateError], str] = {
    errors.Forbidden: "forbidden",
    errors.ServiceNotAllowed: "not_allowed",
    errors.ServiceNotFound: "not_found",
    errors.RestartInProgress: "in_progress",
    errors.RateLimited: "rate_limited",
    errors.RestartFailed: "failed",
    errors.ReloadFailed: "failed",
    errors.ReloadNotSupported: "not_supported",
    errors.JournalUnavailable: "journal_unavailable",
    errors.InvalidCursor: "invalid_cursor",
    errors.SystemctlTimeout: "timeout",
    errors.SystemdUnavailable: "unavailable",
}


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str
    watcher: str
    watcher_detail: str


class ServiceControl:
    def __init__(
        self,
        systemctl: Systemctl,
        timings: WatcherTimings,
        restart_limit: RateLimit,
        audit: AuditLog,
        journal: Journal,
        signals: UnitSignals | None = None,
    ) -> None:
        self.systemctl = systemctl
        self.journal = journal
        self.followers = LogFollowers(journal)
        self.guard = RestartGuard(restart_limit)
        self.audit = audit
        self.reads: SingleFlight[tuple[str, ...], list[UnitStatus]] = SingleFlight()
        self._health: SingleFlight[str, str] = SingleFlight()
        self.watcher = StatusWatcher(self._read_all, timings, signals)
        # A restart through the API makes its own signals; its own refresh covers them.
        self.watcher.accept_signal = lambda name: not self.guard.in_flight(name)

    @property
    def allowlist(self) -> Allowlist:
        return self.systemctl.allowlist

    async def statuses(self, names: Sequence[str]) -> list[UnitStatus]:
        """Status of allowlisted `names` (checked first), in order, from one `systemctl show`
        shared with every concurrent caller asking for the same set."""
        checked = [self.allowlist.require(name) for name in names]
        key = tuple(sorted(set(checked)))
        by_name = {
            status.name: status for status in await self.reads.do(key, lambda: self.systemctl.show(key))
        }
        return [by_name[name] for name in checked]

    async def _read_all(self) -> list[UnitStatus]:
        return await self.statuses(self.allowlist.sorted())

    async def list_installed(self) -> list[UnitStatus]:
        return [status for status in await self._read_all() if status.installed]

    @staticmethod
    def counts(statuses: Sequence[UnitStatus]) -> StateCounts:
        return count_states(statuses)

    async def get(self, name: str) -> UnitStatus:
        (status,) = await self.get_many([name])
        if isinstance(status, UnitgateError):
            raise status
        return status

    async def get_many(self, names: Sequence[str]) -> list[UnitStatus | UnitgateError]:
        """One outcome per name, from at most one `systemctl show` for the allowed ones: what a
        DataLoader batch needs, where one bad name must not fail the others."""
        outcomes: dict[str, UnitStatus | UnitgateError] = {}
        allowed = []
        for name in names:
            if name in self.allowlist:
                allowed.append(name)
            else:
                outcomes[name] = errors.ServiceNotAllowed(name)
        if allowed:
            for status in await self.statuses(allowed):
                outcomes[status.name] = status if status.installed else ServiceNotFound(status.name)
        return [outcomes[name] for name in names]

    async def restart(self, name: str, actor: Actor) -> UnitStatus:
        return await self._act(UnitVerb.RESTART, name, actor)

    async def reload(self, name: str, actor: Actor) -> UnitStatus:
        """Reload a service whose unit says CanReload=yes; ReloadNotSupported elsewhere."""
        return await self._act(UnitVerb.RELOAD, name, actor)

    async def _act(self, verb: UnitVerb, name: str, actor: Actor) -> UnitStatus:
        """Role, allowlist, lock and rate limit first; every attempt, refused or not, is audited."""
        with self._audited(str(verb), name, actor):
            if not actor.role.may_restart():
                raise errors.Forbidden(actor.role, f"{verb} services")
            checked = self.allowlist.require(name)
            if verb is UnitVerb.RELOAD:
                (current,) = await self.statuses([checked])
                if not current.installed:
                    raise ServiceNotFound(checked)
                if not current.can_reload:
                    raise errors.ReloadNotSupported(checked)
            with self.guard.admit(checked):
                try:
                    return await self.systemctl.act(verb, checked)
                except errors.ActionFailed as failure:
                    failure.recent_logs = list(await self._recent_logs_for_failure(checked))
                    raise
                finally:
                    # Whatever the outcome, the unit may have moved: let live dashboards see it now.
                    self.watcher.refresh()

    async def _recent_logs_for_failure(self, name: str) -> list[LogEntry]:
        # The reason a restart failed is worth one more process; no log is no reason to fail more.
        try:
            return await self.journal.recent(name, RECENT_LOG_LINES)
        except UnitgateError:
            return []

    async def logs(self, name: str, lines: int, actor: Actor) -> list[LogEntry]:
        """The last `lines` journal lines of one service. Logs can hold secrets: operators only,
        and audited."""
        with self._audited("logs", name, actor):
            checked = self._require_log_access(name, actor)
            (status,) = await self.statuses([checked])
            if not status.installed:
                raise ServiceNotFound(checked)
            return await self.journal.recent(checked, lines)

    async def follow_logs(
        self, name: str, actor: Actor, after_cursor: str | None = None
    ) -> AsyncGenerator[LogEvent, None]:
        """New journal lines of one service as they are written; with `after_cursor`, first every
        line since that one. An error ends the stream."""
        try:
            with self._audited("follow_logs", name, actor):
                checked = self._require_log_access(name, actor)
                if after_cursor is not None:
                    check_cursor(after_cursor)
                (status,) = await self.statuses([checked])
                if not status.installed:
                    raise ServiceNotFound(checked)
        except UnitgateError as refused:
            yield refused
            return
        try:
            async with self.followers.follow(checked, after_cursor) as subscription:
                async for item in subscription:
                    yield item
        except UnitgateError as failure:
            yield failure

    def _require_log_access(self, name: str, actor: Actor) -> str:
        if not actor.role.may_restart():
            raise errors.Forbidden(actor.role, "read service logs")
        return self.allowlist.require(name)

    @contextlib.contextmanager
    def _audited(self, action: str, name: str, actor: Actor) -> Iterator[None]:
        """One audit line for what the block does, however it ends."""
        started = time.monotonic()
        outcome = "cancelled"
        try:
            yield
            outcome = "succeeded"
        except UnitgateError as error:
            outcome = _OUTCOMES.get(type(error), "error")
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            duration_ms = round((time.monotonic() - started) * 1000)
            self.audit.record(AuditRecord(now(), actor, action, name, outcome, duration_ms))

    async def status_events(self, names: Sequence[str] | None) -> AsyncGenerator[StatusEvent, None]:
        """The current status of each requested service, then one event per change.

        `names=None` follows every allowlisted service, and an empty list nothing, so that stream
        ends at once. A name that is not allowed or not installed yields its error and ends the
        stream; a failed read later on yields the error and the stream goes on.
        """
        if names is not None and not names:
            return
        if names is not None:
            try:
                wanted = list(dict.fromkeys(self.allowlist.require(name) for name in names))
            except UnitgateError as refused:
                yield refused
                return
        async with self.watcher.watch() as handle:
            snapshot = await handle.current()
            if snapshot.error is not None:
                yield snapshot.error
                return
            if names is None:
                wanted = [name for name, s in sorted(snapshot.statuses.items()) if s.installed]
                follow_new = True
            else:
                follow_new = False
                for name in wanted:
                    if not snapshot.statuses[name].installed:
                        yield ServiceNotFound(name)
                        return
            sent: dict[str, UnitStatus] = {}
            for name in wanted:
                sent[name] = snapshot.statuses[name]
                yield snapshot.statuses[name]
            while True:
                snapshot = await handle.after(snapshot.generation)
                if snapshot.error is not None:
                    yield snapshot.error
                    continue
                for name, status in sorted(snapshot.statuses.items()):
                    last = sent.get(name)
                    if last is None and not (follow_new and status.installed):
                        continue
                    if (
                        last is None
                        or last.change_key != status.change_key
                        or (snapshot.memory_refresh and last.memory_bytes != status.memory_bytes)
                    ):
                        sent[name] = status
                        yield status

    async def health(self) -> Health:
        """Whether systemctl reaches the manager (one process however many ask at once), and
        how the watcher learns of changes."""
        watcher = (str(self.watcher.mode), self.watcher.mode_detail)
        try:
            version = await self._health.do("version", self.systemctl.manager_version)
        except UnitgateError as error:
            return Health(False, str(error), *watcher)
        return Health(True, f"systemd {version}", *watcher)

    async def aclose(self) -> None:
        await self.watcher.stop()
        await self.followers.aclose()
