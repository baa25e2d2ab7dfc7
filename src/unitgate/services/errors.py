"""The typed failures of the services layer; resolvers map each to a GraphQL type."""

from __future__ import annotations


class UnitgateError(Exception):
    """Base of every failure a client may see; `str(error)` is safe to show to it."""


class ServiceNotAllowed(UnitgateError):
    def __init__(self, name: str) -> None:
        self.name = name
        # The name is hostile input: never echo it raw (it may hold control characters or 10 kB).
        super().__init__(f"service {_shorten(name)!r} is not in the allowlist")


class ServiceNotFound(UnitgateError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"service {name!r} is not installed")


class SystemctlTimeout(UnitgateError):
    def __init__(self, command: str, timeout_seconds: float) -> None:
        self.command = command
        self.timeout_seconds = timeout_seconds
        super().__init__(f"systemctl {command} did not answer within {timeout_seconds:g} s")


class SystemdUnavailable(UnitgateError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"systemd is unavailable: {reason}")


class RestartFailed(UnitgateError):
    def __init__(self, name: str, exit_code: int, detail: str) -> None:
        self.name = name
        self.exit_code = exit_code
        self.detail = detail
        super().__init__(f"restart of {name!r} failed (exit code {exit_code}): {detail}")


def _shorten(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
