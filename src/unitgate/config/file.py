"""Whether the config file a server runs with is private enough: who may write it may add a
token, and its token hashes are for the service and root to read."""

from __future__ import annotations

import stat
from pathlib import Path

from unitgate.config.settings import ConfigError, Settings


def file_mode_problem(mode: int, holds_tokens: bool) -> str | None:
    """What is wrong with a config file's permission bits, or None: whoever may write it may add
    a token, and token hashes are for the service and root to read."""
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "is writable by others than its owner, who could add a token"
    if holds_tokens and mode & stat.S_IROTH:
        return "is readable by every user, and holds token hashes"
    return None


def require_private(path: Path, settings: Settings) -> None:
    """ConfigError unless the file a server runs with is private enough (see file_mode_problem)."""
    problem = file_mode_problem(path.stat().st_mode, bool(settings.tokens))
    if problem is not None:
        raise ConfigError(f"refusing to start: {path} {problem}; fix it with `chmod 640 {path}`")
