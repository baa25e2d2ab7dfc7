"""Custom scalars: GraphQL's Int is 32-bit, too small for memory sizes."""

from __future__ import annotations

from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

ByteCount = NewType("ByteCount", int)

_MAX_BYTE_COUNT = 2**63 - 1


def _parse_byte_count(value: object) -> ByteCount:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("ByteCount must be a non-negative integer")
    number = int(value) if isinstance(value, int) or value.isdigit() else -1
    if not 0 <= number <= _MAX_BYTE_COUNT:
        raise ValueError("ByteCount must be an integer from 0 to 2^63-1")
    return ByteCount(number)


BYTE_COUNT = strawberry.scalar(
    name="ByteCount",
    description=(
        "A count of bytes from 0 to 2^63-1, serialized as a JSON integer. It is exact wherever "
        "JSON integers are (in JavaScript up to 2^53, which is 8 PiB)."
    ),
    serialize=int,
    parse_value=_parse_byte_count,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {ByteCount: BYTE_COUNT}
