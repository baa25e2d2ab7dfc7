"""`extensions.code` on every error in a response's `errors`, with the codes Apollo Server uses
where one fits, so SPA clients can branch on a code instead of a message. The typed-error unions
stay the way expected failures are reported; these are the ones that never reached a resolver."""

from __future__ import annotations

import re
from collections.abc import Callable

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import MaskErrors

from unitgate.schema.limits import LIMIT_CODE

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"  # variables that do not fit their declared types
INTERNAL = "INTERNAL_SERVER_ERROR"  # a masked failure; its details are in the server log
# graphql-core's own words when the token limit stops the parser.
_TOKEN_LIMIT = "Document contains more than"  # noqa: S105 (a message, not a secret)


# graphql-core's words for variables that do not fit their types (coercion, before any field
# runs); its validation rules about variables say "is not defined", "is never used", "used in
# position expecting".
_COERCION = re.compile(
    r"^Variable '\$\w+' "
    r"(has invalid value|of required type .+ was not provided|of non-null type .+ must not be null)"
)


def code_for(error: GraphQLError) -> str:
    """The code of an error that has none yet, by what produced it."""
    if isinstance(error, GraphQLSyntaxError):
        return LIMIT_CODE if _TOKEN_LIMIT in error.message else PARSE_FAILED
    if error.path:
        return INTERNAL  # a failure inside execution that was not masked
    if _COERCION.match(error.message):
        return BAD_USER_INPUT
    return VALIDATION_FAILED


def with_code(error: GraphQLError, code: str | None = None) -> GraphQLError:
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": code or code_for(error)}
    return error


class CodedErrors(MaskErrors):
    """MaskErrors, with a code on every error it passes on (the streams' path; HTTP's parse errors
    bypass extensions, so the schema codes `execute`'s result as well)."""

    def __init__(self, should_mask_error: Callable[[GraphQLError], bool]) -> None:
        super().__init__(should_mask_error=should_mask_error)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return with_code(super().anonymise_error(error), INTERNAL)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [with_code(error) for error in super()._process_errors(errors)]

    def _process_result(self, result: object) -> None:
        # strawberry's own asks isinstance(result, <a runtime-checkable Protocol>), which walks
        # the protocol's attributes every time: a tenth of a hub's time fanning one event out to a
        # thousand subscribers (bench/, profiled). The same test, plainly.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]
