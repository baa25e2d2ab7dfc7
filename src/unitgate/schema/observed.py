"""What every operation gets around it: its journal-line budget, and its type, outcome and
duration told to an observer (the /metrics counters). One extension, so that each of a thousand
open subscriptions holds one small object and one suspended frame for it, not two of each."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from strawberry.extensions import SchemaExtension

from unitgate.schema.limits import end_log_budget, start_log_budget

Observe = Callable[[str, bool, float], None]  # operation type, ok, seconds


def per_operation(max_log_lines: int, observe: Observe | None = None) -> type[SchemaExtension]:
    class PerOperation(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            started = time.monotonic()
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
