"""The lean extension runner: every hook an operation's extensions define still runs at each
streamed result, found once (schema/extensions_runner.py), with strawberry's own subscriptions."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from unitgate.schema.error_codes import CodedErrors
from unitgate.schema.extensions_runner import LeanExtensionsRunner


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Event:
    number: int

    @strawberry.field
    def checked(self) -> int:
        if self.number == 2:
            raise RuntimeError("a secret detail")
        return self.number


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def events(self) -> AsyncGenerator[Event, None]:
        for number in range(4):
            yield Event(number=number)


class Counting(SchemaExtension):
    """A sync stream hook and results of its own."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self.seen.append(len(self.seen))
        yield

    def get_results(self) -> dict[str, Any]:
        return {"seen": len(self.seen)}


class AsyncCounting(SchemaExtension):
    """An async stream hook, beside the others (strawberry's exit stack path)."""

    count = 0

    async def on_stream_result(self, result: Any) -> AsyncGenerator[None, None]:
        AsyncCounting.count += 1
        yield


class Lean(strawberry.Schema):
    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> LeanExtensionsRunner:
        return LeanExtensionsRunner(execution_context=execution_context, extensions=extensions)


def _masked(error: GraphQLError) -> bool:
    return error.original_error is not None


async def _results(schema: strawberry.Schema) -> list[Any]:
    stream = await schema.subscribe("subscription { events { number checked } }")
    return [result async for result in stream]


async def test_each_event_is_masked_and_coded_with_the_one_hook_path() -> None:
    schema = Lean(query=Query, subscription=Subscription, extensions=[lambda: CodedErrors(_masked)])
    results = await _results(schema)
    # The third event's failure nulls its data (checked and events are non-null).
    assert [r.data for r in results] == [
        {"events": {"number": n, "checked": n}} if n != 2 else None for n in range(4)
    ]
    failed = [r for r in results if r.errors]
    assert len(failed) == 1
    assert [(e.message, e.extensions) for e in failed[0].errors] == [
        ("Unexpected error.", {"code": "INTERNAL_SERVER_ERROR"})
    ]
    assert "secret" not in str(failed[0].errors)


async def test_every_hook_and_result_runs_at_every_event_with_several_hooks() -> None:
    AsyncCounting.count = 0
    schema = Lean(
        query=Query,
        subscription=Subscription,
        extensions=[Counting, AsyncCounting, lambda: CodedErrors(_masked)],
    )
    results = await _results(schema)
    assert len(results) == 4
    assert AsyncCounting.count == 4
    # get_results is read after each event's hooks ran before it: 0, 1, 2, 3 seen.
    assert [r.extensions["seen"] for r in results] == [0, 1, 2, 3]
    assert [e.message for r in results for e in r.errors or ()] == ["Unexpected error."]
