"""One subscriber's stream of status events, diffed from the shared watcher's snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence

from unitgate.services.errors import CommandTimeout, ServiceNotFound
from unitgate.services.live.reads import READ_GRACE
from unitgate.services.live.snapshot import StatusEvent
from unitgate.services.live.status_diff import worth_sending
from unitgate.services.live.watcher import StatusWatcher
from unitgate.services.systemd.status import UnitStatus, distinct_units


async def status_changes(
    watcher: StatusWatcher, names: Sequence[str] | None, include: Callable[[str], bool] = lambda name: True
) -> AsyncGenerator[StatusEvent, None]:
    """The current status of each of `names` (allowlisted, checked by the caller), then one event
    per change; `None` follows every installed unit that `include` lets through, and such units
    installed later.

    A name that is not installed yields ServiceNotFound and ends the stream; a failed read later
    on yields its error and the stream goes on. Every event is the snapshot's own object, the
    same for every subscriber: what lets the GraphQL layer execute it once for all of them.
    """
    watcher.join()
    try:
        timeout = watcher.timings.status_timeout
        try:
            async with asyncio.timeout(timeout + READ_GRACE):
                snapshot = await watcher.current()
        except TimeoutError:
            yield CommandTimeout("systemctl show", timeout)
            return
        if snapshot.error is not None:
            yield snapshot.error
            return
        follow_new = names is None
        if names is None:
            installed = [s for _, s in sorted(snapshot.statuses.items()) if s.installed and include(s.name)]
            names = [status.name for status in distinct_units(installed)]
        for name in names:
            if not snapshot.statuses[name].installed:
                yield ServiceNotFound(name)
                return
        sent: dict[str, UnitStatus] = {}
        units: set[str] = set()  # the units behind `sent`, kept as it grows
        for name in names:
            sent[name] = snapshot.statuses[name]
            units.add(snapshot.statuses[name].unit_id)
            yield snapshot.statuses[name]
        while True:
            snapshot = await watcher.store.after(snapshot.generation)
            if snapshot.error is not None:
                yield snapshot.error
                continue
            for name, status in sorted(snapshot.statuses.items()):
                if name not in sent and (status.unit_id in units or not include(name)):
                    continue  # another name of a unit this subscriber already follows
                if worth_sending(sent.get(name), status, follow_new, snapshot.memory_refresh):
                    sent[name] = status
                    units.add(status.unit_id)
                    yield status
    finally:
        await watcher.leave()
