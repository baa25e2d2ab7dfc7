"""What every operation gets around it: the parser's token limit and the extra validation rules,
its journal-line budget, and its type, outcome and duration told to an observer (the /metrics
counters). One extension, so that each of a thousand open subscriptions holds one small object
and one suspended frame for all of it, not one of each per concern (bench/ measures memory per
subscriber)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from graphql import ASTValidationRule
from strawberry.extensions import SchemaExtension

from unitgate.schema.limits import end_log_budget, start_log_budget

Observe = Callable[[str, bool, float], None]  # operation type, ok, seconds


def per_operation(
    max_log_lines: int,
    observe: Observe | None = None,
    max_tokens: int | None = None,
    rules: Sequence[type[ASTValidationRule]] = (),
) -> type[SchemaExtension]:
    extra_rules = tuple(rules)

    class PerOperation(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            started = time.monotonic()
            # What strawberry's MaxTokensLimiter and AddValidationRules would each set.
            context = self.execution_context
            if max_tokens is not None:
                context.parse_options["max_tokens"] = max_tokens
            context.validation_rules = context.validation_rules + extra_rules
            # Set directly, not through a context manager: its objects would live as long as
            # every open subscription does.
            token = start_log_budget(max_log_lines)
            try:
                yield
            finally:
                end_log_budget(token)
                if observe is not None:
                    observe(*_outcome(self), time.monotonic() - started)

    return PerOperation


def _outcome(extension: SchemaExtension) -> tuple[str, bool]:
    context = extension.execution_context
    try:
        kind = context.operation_type.value
    except Exception:  # no parsable operation: the document itself was refused
        kind = "invalid"
    return kind, context.result is not None and not context.result.errors
