"""`unitgate fleet init`: a nats-server config with one NKEY user per agent and one for the hubs,
each user's permissions written from the subjects table, and every process's own config file."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import nkeys

from unitgate.services.fleet import subjects

MAX_PAYLOAD = 1 << 20  # what one NATS message may carry; a log batch stays well below it


@dataclass(frozen=True, slots=True)
class NKey:
    seed: str
    public: str


def new_nkey() -> NKey:
    """A fresh user key pair: the seed stays with its process, the server knows the public key."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    pair = nkeys.from_seed(bytearray(seed))
    return NKey(seed=seed.decode(), public=pair.public_key.decode())


def listen_address(nats_url: str) -> tuple[str, int]:
    """Where nats-server listens, from the URL agents and hubs will use."""
    parts = urlsplit(nats_url)
    if parts.scheme != "nats" or not parts.hostname:
        raise ValueError(f"--nats-url must look like nats://HOST:PORT, not {nats_url!r}")
    return parts.hostname, parts.port or 4222


def _user(key: NKey, permissions: subjects.Permissions) -> str:
    return (
        f"    {{ nkey: {json.dumps(key.public)}, permissions: {{\n"
        f"        publish: {{ allow: {json.dumps(list(permissions.publish))} }},\n"
        f"        subscribe: {{ allow: {json.dumps(list(permissions.subscribe))} }},\n"
        f"        allow_responses: true }} }}"
    )


def server_config(
    directory: Path,
    nats_url: str,
    hub: NKey,
    agents: dict[str, NKey],
    node: int = 0,
    routes: Sequence[str] = (),
) -> str:
    """One node's config; with `routes` (one per node, this one's at `node - 1`), a cluster."""
    host, port = listen_address(nats_url)
    users = [_user(hub, subjects.hub_permissions())]
    users += [_user(key, subjects.agent_permissions(name)) for name, key in agents.items()]
    suffix = f"-{node}" if node else ""
    cluster = ""
    if routes:
        route = urlsplit(routes[node - 1])
        cluster = (
            f'cluster {{ name: "unitgate", listen: {json.dumps(f"{route.hostname}:{route.port}")}, '
            f"routes: {json.dumps(list(routes))} }}\n"
        )
    return (
        "# Written by `unitgate fleet init`. Each agent may publish and subscribe only under its own\n"
        "# instance's subjects and keys; the hubs watch them all and send the commands.\n"
        f"listen: {json.dumps(f'{host}:{port}')}\n"
        f'server_name: "unitgate-nats{suffix}"\n'
        f"max_payload: {MAX_PAYLOAD}\n"
        f"jetstream {{ store_dir: {json.dumps(str(directory / f'jetstream{suffix}'))} }}\n"
        + cluster
        + "authorization {\n  users = [\n"
        + ",\n".join(users)
        + "\n  ]\n}\n"
    )


def fleet_table(nats_urls: Sequence[str], credentials: Path) -> str:
    return f"[fleet]\nservers = {json.dumps(list(nats_urls))}\ncredentials = {json.dumps(str(credentials))}\n"


def agent_config(name: str, nats_url: Sequence[str], credentials: Path) -> str:
    return (
        "# An agent: `unitgate agent --config THIS`. It opens no port; it connects out to NATS.\n"
        f"instance_name = {json.dumps(name)}\n\n" + fleet_table(nats_url, credentials)
    )


def hub_config(nats_url: Sequence[str], credentials: Path, token_entry: str) -> str:
    return (
        "# A hub: `unitgate hub --config THIS`. The same API as one server's, over every agent.\n"
        'instance_name = "hub"\nhost = "127.0.0.1"\nport = 8000\n'
        'actions = ["restart", "reload", "start", "stop"]\n\n'
        + fleet_table(nats_url, credentials)
        + "\n"
        + token_entry
    )


def write_private(path: Path, text: str) -> None:
    """Only the owner reads it: seeds are secrets, configs hold token hashes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    os.chmod(path, 0o600)


def init(
    directory: Path,
    instances: Sequence[str],
    nats_urls: Sequence[str],
    token_entry: str,
    routes: Sequence[str] = (),
) -> list[Path]:
    """Write every file of a new fleet into `directory`; refuses to overwrite one. Several
    `nats_urls` are a cluster: `routes` then names each node's cluster address, in order, and
    each node gets nats-server-N.conf."""
    for name in instances:
        problem = subjects.instance_problem(name)
        if problem is not None:
            raise ValueError(f"instance name {name!r} {problem}")
    if len(set(instances)) != len(instances) or subjects.HUB_USER in instances:
        raise ValueError(f"instance names must be distinct, and none may be {subjects.HUB_USER!r}")
    for url in nats_urls:
        listen_address(url)
    if len(nats_urls) > 1 and len(routes) != len(nats_urls):
        raise ValueError("a cluster needs --routes: one nats-route://HOST:PORT per --nats-url, in order")
    for route in routes:
        parts = urlsplit(route)
        if parts.scheme != "nats-route" or not parts.hostname or not parts.port:
            raise ValueError(f"a route must look like nats-route://HOST:PORT, not {route!r}")
    directory = directory.resolve()
    hub = new_nkey()
    agents = {name: new_nkey() for name in instances}
    files: dict[Path, str] = {}
    if len(nats_urls) == 1:
        files[directory / "nats-server.conf"] = server_config(directory, nats_urls[0], hub, agents)
    for node, url in enumerate(nats_urls if len(nats_urls) > 1 else (), start=1):
        files[directory / f"nats-server-{node}.conf"] = server_config(
            directory, url, hub, agents, node, routes
        )
    files[directory / "hub.nk"] = hub.seed + "\n"
    files[directory / "hub.toml"] = hub_config(nats_urls, directory / "hub.nk", token_entry)
    for name, key in agents.items():
        files[directory / f"{name}.nk"] = key.seed + "\n"
        files[directory / f"{name}.toml"] = agent_config(name, nats_urls, directory / f"{name}.nk")
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise ValueError(f"refusing to overwrite {', '.join(existing)}")
    for path, text in files.items():
        write_private(path, text)
    return list(files)
