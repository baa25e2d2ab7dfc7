"""Abuse limits on GraphQL documents, checked before anything executes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import FieldNode, GraphQLError, ValidationRule

# Mutations that act on a service: at most one of them per document.
GUARDED_MUTATIONS = frozenset({"restartService", "reloadService"})


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000


class OneServiceActionPerDocument(ValidationRule):
    """Rejects a document that asks for more than one restart, however it is spelled (aliases,
    fragments, several operations), so one request can never restart a list of services."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.count = 0

    def enter_field(self, node: FieldNode, *_args: object) -> None:
        parent = self.context.get_parent_type()
        if parent is None or parent.name != "Mutation" or node.name.value not in GUARDED_MUTATIONS:
            return
        self.count += 1
        if self.count == 2:
            self.report_error(
                GraphQLError(f"at most one of {', '.join(sorted(GUARDED_MUTATIONS))} per request", node)
            )
