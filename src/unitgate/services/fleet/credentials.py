"""`unitgate fleet init`: a new fleet's plan (NKEYs, TLS, the route password) and every file
rendered from it: each nats-server node's config, the hub's and each agent's config and key."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nkeys

from unitgate.services.fleet import plan as plans
from unitgate.services.fleet.nats_config import server_config
from unitgate.services.fleet.plan import FleetPlan, PlanError, TlsPaths, write_private

CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "nats-server.pem", "nats-server-key.pem"


@dataclass(frozen=True, slots=True)
class NKey:
    seed: str
    public: str


def new_nkey() -> NKey:
    """A fresh user key pair: the seed stays with its process, the server knows the public key."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    pair = nkeys.from_seed(bytearray(seed))
    return NKey(seed=seed.decode(), public=pair.public_key.decode())


def fleet_table(plan: FleetPlan, credentials: Path) -> str:
    table = f"[fleet]\nservers = {json.dumps(list(plan.servers))}\n"
    table += f"credentials = {json.dumps(str(credentials))}\n"
    if plan.tls is not None:
        table += f"tls_ca = {json.dumps(plan.tls.ca)}\n"
    return table


def agent_config(plan: FleetPlan, name: str) -> str:
    return (
        "# An agent: `unitgate agent --config THIS`. It opens no port; it connects out to NATS.\n"
        f"instance_name = {json.dumps(name)}\n\n" + fleet_table(plan, plan.directory / f"{name}.nk")
    )


def hub_config(plan: FleetPlan, token_entry: str) -> str:
    return (
        "# A hub: `unitgate hub --config THIS`. The same API as one server's, over every agent.\n"
        'instance_name = "hub"\nhost = "127.0.0.1"\nport = 8000\n'
        'actions = ["restart", "reload", "start", "stop"]\n\n'
        + fleet_table(plan, plan.directory / "hub.nk")
        + "\n"
        + token_entry
    )


def server_files(plan: FleetPlan) -> dict[Path, str]:
    """Every node's config, as the plan has it now."""
    return {plan.config_path(node): server_config(plan, node) for node in plan.nodes}


def _given_tls(tls: TlsPaths, hosts: Sequence[str]) -> TlsPaths:
    """Certificates of the admin's own PKI, checked before anything is written; referred to
    where they are, so a renewal in place is taken up by the next reload."""
    from unitgate.services.fleet import certificates

    paths = TlsPaths(*(str(Path(p).resolve()) for p in (tls.ca, tls.cert, tls.key)))
    try:
        files = certificates.TlsFiles(*(Path(p).read_bytes() for p in (paths.ca, paths.cert, paths.key)))
    except OSError as error:
        raise PlanError(f"cannot read {error.filename}: {error.strerror}") from None
    try:
        certificates.check(files, hosts, certificates.utcnow())
    except certificates.CertificateProblem as problem:
        raise PlanError(f"--tls-cert {tls.cert}: {problem}") from None
    return paths


def init(
    directory: Path,
    instances: Sequence[str],
    nats_urls: Sequence[str],
    token_entry: str,
    routes: Sequence[str] = (),
    tls: TlsPaths | None = None,
) -> list[Path]:
    """Write every file of a new fleet into `directory`; refuses to overwrite one. Several
    `nats_urls` are a cluster: `routes` then names each node's cluster address, in order, and
    each node gets nats-server-N.conf. Clients and routes speak TLS: with the certificates
    given, or with a CA and a certificate made here."""
    for name in instances:
        plans.check_instance(name)
    if len(set(instances)) != len(instances):
        raise PlanError("instance names must be distinct")
    if not nats_urls:
        raise PlanError("--nats-url names at least one server")
    if len(nats_urls) > 1 and len(routes) != len(nats_urls):
        raise PlanError("a cluster needs --routes: one nats-route://HOST:PORT per --nats-url, in order")
    if len(nats_urls) == 1 and routes:
        raise PlanError("--routes makes a cluster: give every node's client URL in --nats-url, in order")
    names = plans.hosts(nats_urls, routes)  # checks every URL and route
    directory = directory.resolve()
    generated = None
    if tls is not None:
        tls = _given_tls(tls, names)
    else:
        from unitgate.services.fleet import certificates

        generated = certificates.generate(names, certificates.utcnow())
        tls = TlsPaths(*(str(directory / f) for f in (CA_FILE, CERT_FILE, KEY_FILE)))
    servers = tuple("tls://{}:{}".format(*plans.listen_address(url)) for url in nats_urls)
    hub, admin = new_nkey(), new_nkey()
    agents = {name: new_nkey() for name in instances}
    plan = FleetPlan(
        directory=directory,
        servers=servers,
        hub=hub.public,
        routes=tuple(routes),
        tls=tls,
        route_password=secrets.token_urlsafe(32) if routes else None,
        admin=admin.public,
    ).with_instances({name: key.public for name, key in agents.items()})
    files: dict[Path, str] = {directory / plans.PLAN_FILE: plan.to_json(), **server_files(plan)}
    if generated is not None:
        files[directory / CA_FILE] = generated.ca.decode()
        files[directory / CERT_FILE] = generated.cert.decode()
        files[directory / KEY_FILE] = generated.key.decode()
    files[directory / "hub.nk"] = hub.seed + "\n"
    files[directory / "admin.nk"] = admin.seed + "\n"  # for `fleet` commands: stays here
    files[directory / "hub.toml"] = hub_config(plan, token_entry)
    for name, key in agents.items():
        files[directory / f"{name}.nk"] = key.seed + "\n"
        files[directory / f"{name}.toml"] = agent_config(plan, name)
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise PlanError(f"refusing to overwrite {', '.join(existing)}")
    for path, text in files.items():
        write_private(path, text)
    return list(files)
