"""Abuse limits on GraphQL documents, checked before anything executes, at a cost bounded by the
document's size whatever its fragments do."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

# Mutations that act on a service: at most one of them per document.
GUARDED_MUTATIONS = frozenset({"restartService", "reloadService", "startService", "stopService"})
# extensions.code of every refusal for a document limit (depth, aliases, size, one action).
LIMIT_CODE = "DOCUMENT_LIMIT_EXCEEDED"


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000
    # Fields once every fragment spread is expanded: what execution would have to walk.
    max_fields: int = 5000
    max_log_lines: int = 1000  # journal lines per operation, across all its fields


@dataclass(frozen=True, slots=True)
class Cost:
    """What a selection set costs once its fragments are expanded."""

    depth: int = 0  # nesting of fields with selections, introspection fields not counted
    aliases: int = 0
    fields: int = 0

    def beside(self, other: Cost) -> Cost:
        return Cost(max(self.depth, other.depth), self.aliases + other.aliases, self.fields + other.fields)


class _Coster:
    """Costs selection sets, each named fragment once (memoized): `...F ...F` in every one of 190
    fragments is 2^190 fields expanded, and still a few hundred steps to count."""

    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        self._costs: dict[str, Cost] = {}
        self._open: set[str] = set()  # a cycle is NoFragmentCyclesRule's to report; it costs 0 here

    def selections(self, selection_set: SelectionSetNode | None) -> Cost:
        total = Cost()
        for selection in selection_set.selections if selection_set else ():
            total = total.beside(self.selection(selection))
        return total

    def selection(self, node: Any) -> Cost:
        if isinstance(node, FieldNode):
            inner = self.selections(node.selection_set)
            # Introspection nesting is bounded by graphql-core's MaxIntrospectionDepthRule.
            counts_depth = node.selection_set is not None and not node.name.value.startswith("__")
            depth = 1 + inner.depth if counts_depth else 0
            return Cost(depth, inner.aliases + (1 if node.alias else 0), inner.fields + 1)
        if isinstance(node, InlineFragmentNode):
            return self.selections(node.selection_set)
        if isinstance(node, FragmentSpreadNode):
            return self.fragment(node.name.value)
        return Cost()

    def fragment(self, name: str) -> Cost:
        if name in self._costs:
            return self._costs[name]
        definition = self._fragments.get(name)
        if definition is None or name in self._open:
            return Cost()  # unknown or cyclic: other rules say so
        self._open.add(name)
        try:
            cost = self._costs[name] = self.selections(definition.selection_set)
        finally:
            self._open.discard(name)
        return cost


def operation_costs(document: DocumentNode) -> dict[str, tuple[OperationDefinitionNode, Cost]]:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    coster = _Coster(fragments)
    return {
        (d.name.value if d.name else "anonymous"): (d, coster.selections(d.selection_set))
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    }


def limit_error(message: str, node: Any = None) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": LIMIT_CODE})


def document_cost_rule(limits: DocumentLimits) -> type[ValidationRule]:
    """Depth, aliases and expanded size of every operation, refused past the limits."""

    class DocumentCostRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            aliases = 0
            for name, (node, cost) in operation_costs(context.document).items():
                aliases += cost.aliases
                if cost.depth > limits.max_depth:
                    context.report_error(
                        limit_error(f"'{name}' exceeds maximum operation depth of {limits.max_depth}", node)
                    )
                if cost.fields > limits.max_fields:
                    context.report_error(
                        limit_error(
                            f"'{name}' selects {_count(cost.fields)} fields once its fragments are "
                            f"expanded; the limit is {limits.max_fields}",
                            node,
                        )
                    )
            if aliases > limits.max_aliases:
                context.report_error(
                    limit_error(f"{_count(aliases)} aliases found. Allowed: {limits.max_aliases}")
                )

    return DocumentCostRule


def _count(number: int) -> str:
    """A count for a message: a number past 10^15 (2^190, say) reads as its power of ten."""
    return str(number) if number < 10**15 else f"about 10^{len(str(number)) - 1}"


class OneServiceActionPerDocument(ValidationRule):
    """Rejects a document that asks for more than one restart, however it is spelled (aliases,
    fragments, several operations), so one request can never restart a list of services."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.count = 0

    def enter_field(self, node: FieldNode, *_args: object) -> None:
        parent = self.context.get_parent_type()
        if parent is None or parent.name != "Mutation" or node.name.value not in GUARDED_MUTATIONS:
            return
        self.count += 1
        if self.count == 2:
            self.report_error(
                limit_error(f"at most one of {', '.join(sorted(GUARDED_MUTATIONS))} per request", node)
            )


class LogLineBudget:
    """Journal lines one operation may still read, across all its serviceLogs fields."""

    def __init__(self, lines: int) -> None:
        self.remaining = lines

    def take(self, wanted: int) -> int:
        granted = max(0, min(wanted, self.remaining))
        self.remaining -= granted
        return granted


_LOG_BUDGET: contextvars.ContextVar[LogLineBudget | None] = contextvars.ContextVar("log_budget", default=None)


def take_log_lines(wanted: int) -> int:
    """How many of `wanted` journal lines this operation may still read (all, outside one)."""
    budget = _LOG_BUDGET.get()
    return wanted if budget is None else budget.take(wanted)


def start_log_budget(lines: int) -> contextvars.Token[LogLineBudget | None]:
    """Give the operation running in this context its own budget: 30 aliased
    serviceLogs(lines: 500) fields read `lines` in all, not 15,000. Per operation, not per
    context object: a websocket's context lives as long as the connection."""
    return _LOG_BUDGET.set(LogLineBudget(lines))


def end_log_budget(token: contextvars.Token[LogLineBudget | None]) -> None:
    # Each operation runs in a task (a context) of its own; a stream's last step may run in
    # another one, where the token cannot be reset, and there is nothing to reset.
    with contextlib.suppress(ValueError):
        _LOG_BUDGET.reset(token)
