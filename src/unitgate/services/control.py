"""What the API can do with services: list, inspect, restart and watch; one instance per process."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from unitgate.services import errors
from unitgate.services.access import Actor
from unitgate.services.allowlist import Allowlist
from unitgate.services.audit import AuditLog, AuditRecord, now
from unitgate.services.errors import ServiceNotFound, UnitgateError
from unitgate.services.guard import RateLimit, RestartGuard
from unitgate.services.status import UnitStatus
from unitgate.services.systemctl import Systemctl
from unitgate.services.watcher import StatusWatcher

StatusEvent = UnitStatus | UnitgateError

# What the audit log says of each way a restart can end.
_OUTCOMES: dict[type[UnitgateError], str] = {
    errors.Forbidden: "forbidden",
    errors.ServiceNotAllowed: "not_allowed",
    errors.ServiceNotFound: "not_found",
    errors.RestartInProgress: "in_progress",
    errors.RateLimited: "rate_limited",
    errors.RestartFailed: "failed",
    errors.SystemctlTimeout: "timeout",
    errors.SystemdUnavailable: "unavailable",
}


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str


class ServiceControl:
    def __init__(
        self,
        systemctl: Systemctl,
        poll_interval: float,
        restart_limit: RateLimit,
        audit: AuditLog,
    ) -> None:
        self.systemctl = systemctl
        self.watcher = StatusWatcher(self._read_all, poll_interval)
        self.guard = RestartGuard(restart_limit)
        self.audit = audit

    @property
    def allowlist(self) -> Allowlist:
        return self.systemctl.allowlist

    async def _read_all(self) -> list[UnitStatus]:
        return await self.systemctl.show(self.allowlist.sorted())

    async def list_installed(self) -> list[UnitStatus]:
        return [status for status in await self._read_all() if status.installed]

    async def get(self, name: str) -> UnitStatus:
        (status,) = await self.systemctl.show([self.allowlist.require(name)])
        if not status.installed:
            raise ServiceNotFound(status.name)
        return status

    async def restart(self, name: str, actor: Actor) -> UnitStatus:
        """Restart one service for `actor`: role, allowlist, lock and rate limit first; every
        attempt, refused or not, is audited."""
        started = time.monotonic()
        outcome = "cancelled"
        try:
            if not actor.role.may_restart():
                raise errors.Forbidden(actor.role, "restart services")
            checked = self.allowlist.require(name)
            with self.guard.admit(checked):
                try:
                    status = await self.systemctl.restart(checked)
                finally:
                    # Whatever the outcome, the unit may have moved: let live dashboards see it now.
                    self.watcher.refresh()
            outcome = "succeeded"
            return status
        except UnitgateError as error:
            outcome = _OUTCOMES.get(type(error), "error")
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            duration_ms = round((time.monotonic() - started) * 1000)
            self.audit.record(AuditRecord(now(), actor, "restart", name, outcome, duration_ms))

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
            sent = {}
            for name in wanted:
                status = snapshot.statuses[name]
                sent[name] = status.change_key
                yield status
            while True:
                snapshot = await handle.after(snapshot.generation)
                if snapshot.error is not None:
                    yield snapshot.error
                    continue
                for name, status in sorted(snapshot.statuses.items()):
                    if name not in sent and not (follow_new and status.installed):
                        continue
                    if sent.get(name) != status.change_key:
                        sent[name] = status.change_key
                        yield status

    async def health(self) -> Health:
        try:
            version = await self.systemctl.manager_version()
        except UnitgateError as error:
            return Health(ok=False, detail=str(error))
        return Health(ok=True, detail=f"systemd {version}")

    async def aclose(self) -> None:
        await self.watcher.stop()
