"""Hostile JSON bodies and frames are malformed requests (400, or a closed socket), never a 500."""

from __future__ import annotations

import json
from collections.abc import Callable


def decode_guarded(decode: Callable[[str | bytes], object], data: str | bytes) -> object:
    """`decode(data)`, but JSON nested past the recursion limit, or that is not an object or a
    list, raises JSONDecodeError, which strawberry answers as malformed."""
    try:
        value = decode(data)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None
    if not isinstance(value, dict | list):
        raise json.JSONDecodeError("expected a JSON object", "", 0)
    return value
