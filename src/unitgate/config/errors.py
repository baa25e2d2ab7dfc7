"""The configuration's one error, apart from pydantic: what the CLI catches without loading it."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""
