"""Shared results on their own: what is shared, with whom, and when a result is made anew."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from tests.helpers import OPERATOR, VIEWER
from unitgate.resolvers import Context
from unitgate.schema import shared_queries
from unitgate.schema.root import build_schema
from unitgate.schema.shared_queries import SharedQueries, reads_snapshot_only
from unitgate.schema.shared_results import SharedResults, audience
from unitgate.services.policy.access import Role, scoped_actor
from unitgate.services.systemd.status import UnitStatus
from unitgate.services.systemd.units import UnitVerb

SERVICES = "{ services { ... on ServiceList { services { name mainPid uptimeSeconds } } } }"


def status(name: str, pid: int = 10, since: datetime | None = None) -> UnitStatus:
    return UnitStatus(
        name=name,
        unit_id=f"{name}.service",
        description=name,
        load_state="loaded",
        active_state="active",
        sub_state="running",
        main_pid=pid,
        memory_bytes=1000,
        active_since=since or datetime.now(UTC) - timedelta(seconds=30),
        restart_count=0,
        unit_file_state=None,
        can_reload=False,
    )


def test_the_same_data_is_serialized_once_for_every_message_that_carries_it() -> None:
    shared = SharedResults()
    data = {"serviceStatusChanged": {"name": "nginx", "mainPid": 7}}
    shared.put("event", GraphQLExecutionResult(data=data), pins=())
    transport = shared.encode({"id": "1", "type": "next", "payload": {"data": data}})
    legacy = shared.encode({"type": "data", "id": 'x"y', "payload": {"data": data}})
    http = shared.encode({"data": data})
    assert json.loads(transport) == {"id": "1", "type": "next", "payload": {"data": data}}
    assert json.loads(legacy) == {"type": "data", "id": 'x"y', "payload": {"data": data}}
    assert json.loads(http) == {"data": data}
    # Anything else is encoded as it is, shared data or not.
    other = {"data": dict(data)}
    assert shared.encode(other) == json.dumps(other, separators=(",", ":"))
    assert json.loads(shared.encode({"data": data, "errors": []})) == {"data": data, "errors": []}


def test_errors_are_never_shared_and_old_results_make_way() -> None:
    shared = SharedResults(size=2)
    shared.put("failed", GraphQLExecutionResult(data={"a": 1}, errors=[GraphQLError("no")]), pins=())
    assert shared.get("failed") is None
    first = {"n": 1}
    shared.put(1, GraphQLExecutionResult(data=first), pins=())
    shared.put(2, GraphQLExecutionResult(data={"n": 2}), pins=())
    shared.put(3, GraphQLExecutionResult(data={"n": 3}), pins=())
    assert shared.get(1) is None
    assert shared.encode({"data": first}) == '{"data":{"n":1}}'  # no longer shared: encoded anew
    assert shared.get(3) is not None


def test_an_audience_is_what_a_token_reaches_not_who_holds_it() -> None:
    one = scoped_actor("alice", Role.OPERATOR, "10.0.0.1", UnitVerb, services=["nginx"])
    two = scoped_actor("bob", Role.OPERATOR, "10.0.0.2", UnitVerb, services=["nginx"])
    other_scope = scoped_actor("carol", Role.OPERATOR, None, UnitVerb, services=["nginx", "postfix"])
    fewer_actions = scoped_actor(
        "dave", Role.OPERATOR, None, UnitVerb, services=["nginx"], actions=["reload"]
    )
    assert audience(one) == audience(two)
    assert len({audience(one), audience(other_scope), audience(fewer_actions), audience(OPERATOR)}) == 4
    assert audience(VIEWER) != audience(OPERATOR)


@pytest.mark.parametrize(
    ("document", "operation", "eligible"),
    [
        (SERVICES, None, True),
        ('{ a: service(name: "nginx") { __typename } __typename }', None, True),
        ("query A { services { __typename } } query B { me { name } }", "A", True),
        ("query A { services { __typename } } query B { me { name } }", "B", False),
        ("{ services { __typename } instance { name } }", None, False),
        ("{ ...F } fragment F on Query { services { __typename } }", None, False),
        ('mutation { restartService(name: "nginx") { __typename } }', None, False),
        ("subscription { serviceStatusChanged { __typename } }", None, False),
    ],
)
def test_which_documents_read_the_snapshot_alone(
    document: str, operation: str | None, eligible: bool
) -> None:
    assert reads_snapshot_only(document, operation) is eligible


@dataclass
class SnapshotControl:
    """What the shared queries ask of the services layer, with a snapshot the test replaces."""

    statuses: Mapping[str, UnitStatus] | None
    instance_name: str = "test-host"

    async def status_snapshot(self) -> Mapping[str, UnitStatus] | None:
        return self.statuses

    def status_snapshot_is(self, statuses: Mapping[str, UnitStatus]) -> bool:
        return statuses is self.statuses


class Counted:
    """An `execute` that counts its runs and answers with the control's current pids."""

    def __init__(self, control: SnapshotControl) -> None:
        self.control = control
        self.runs = 0

    async def __call__(self) -> ExecutionResult:
        self.runs += 1
        assert self.control.statuses is not None
        return ExecutionResult(
            data={"pids": [s.main_pid for s in self.control.statuses.values()]}, errors=None
        )


async def test_identical_queries_on_one_snapshot_run_once(monkeypatch: pytest.MonkeyPatch) -> None:
    control = SnapshotControl({"nginx": status("nginx")})
    context: Any = Context(control=control, actor=OPERATOR)  # type: ignore[arg-type]
    queries = SharedQueries(SharedResults())
    execute = Counted(control)
    answers = [await queries.run(execute, SERVICES, None, None, context) for _ in range(5)]
    # The first run makes the document known; the second is kept; the rest share it.
    assert execute.runs == 2
    assert all(answer.data == {"pids": [10]} for answer in answers)
    assert answers[2].data is answers[4].data

    control.statuses = {"nginx": status("nginx", pid=11)}  # a new read: a new snapshot object
    assert (await queries.run(execute, SERVICES, None, None, context)).data == {"pids": [11]}
    assert execute.runs == 3

    # Another audience, other variables: their own runs.
    viewer: Any = Context(control=control, actor=VIEWER)  # type: ignore[arg-type]
    await queries.run(execute, SERVICES, None, None, viewer)
    await queries.run(execute, SERVICES, {"x": 1}, None, context)
    assert execute.runs == 5

    # A second later every uptime has moved: the answer is made anew.
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 1.0)  # the module reads time.time()
    await queries.run(execute, SERVICES, None, None, context)
    assert execute.runs == 6

    # Hostile parameters reach strawberry as they came, to be refused there.
    await queries.run(execute, SERVICES, None, {"not": "a name"}, context)  # type: ignore[arg-type]
    await queries.run(execute, None, None, None, context)
    assert execute.runs == 8

    # No snapshot (no bus): nothing is shared.
    control.statuses = None
    with pytest.raises(AssertionError):
        await queries.run(execute, SERVICES, None, None, context)
    assert execute.runs == 9


async def test_a_snapshot_replaced_during_the_run_is_not_kept() -> None:
    control = SnapshotControl({"nginx": status("nginx")})
    context: Any = Context(control=control, actor=OPERATOR)  # type: ignore[arg-type]
    queries = SharedQueries(SharedResults())
    runs = 0

    async def execute() -> ExecutionResult:
        nonlocal runs
        runs += 1
        control.statuses = {"nginx": status("nginx", pid=10 + runs)}  # a read ended meanwhile
        return ExecutionResult(data={"run": runs}, errors=None)

    for _ in range(4):
        await queries.run(execute, SERVICES, None, None, context)
    assert runs == 4


async def test_the_schema_shares_a_subscription_event_between_subscribers() -> None:
    schema = build_schema()
    shared = schema.shared  # type: ignore[attr-defined]
    assert isinstance(shared, SharedResults)
    document = "subscription { serviceStatusChanged { ... on ServiceStatus { name mainPid } } }"

    class OneEvent:
        instance_name = "test-host"
        event = status("nginx", pid=77)

        def status_events(self, names: object, actor: object, instances: object = None) -> Any:
            async def events() -> Any:
                yield self.event

            return events()

    control = OneEvent()
    results = []
    for actor in (OPERATOR, OPERATOR, OPERATOR, VIEWER):
        context = Context(control=control, actor=actor)  # type: ignore[arg-type]
        stream = await schema.subscribe(document, context_value=context)
        results += [result async for result in stream]
    assert all(r.data == {"serviceStatusChanged": {"name": "nginx", "mainPid": 77}} for r in results)
    assert shared.executed == 2  # once for the operators, once for the viewer
    assert shared.shared == 2
    assert results[0].data is results[2].data
    assert results[3].data is not results[0].data


def test_a_result_is_fresh_until_the_first_uptime_ticks() -> None:
    now = 1_000_000.25
    since = datetime.fromtimestamp(now - 30.75, UTC)  # 30 s up; 31 at now + 0.25
    later = datetime.fromtimestamp(now - 2.5, UTC)  # 2 s up; 3 at now + 0.5
    statuses = {"a": status("a", since=since), "b": status("b", since=later)}
    assert shared_queries.next_tick(statuses, now) == pytest.approx(now + 0.25)
    stopped = replace(status("c"), active_since=None)
    assert shared_queries.next_tick({"c": stopped}, now) == float("inf")  # nothing ever ticks
