"""Every GraphQL example in the README and docs/ is a valid operation against the schema as it
is: an example that drifted from the API fails here, not in a reader's hands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import GraphQLError, OperationDefinitionNode, parse, validate

from unitgate.schema.root import schema

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```graphql\n(.*?)^```", re.M | re.S)


def is_operation(text: str) -> bool:
    """An operation, or a block that does not parse (which the test then fails); not a schema
    excerpt of type definitions, which the printed schema's own test covers."""
    try:
        return any(isinstance(d, OperationDefinitionNode) for d in parse(text).definitions)
    except GraphQLError:
        return True


EXAMPLES = [
    pytest.param(text, id=f"{path.name}:{number}")
    for path in DOCS
    for number, text in enumerate(BLOCK.findall(path.read_text(encoding="utf-8")), start=1)
    if is_operation(text)
]


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("text", EXAMPLES)
def test_each_operation_example_validates(text: str) -> None:
    assert validate(schema._schema, parse(text)) == []
