"""One execution for every caller asking the same of the same state, and one serialization of it.

A thousand dashboards subscribed with the same document each get every status event. Executed
and serialized apart, the work of an event grows with the subscribers; shared, an event is
executed once per (document, variables, audience) and its JSON written once (Hasura multiplexes
its live queries in the same spirit). Status queries share the same way while the watcher's
snapshot is unchanged.

What is shared must be what each caller would have got alone, so a key holds everything the
answer depends on:
- the document, the operation and the variables;
- the audience: whatever decides what a caller may see (role, services and actions of its
  token), never the token's name, so a scoped token never gets another scope's answer;
- the state: the event object itself (one object per change, handed to every subscriber) or
  the snapshot a query reads;
- the time-dependent values at this moment (uptimeSeconds), computed, not assumed.
A result with errors is never shared (each caller's errors are its own to log and code).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _string
from typing import Any, Protocol, cast

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.execution import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from unitgate.services.policy.access import Actor

_SIZE = 256  # results kept: events in flight and recent snapshots, for every document in use


def audience(actor: Actor | None) -> Hashable:
    """What decides what a caller may see: not who it is."""
    if actor is None:
        return None
    services = None if actor.services is None else tuple(sorted(actor.services))
    return (str(actor.role), services, tuple(sorted(str(verb) for verb in actor.actions)))


class Result(Protocol):
    """graphql-core's ExecutionResult or strawberry's: what is shared of either."""

    @property
    def data(self) -> Any: ...
    @property
    def errors(self) -> Any: ...


@dataclass(slots=True)
class _Entry:
    pins: tuple[object, ...]  # what the key names by id(): kept alive, so no id is reused
    result: Result
    encoded: str | None = field(default=None)


class SharedResults:
    """A bounded memo of results, and of their data's JSON."""

    def __init__(self, size: int = _SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._by_data: dict[int, _Entry] = {}
        self.executed = 0  # results made and kept (what the tests count)
        self.shared = 0  # results handed out again

    def get(self, key: Hashable) -> Result | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        self.shared += 1
        return entry.result

    def put(self, key: Hashable, result: Result, pins: tuple[object, ...]) -> None:
        if result.errors or not isinstance(result.data, dict):
            return
        self.executed += 1
        entry = _Entry(pins, result)
        self._entries[key] = entry
        self._by_data[id(result.data)] = entry
        while len(self._entries) > self._size:
            _, old = self._entries.popitem(last=False)
            self._by_data.pop(id(old.result.data), None)

    def encode(self, message: object) -> str:
        """JSON of an outgoing message: a shared result's data is serialized once, whatever the
        number of messages that carry it (`{"data": ...}` over HTTP, a websocket's next/data)."""
        if isinstance(message, dict):
            if message.keys() == {"data"}:
                shared = self._encoded(message["data"])
                if shared is not None:
                    return f'{{"data":{shared}}}'
            payload = message.get("payload")
            if isinstance(payload, dict) and payload.keys() == {"data"}:
                shared = self._encoded(payload["data"])
                if shared is not None:
                    return f'{_head(message)}"payload":{{"data":{shared}}}}}'
        return _dumps(message)

    def _encoded(self, data: object) -> str | None:
        entry = self._by_data.get(id(data))
        if entry is None or entry.result.data is not data:
            return None
        if entry.encoded is None:
            entry.encoded = _dumps(data)
        return entry.encoded

    def event_executor(self, moment: Callable[[object], Hashable | None]) -> type[Executor[Any]]:
        """strawberry's executor, with each subscription event executed once per document,
        variables and audience; `moment(event)` is what of the event changes with time, None for
        an event that is not shared."""
        shared = self

        class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
            # The subscription's own part of the key (operation, variables, audience): made once
            # on its executor, not once per event, and handed to each event's copy.
            subscription_key: Hashable = None
            per_event_key: Hashable = None  # None: the operation's own executor, not an event's

            def build_per_event_executor(self, payload: Any) -> Executor[Any]:
                if self.subscription_key is None:
                    actor = getattr(self.context_value, "actor", None)
                    variables = json.dumps(self.variable_values, sort_keys=True, default=str)
                    self.subscription_key = (id(self.operation), variables, audience(actor))
                now = moment(payload)
                if now is not None:
                    found = shared.get((self.subscription_key, id(payload), now))
                    if found is not None:
                        # Answered already: no copy of this executor to make (a copy per event
                        # per subscriber was a twentieth of a hub's fan-out).
                        return cast("Executor[Any]", _Answered(found))
                executor = cast("SharedEventExecutor", super().build_per_event_executor(payload))
                executor.per_event_key = self.subscription_key  # a copy of this one: of this class
                return executor

            def execute_operation(self, serially: bool | None = None) -> Any:
                event = self.root_value
                now = moment(event) if self.per_event_key is not None else None
                if now is None:
                    return super().execute_operation(serially)
                key = (self.per_event_key, id(event), now)
                found = shared.get(key)
                if found is not None:
                    return found
                result = super().execute_operation(serially)
                # An awaitable (an async field) is not shared; nor a result that crossed a second.
                if isinstance(result, GraphQLExecutionResult) and moment(event) == now:
                    shared.put(key, result, (self.operation, event))
                return result

        return SharedEventExecutor


class _Answered:
    """What graphql-core asks of an event's executor (execute_operation), for an event whose
    result is shared: it hands back that result."""

    __slots__ = ("_result",)

    def __init__(self, result: Result) -> None:
        self._result = result

    def execute_operation(self, serially: bool | None = None) -> Result:
        return self._result


def _head(message: dict[str, Any]) -> str:
    """`{"id":"1","type":"next",` of a message, its payload left out: the id and type are strings,
    escaped as json.dumps would (a json.dumps call per message was half of encoding them)."""
    parts = []
    for key, value in message.items():
        if key == "payload":
            continue
        if not isinstance(value, str):
            return _dumps({k: v for k, v in message.items() if k != "payload"})[:-1] + ","
        parts.append(f"{_string(key)}:{_string(value)},")
    return "{" + "".join(parts)


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))
