"""The root types and the schema object."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, cast

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES, SubscriptionResult
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from unitgate import resolvers
from unitgate.schema import errors, results, types
from unitgate.schema.error_codes import CodedErrors, with_code
from unitgate.schema.error_log import log_errors
from unitgate.schema.extensions_runner import LeanExtensionsRunner
from unitgate.schema.limits import (
    DocumentLimits,
    OneServiceActionPerDocument,
    document_cost_rule,
)
from unitgate.schema.observed import Observe, per_operation
from unitgate.schema.scalars import SCALAR_MAP
from unitgate.schema.shared_queries import SharedQueries
from unitgate.schema.shared_results import SharedResults


@strawberry.type
class Query:
    services: results.ServicesResult = strawberry.field(
        resolver=resolvers.services,
        description="The allowlisted services that are installed, with their status.",
    )
    service: results.ServiceResult = strawberry.field(
        resolver=resolvers.service, description="One allowlisted service by name."
    )
    instance: types.Instance = strawberry.field(
        resolver=resolvers.instance, description="This unitgate: its name, systemd's version, its scope."
    )
    instances: list[types.Instance] = strawberry.field(
        resolver=resolvers.instances,
        description="Every instance the caller reaches: this host alone, or each host of a hub's fleet.",
    )
    me: types.Me = strawberry.field(
        resolver=resolvers.me,
        description="Who the caller is and what it may do: show only the buttons that will work.",
    )
    service_logs: results.ServiceLogsResult = strawberry.field(
        resolver=resolvers.service_logs,
        description=(
            "A service's last `lines` journal lines, oldest first (0 to 500; more is read as 500). "
            "Logs can hold secrets: operators only, and audited."
        ),
    )
    service_history: results.ServiceHistoryResult = strawberry.field(
        resolver=resolvers.service_history,
        description=(
            "What happened to a service, newest first: systemd's own record of the unit in the journal "
            "(started, stopped, main process exited, failed with a result, restart scheduled, reloaded) "
            "and, from the audit file, the actions asked of unitgate with who asked and how each ended. "
            "`since` (UTC) bounds it; `limit` (0 to 500) counts against the operation's journal lines. "
            "On a hub, `instance` names the host. Anyone who sees the service may read it."
        ),
    )


@strawberry.type
class Mutation:
    restart_service: results.RestartServiceResult = strawberry.mutation(
        resolver=resolvers.restart_service,
        description="Restart one allowlisted service; waits for systemd's job to finish.",
    )
    reload_service: results.ReloadServiceResult = strawberry.mutation(
        resolver=resolvers.reload_service,
        description="Reload one allowlisted service whose unit says CanReload=yes.",
    )
    start_service: results.StartServiceResult = strawberry.mutation(
        resolver=resolvers.start_service,
        description="Start one allowlisted service (where the server offers start); waits for the job.",
    )
    stop_service: results.StopServiceResult = strawberry.mutation(
        resolver=resolvers.stop_service,
        description=(
            "Stop one allowlisted service (where the server offers stop); one already inactive "
            "is a success with its status."
        ),
    )


@strawberry.type
class Subscription:
    service_status_changed: results.ServiceStatusEvent = strawberry.subscription(  # type: ignore[assignment]
        resolver=resolvers.service_status_changed,
        description=(
            "The current status of each named service (all installed ones when `names` is "
            "omitted), then one event whenever activeState, subState, mainPid or loadState "
            "changes. A name that is not allowed or not installed yields its error and ends "
            "the stream."
        ),
    )
    instance_status_changed: types.Instance = strawberry.subscription(  # type: ignore[assignment]
        resolver=resolvers.instance_status_changed,
        description=(
            "Every instance the caller reaches as it is, then one event whenever one goes offline "
            "(its agent is gone) or comes back."
        ),
    )
    service_logs_followed: results.ServiceLogEvent = strawberry.subscription(  # type: ignore[assignment]
        resolver=resolvers.service_logs_followed,
        description=(
            "A service's journal lines as they are written. With afterCursor (a LogLine's cursor), "
            "first every line since that one, so a reconnecting client misses nothing. Operators "
            "only. An error ends the stream."
        ),
    )


def _should_mask(error: GraphQLError) -> bool:
    # Parse and validation errors are the client's to read; anything a resolver raised is not.
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class UnitgateSchema(strawberry.Schema):
    # Set by build_schema: results shared by identical operations on the same state.
    shared: SharedResults | None = None
    shared_queries: SharedQueries | None = None

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Queries and mutations. A subscription runs only through `subscribe` (the websockets):
        strawberry would otherwise run one sent by POST as a query, and fail inside it."""
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES) - {
            OperationType.SUBSCRIPTION
        }

        async def run() -> ExecutionResult:
            return await super(UnitgateSchema, self).execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed,
                operation_extensions,
            )

        control = getattr(context_value, "control", None)
        # Every status read of the operation answers within one budget, however they stack.
        with control.status_deadline() if control is not None else contextlib.nullcontext():
            if self.shared_queries is None:
                result = await run()
            else:
                result = await self.shared_queries.run(
                    run, query, variable_values, operation_name, context_value
                )
        for error in result.errors or ():
            with_code(error)
        return result

    async def subscribe(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> SubscriptionResult:
        """Any operation over the websockets, as both protocols allow in a subscribe (or start)
        message: strawberry's own restricts them to subscriptions, and refused a mutation from
        inside its handler."""
        return cast(
            "SubscriptionResult",
            await self.stream(
                query=query,
                variable_values=variable_values,
                context_value=context_value,
                root_value=root_value,
                operation_name=operation_name,
                operation_extensions=operation_extensions,
                allowed_operation_types=(
                    OperationType.QUERY,
                    OperationType.MUTATION,
                    OperationType.SUBSCRIPTION,
                ),
            ),
        )

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> LeanExtensionsRunner:
        return LeanExtensionsRunner(execution_context=execution_context, extensions=extensions)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors, execution_context)


def build_schema(limits: DocumentLimits | None = None, observe: Observe | None = None) -> strawberry.Schema:
    limits = limits or DocumentLimits()
    # The rule classes are made once, so that a dashboard's repeated document hits the validation
    # cache (keyed by document and rules) instead of being validated every time. They replace
    # strawberry's depth and alias limiters, which expand every fragment spread anew: a document
    # of fragments that each spread the next one twice took them seconds per extra 100 bytes.
    # Introspection nesting is bounded by graphql-core's MaxIntrospectionDepthRule (a standard one).
    rules = [document_cost_rule(limits), OneServiceActionPerDocument]
    shared = SharedResults()
    schema = UnitgateSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # Every error type, so that the schema has each even where no union names it yet.
        types=list(errors.ERRORS.values()),
        # Factories, not instances: each operation gets its own extension objects. The caches
        # are bounded LRUs shared by all of them.
        extensions=[
            per_operation(limits.max_log_lines, observe, max_tokens=limits.max_tokens, rules=rules),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            lambda: CodedErrors(should_mask_error=_should_mask),
        ],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        # Each subscription event executed once per document, variables and audience.
        execution_context_class=shared.event_executor(types.event_moment),
    )
    schema.shared, schema.shared_queries = shared, SharedQueries(shared, observe)
    return schema


schema = build_schema()
