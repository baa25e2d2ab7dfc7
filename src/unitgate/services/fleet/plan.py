"""What a fleet is, as `fleet init` decided it and `add-host`, `remove-host` and `rotate` change
it: DIR/fleet.json, the one record every nats-server config is rendered from again."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from unitgate.services.fleet import subjects

PLAN_FILE = "fleet.json"
ROUTE_USER = "route"


class PlanError(ValueError):
    """The fleet directory cannot be used as asked; nothing was changed."""


@dataclass(frozen=True, slots=True)
class TlsPaths:
    """Absolute paths: the CA clients trust, the servers' certificate and its key."""

    ca: str
    cert: str
    key: str


@dataclass(frozen=True, slots=True)
class FleetPlan:
    directory: Path
    servers: tuple[str, ...]  # the client URLs agents and hubs dial, one per node
    hub: str  # the hubs' NKEY public key
    instances: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # name: key
    routes: tuple[str, ...] = ()  # one nats-route://HOST:PORT per node, in order: a cluster
    tls: TlsPaths | None = None
    route_password: str | None = None  # what the nodes of a cluster prove to each other
    admin: str | None = None  # the `fleet` commands' NKEY public key

    @property
    def nodes(self) -> tuple[int, ...]:
        """0 alone, 1..N in a cluster (nats-server-N.conf)."""
        return tuple(range(1, len(self.servers) + 1)) if self.routes else (0,)

    def config_path(self, node: int) -> Path:
        return self.directory / f"nats-server{f'-{node}' if node else ''}.conf"

    def pid_path(self, node: int) -> Path:
        return self.directory / f"nats-server{f'-{node}' if node else ''}.pid"

    def with_instances(self, instances: Mapping[str, str]) -> FleetPlan:
        return replace(self, instances=MappingProxyType(dict(sorted(instances.items()))))

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "version": 1,
            "servers": list(self.servers),
            "routes": list(self.routes),
            "hub": self.hub,
            "instances": dict(self.instances),
            "tls": None if self.tls is None else dataclasses.asdict(self.tls),
            "route_password": self.route_password,
            "admin": self.admin,
        }
        return json.dumps(data, indent=2) + "\n"


def listen_address(url: str) -> tuple[str, int]:
    """Where nats-server listens, from the URL agents and hubs will use."""
    parts = urlsplit(url)
    if parts.scheme not in ("nats", "tls") or not parts.hostname or parts.path not in ("", "/"):
        raise PlanError(f"--nats-url must look like nats://HOST:PORT or tls://HOST:PORT, not {url!r}")
    try:
        return parts.hostname, parts.port or 4222
    except ValueError:
        raise PlanError(f"--nats-url {url!r} has no usable port") from None


def route_address(route: str) -> tuple[str, int]:
    parts = urlsplit(route)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "nats-route" or not parts.hostname or not port or parts.username:
        raise PlanError(f"a route must look like nats-route://HOST:PORT, not {route!r}")
    return parts.hostname, port


def hosts(servers: Sequence[str], routes: Sequence[str]) -> list[str]:
    """Every name a TLS peer dials, so every name the certificate must hold."""
    names = [listen_address(url)[0] for url in servers] + [route_address(route)[0] for route in routes]
    return list(dict.fromkeys(names))


def check_instance(name: str) -> None:
    problem = subjects.instance_problem(name)
    if problem is not None:
        raise PlanError(f"instance name {name!r} {problem}")
    if name == subjects.HUB_USER:
        raise PlanError(f"no instance may be called {subjects.HUB_USER!r}: the hubs' user is")


def load(directory: Path) -> FleetPlan:
    """The plan `fleet init` wrote in `directory`, checked as strictly as it was made."""
    path = directory / PLAN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(
            f"{directory} is not a fleet's directory: it has no {PLAN_FILE} (`unitgate fleet init` "
            "writes one; a fleet made before it existed needs `fleet init` anew); pass --dir DIR"
        ) from None
    except (OSError, ValueError) as error:
        raise PlanError(f"cannot read {path}: {error}") from None
    try:
        if data.get("version") != 1:
            raise PlanError(f"{path} is of a version this unitgate does not know")
        tls = data["tls"]
        instances = {str(k): str(v) for k, v in dict(data["instances"]).items()}
        for name in instances:
            check_instance(name)
        plan = FleetPlan(
            directory=directory.resolve(),
            servers=tuple(str(s) for s in data["servers"]),
            routes=tuple(str(r) for r in data["routes"]),
            hub=str(data["hub"]),
            tls=None if tls is None else TlsPaths(str(tls["ca"]), str(tls["cert"]), str(tls["key"])),
            route_password=None if data["route_password"] is None else str(data["route_password"]),
            admin=None if data.get("admin") is None else str(data["admin"]),
        ).with_instances(instances)
    except (KeyError, TypeError, AttributeError) as error:
        raise PlanError(f"{path} is not a fleet plan: {error!r}") from None
    for url in plan.servers:
        listen_address(url)
    for route in plan.routes:
        route_address(route)
    return plan


def write_private(path: Path, text: str) -> None:
    """Only the owner reads it, and it appears whole or not at all: written beside, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(partial, 0o600)
    os.replace(partial, path)
