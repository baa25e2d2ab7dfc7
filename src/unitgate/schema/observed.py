"""What each GraphQL operation was and how it went, told to an observer (the /metrics counters)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from strawberry.extensions import SchemaExtension

Observe = Callable[[str, bool, float], None]  # operation type, ok, seconds


def operation_observer(observe: Observe) -> type[SchemaExtension]:
    class ObservedOperation(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            started = time.monotonic()
            try:
                yield
            finally:
                context = self.execution_context
                try:
                    kind = context.operation_type.value
                except Exception:  # no parsable operation: the document itself was refused
                    kind = "invalid"
                ok = context.result is not None and not context.result.errors
                observe(kind, ok, time.monotonic() - started)

    return ObservedOperation
