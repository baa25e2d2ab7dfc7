"""What the server log says of a failed operation: one line, with a hash of the document and its
length, never the document or its variables (a 1 MiB document must not become 13,000 lines)."""

from __future__ import annotations

import hashlib
import logging

from graphql import GraphQLError
from strawberry.types import ExecutionContext

log = logging.getLogger("unitgate.graphql")
_MESSAGE_CAP = 200
_TRACEBACKS = 3  # unexpected failures logged with their traceback, per operation


def describe_document(query: str | None) -> str:
    if not query:
        return "no document"
    digest = hashlib.sha256(query.encode("utf-8", "replace")).hexdigest()[:16]
    return f"document sha256:{digest}, {len(query)} characters"


def log_errors(errors: list[GraphQLError], execution_context: ExecutionContext | None) -> None:
    """Unexpected failures (masked for the client) in full, a few per operation; the client's
    own mistakes (parse, validation, limits) as one line at INFO."""
    document = describe_document(execution_context.query if execution_context else None)
    unexpected = [
        e for e in errors if e.original_error is not None and not isinstance(e.original_error, GraphQLError)
    ]
    for error in unexpected[:_TRACEBACKS]:
        log.error(
            "resolver failed at %s (%s)",
            ".".join(map(str, error.path or ())),
            document,
            exc_info=error.original_error,
        )
    if len(unexpected) > _TRACEBACKS:
        log.error(
            "%d more resolvers failed in the same operation (%s)", len(unexpected) - _TRACEBACKS, document
        )
    refused = [e for e in errors if e not in unexpected]
    if refused:
        first = refused[0].message[:_MESSAGE_CAP]
        log.info("operation refused with %d errors, the first %r (%s)", len(refused), first, document)
