"""Status queries executed once per snapshot: every identical query that reads the same state
gets the same result, until the watcher's snapshot (or an uptime) changes."""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

from graphql import FieldNode, OperationDefinitionNode, OperationType, parse
from strawberry.types import ExecutionResult

from unitgate.schema.observed import Observe
from unitgate.schema.shared_results import SharedResults, audience
from unitgate.services.systemd.status import UnitStatus

# Root fields whose answers come from the status snapshot alone.
SNAPSHOT_FIELDS = frozenset({"services", "service", "__typename"})
_DOCUMENTS = 256  # documents whose eligibility is remembered
_FRESHNESS_KEPT = 4096  # results' expiries remembered (more than SharedResults keeps)


def reads_snapshot_only(query: str, operation_name: str | None) -> bool:
    """Whether the operation is a query whose every root field answers from the snapshot (no
    fragment at the root, where what it spreads would have to be looked into)."""
    document = parse(query, no_location=True)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
    if len(chosen) != 1 or chosen[0].operation is not OperationType.QUERY:
        return False
    selections = chosen[0].selection_set.selections
    return all(isinstance(s, FieldNode) and s.name.value in SNAPSHOT_FIELDS for s in selections)


def next_tick(statuses: Mapping[str, UnitStatus], now: float) -> float:
    """When (time.time()) the first of these statuses' whole-second uptimes next changes: until
    then a result that shows them is still true. Computed once per result, not once per query
    (a hub's snapshot holds thousands)."""
    soonest = math.inf
    for status in statuses.values():
        if status.active_since is not None:
            soonest = min(soonest, now + 1 - (now - status.active_since.timestamp()) % 1)
    return soonest


class SharedQueries:
    """Runs a query through `execute`, or hands out the result of an identical one that read the
    same snapshot. A document is looked at only once it has run without errors (past every
    limit), and nothing is shared when there is no snapshot (no bus: every read is its own)."""

    def __init__(self, results: SharedResults, observe: Observe | None = None) -> None:
        self._results = results
        self._observe = observe
        self._eligible: OrderedDict[tuple[str, str | None], bool] = OrderedDict()
        self._fresh_until: OrderedDict[Hashable, float] = OrderedDict()  # key -> until when

    async def run(
        self,
        execute: Callable[[], Awaitable[ExecutionResult]],
        query: str | None,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
    ) -> ExecutionResult:
        control = getattr(context, "control", None)
        if not isinstance(query, str) or not (operation_name is None or isinstance(operation_name, str)):
            return await execute()  # refused in there, with the error the client should see
        document = (query, operation_name)
        if control is None or not self._eligible.get(document, False):
            result = await execute()
            if control is not None and not result.errors and document not in self._eligible:
                self._remember(document, reads_snapshot_only(*document))
            return result
        started = time.monotonic()
        statuses = await control.status_snapshot()
        if statuses is None:
            return await execute()
        key: Hashable = (
            document,
            json.dumps(variables, sort_keys=True, default=str),
            audience(getattr(context, "actor", None)),
            id(statuses),
        )
        found = self._results.get(key)
        if found is not None and time.time() < self._fresh_until.get(key, 0.0):
            if self._observe is not None:  # as the per-operation extension would have
                self._observe("query", True, time.monotonic() - started)
            return ExecutionResult(data=found.data, errors=None)
        before = time.time()
        result = await execute()
        until = next_tick(statuses, before)
        # Only what was read from this very snapshot, with no uptime ticking while it ran.
        if control.status_snapshot_is(statuses) and time.time() < until:
            self._results.put(key, result, (statuses,))
            self._fresh_until[key] = until
            if len(self._fresh_until) > _FRESHNESS_KEPT:
                self._fresh_until.popitem(last=False)
        return result

    def _remember(self, document: tuple[str, str | None], eligible: bool) -> None:
        self._eligible[document] = eligible
        if len(self._eligible) > _DOCUMENTS:
            self._eligible.popitem(last=False)
