"""The config file's tables: a `[[tokens]]` entry, and the `[fleet]` table of an agent or a hub."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from unitgate.services.systemd.allowlist import unit_name_problem

Action = Literal["restart", "reload", "start", "stop"]


class TokenConfig(BaseModel):
    """One API token as the config keeps it: a name, a role and the SHA-256 of the token."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    role: Literal["viewer", "operator"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # The token's scope: allowlisted services (default all) and enabled actions (default all
    # for an operator; a viewer takes none whatever this says).
    services: tuple[str, ...] | None = Field(default=None, strict=False)
    actions: tuple[Action, ...] | None = Field(default=None, strict=False)
    # The fleet instances it reaches: names or shell-style patterns (web-*); default all.
    instances: tuple[str, ...] | None = Field(default=None, strict=False)

    @field_validator("instances")
    @classmethod
    def _instance_patterns(cls, patterns: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in patterns or ():
            if not pattern or len(pattern) > 64 or not all(c.isalnum() or c in "-_*?[]!" for c in pattern):
                raise ValueError(f"instance pattern {pattern!r}: letters, digits, - _ and * ? [ ] only")
        return patterns

    @field_validator("services")
    @classmethod
    def _service_names(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in names or ():
            problem = unit_name_problem(name)
            if problem is not None:
                raise ValueError(f"service name {name!r} {problem}")
        return names


class FleetConfig(BaseModel):
    """Where the fleet's NATS servers are, and this process's credentials there (an NKEY seed
    file from `unitgate fleet init`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    servers: tuple[str, ...] = Field(min_length=1, strict=False)
    credentials: str = Field(min_length=1, description="the NKEY seed file")
    # The CA that signed the NATS servers' certificate, and the only one trusted for them; unset,
    # tls:// servers are checked against the system's store (a public CA's certificate).
    tls_ca: str | None = Field(default=None, min_length=1, description="the NATS servers' CA (PEM)")
    request_timeout: float = Field(default=5.0, gt=0, le=600, description="a log request to an agent")
    heartbeat_interval: float = Field(default=2.0, gt=0, le=60, description="an agent's 'still here'")
    offline_after: float = Field(default=6.0, gt=0, le=600, description="no heartbeat for this long")

    @field_validator("servers")
    @classmethod
    def _nats_urls(cls, servers: tuple[str, ...]) -> tuple[str, ...]:
        for server in servers:
            if not server.startswith(("nats://", "tls://")):
                raise ValueError(f"server {server!r}: a nats:// or tls:// URL")
        return servers
