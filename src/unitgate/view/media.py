"""GraphQL over HTTP: which media type answers a request, and which results are request errors."""

from __future__ import annotations

from strawberry.types import ExecutionResult

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"


def negotiate_media_type(accept: str | None) -> str:
    """The response type for an Accept header: graphql-response+json only when asked for by
    name, at least as strongly as application/json; anything else (no header, */*) gets the
    application/json that legacy clients expect."""
    if not accept:
        return APPLICATION_JSON
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        weights[media] = max(weights.get(media, 0.0), quality)
    modern = weights.get(GRAPHQL_RESPONSE_JSON, 0.0)
    legacy = max(
        weights.get(APPLICATION_JSON, 0.0), weights.get("application/*", 0.0), weights.get("*/*", 0.0)
    )
    return GRAPHQL_RESPONSE_JSON if modern > 0 and modern >= legacy else APPLICATION_JSON


def is_request_error(result: ExecutionResult) -> bool:
    """Parse, validation and variable-coercion errors: no data, and no error tied to a field."""
    return (
        result.data is None and bool(result.errors) and all(not error.path for error in result.errors or ())
    )
