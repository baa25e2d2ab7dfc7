"""unitgate's settings: one TOML file validated by a strict pydantic model, then CLI overrides."""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from unitgate.config.edge_limits import EdgeLimits
from unitgate.config.errors import ConfigError as ConfigError
from unitgate.config.network import AllowedHosts, TrustedProxies, default_hosts
from unitgate.config.tables import FleetConfig, TokenConfig
from unitgate.services.live.snapshot import WatcherTimings
from unitgate.services.policy.guard import RateLimit
from unitgate.services.systemd.allowlist import DEFAULT_ALLOWLIST, Allowlist, unit_name_problem
from unitgate.services.systemd.journal import JournalOptions
from unitgate.services.systemd.route import RestartVia
from unitgate.services.systemd.systemctl import SystemctlOptions
from unitgate.services.systemd.units import Scope, UnitVerb

Seconds = Annotated[float, Field(gt=0, le=86_400)]
Action = Literal["restart", "reload", "start", "stop"]
Limit = Annotated[int, Field(ge=1, le=1_000_000)]

# Keys renamed because they cover more than their old name said (reload, not only restart):
# the old spelling is still read, with a warning, and never together with the new one.
DEPRECATED_KEYS: dict[str, str] = {
    "restart_timeout": "action_timeout",
    "restart_limit": "action_limit",
    "restart_window": "action_window",
}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    scope: Literal["system", "user"] = "system"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # TOML arrays arrive as lists: strict mode would refuse them as tuples.
    allowlist: tuple[str, ...] | None = Field(
        default=None, strict=False, description="Replaces the default allowlist when set."
    )
    extra_services: tuple[str, ...] = Field(
        default=(), strict=False, description="Added to the allowlist (the default one, or `allowlist`)."
    )
    status_timeout: Seconds = 5.0
    action_timeout: Seconds = Field(default=30.0, description="for `systemctl restart` or `reload`")
    poll_interval: Seconds = Field(default=2.0, description="between reads when no D-Bus is reachable")
    memory_interval: Seconds = Field(default=30.0, description="between reads for MemoryCurrent")
    dbus_events: bool = Field(default=True, description="listen for systemd's D-Bus signals")
    bus_reconnect_interval: Seconds = Field(default=5.0, description="between tries to get the bus back")
    memory_max_age: Seconds = Field(
        default=2.0, description="the oldest MemoryCurrent a query is answered with from the snapshot"
    )
    idle_after: Seconds = Field(
        default=60.0, description="how long after the last status query the bus connection is kept"
    )
    restart_via: Literal["auto", "direct", "sudo", "polkit"] = "auto"
    actions: tuple[Action, ...] = Field(
        default=("restart", "reload"), strict=False, description="what the server offers at all"
    )
    systemctl_path: str = "/usr/bin/systemctl"
    sudo_path: str = "/usr/bin/sudo"
    journalctl_path: str = "/usr/bin/journalctl"
    journal_directory: str | None = Field(default=None, description="journalctl --directory")
    journal_root: str | None = Field(default=None, description="journalctl --root")

    graphiql_assets_dir: str | None = Field(
        default=None, description="GraphiQL's files (`unitgate graphiql-assets`); default: in the package"
    )

    tokens: tuple[TokenConfig, ...] = Field(default=(), strict=False)
    fleet: FleetConfig | None = Field(default=None, description="the NATS servers of a fleet")
    insecure_no_auth: bool = False
    allowed_origins: tuple[str, ...] = Field(default=(), strict=False)
    allowed_hosts: tuple[str, ...] | None = Field(
        default=None, strict=False, description="Host names answered; default localhost and `host`"
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(), strict=False, description='whose X-Forwarded-For is believed: addresses, networks, "unix"'
    )
    tls_certfile: str | None = Field(default=None, description="serve https and wss with this certificate")
    tls_keyfile: str | None = Field(default=None, description="... and this key")
    audit_file: str | None = None
    trusted_documents: str | None = Field(
        default=None, description="a persisted-documents.json manifest: sha256 -> document"
    )
    trusted_documents_only: bool = Field(default=False, description="run no document but the manifest's")
    metrics_public: bool = Field(default=False, description="/metrics without a token")
    instance_name: str | None = Field(
        default=None, max_length=253, description="an instance_name label on every service series"
    )

    action_limit: Limit = Field(default=3, description="one caller's actions on one unit per action_window")
    unit_action_limit: Limit | None = Field(
        default=None,
        description="all callers' actions on one unit per action_window; default 2 x action_limit",
    )
    action_window: Seconds = 60.0
    max_query_depth: Limit = 10
    max_aliases: Limit = 30
    max_tokens: Limit = 2000
    max_query_fields: Limit = Field(default=5000, description="fields once fragments are expanded")
    max_subscriptions_per_connection: Limit = 20
    max_websocket_connections: Limit = 2000
    connection_init_timeout: Seconds = Field(default=5.0, description="for a websocket's connection_init")
    max_pending_websockets: Limit = Field(
        default=256, description="websockets before connection_init; past it the oldest is closed"
    )
    max_pending_websockets_per_address: Limit = Field(default=128, description="the same, per client address")
    max_body_bytes: Limit = Field(default=1 << 20, description="largest HTTP request body")
    max_processes: Limit = Field(default=8, description="systemctl/journalctl children at once")
    max_process_queue: Limit = Field(default=64, description="callers waiting for one, then ServerBusy")
    max_log_lines_per_request: Limit = Field(default=1000, description="journal lines, all fields together")
    max_header_bytes: Limit = Field(default=32 * 1024, description="an HTTP request's line and headers")
    max_headers: Limit = Field(default=100, description="header fields in one HTTP request")
    header_read_timeout: Seconds = Field(default=10.0, description="for an HTTP request's head to arrive")
    max_connections: Limit = Field(default=4096, description="open connections; past it 503, at once")
    body_read_timeout: Seconds = Field(default=10.0, description="for a request body to arrive whole")

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for old, new in DEPRECATED_KEYS.items():
            if old not in data:
                continue
            if new in data:
                raise ValueError(f"{old} is the old name of {new}: give only {new}")
            warnings.warn(f"config key {old} is deprecated: call it {new}", FutureWarning, stacklevel=2)
            data[new] = data.pop(old)
        return data

    @field_validator("tokens")
    @classmethod
    def _unique_token_names(cls, tokens: tuple[TokenConfig, ...]) -> tuple[TokenConfig, ...]:
        names = [token.name for token in tokens]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"token names must be unique: {', '.join(duplicates)}")
        if len({token.sha256 for token in tokens}) != len(tokens):
            raise ValueError("two tokens have the same sha256")
        return tokens

    @model_validator(mode="after")
    def _token_scopes(self) -> Settings:
        """A scope that names a service outside the allowlist, or an action the server does not
        offer, stops startup: a typo there would silently grant less, or look like it grants more."""
        allowlist = self.build_allowlist()
        for token in self.tokens:
            for name in token.services or ():
                if name not in allowlist:
                    raise ValueError(f"token {token.name!r}: service {name!r} is not in the allowlist")
            for action in token.actions or ():
                if action not in self.actions:
                    offered = ", ".join(self.actions)
                    raise ValueError(f"token {token.name!r}: action {action!r} is not enabled ({offered})")
        return self

    @model_validator(mode="after")
    def _unit_budget_above_a_callers(self) -> Settings:
        if self.unit_action_limit is not None and self.unit_action_limit <= self.action_limit:
            raise ValueError(
                f"unit_action_limit ({self.unit_action_limit}) must be above action_limit "
                f"({self.action_limit}): else one caller could use up every other caller's actions"
            )
        return self

    @model_validator(mode="after")
    def _network(self) -> Settings:
        TrustedProxies.parse(self.trusted_proxies)  # a ValueError names the bad entry
        AllowedHosts.of(self.allowed_hosts or ())
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together")
        return self

    def host_names(self) -> AllowedHosts:
        """allowed_hosts, or by default the names this server is surely reached by: localhost,
        the loopback addresses, and the address it binds (unless that is every address)."""
        return AllowedHosts.of(
            self.allowed_hosts if self.allowed_hosts is not None else default_hosts(self.host)
        )

    @model_validator(mode="after")
    def _trusted_only_needs_a_manifest(self) -> Settings:
        if self.trusted_documents_only and not self.trusted_documents:
            raise ValueError(
                "trusted_documents_only needs trusted_documents, the manifest of allowed documents"
            )
        return self

    def enabled_actions(self) -> frozenset[UnitVerb]:
        return frozenset(UnitVerb(action) for action in self.actions)

    @field_validator("allowlist", "extra_services")
    @classmethod
    def _unit_names(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in names or ():
            problem = unit_name_problem(name)
            if problem is not None:
                raise ValueError(f"service name {name!r} {problem}")
        return names

    def build_allowlist(self) -> Allowlist:
        base = DEFAULT_ALLOWLIST if self.allowlist is None else frozenset(self.allowlist)
        return Allowlist(base | frozenset(self.extra_services))

    def watcher_timings(self) -> WatcherTimings:
        return WatcherTimings(
            poll_interval=self.poll_interval,
            memory_interval=self.memory_interval,
            reconnect_interval=self.bus_reconnect_interval,
            idle_after=self.idle_after,
            status_timeout=self.status_timeout,
        )

    def journal_options(self) -> JournalOptions:
        return JournalOptions(
            scope=Scope(self.scope),
            journalctl_path=self.journalctl_path,
            directory=self.journal_directory,
            root=self.journal_root,
            timeout=self.status_timeout,
        )

    def action_rate_limit(self) -> RateLimit:
        """One caller's budget on one unit."""
        return RateLimit(count=self.action_limit, window_seconds=self.action_window)

    def unit_rate_limit(self) -> RateLimit:
        """Every caller's together on one unit: more than one caller's, so none can use it up."""
        count = self.unit_action_limit if self.unit_action_limit is not None else 2 * self.action_limit
        return RateLimit(count=count, window_seconds=self.action_window)

    def route(self) -> RestartVia:
        """The configured restart_via; route.choose_route checks it against the process."""
        return RestartVia(self.restart_via)

    def edge_limits(self) -> EdgeLimits:
        return EdgeLimits(
            max_head_bytes=self.max_header_bytes,
            max_headers=self.max_headers,
            head_timeout=self.header_read_timeout,
            max_connections=self.max_connections,
            max_body_bytes=self.max_body_bytes,
            body_timeout=self.body_read_timeout,
        )

    def systemctl_options(self) -> SystemctlOptions:
        return SystemctlOptions(
            scope=Scope(self.scope),
            systemctl_path=self.systemctl_path,
            sudo_path=self.sudo_path,
            status_timeout=self.status_timeout,
            action_timeout=self.action_timeout,
        )


def load_settings(path: Path | None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read `path` (if any), apply the non-None `overrides`, and validate the result."""
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    data.update({key: value for key, value in (overrides or {}).items() if value is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, source)) from None


def describe_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        if problem["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {problem['msg']} (got {problem.get('input')!r})")
    return "\n".join(lines)
