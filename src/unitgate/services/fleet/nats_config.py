"""A nats-server config rendered from the fleet's plan: TLS for clients, TLS and credentials for
cluster routes, and one NKEY user per agent with permissions from the subjects table."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from unitgate.services.fleet import subjects
from unitgate.services.fleet.plan import ROUTE_USER, FleetPlan, listen_address, route_address

MAX_PAYLOAD = 1 << 20  # what one NATS message may carry; a log batch stays well below it
TLS_TIMEOUT = 2  # seconds a TLS handshake may take before nats-server drops the connection


def _user(public: str, permissions: subjects.Permissions) -> str:
    return (
        f"    {{ nkey: {json.dumps(public)}, permissions: {{\n"
        f"        publish: {{ allow: {json.dumps(list(permissions.publish))} }},\n"
        f"        subscribe: {{ allow: {json.dumps(list(permissions.subscribe))} }},\n"
        f"        allow_responses: true }} }}"
    )


def _tls(plan: FleetPlan, verify: bool) -> str:
    assert plan.tls is not None
    fields = [
        f"cert_file: {json.dumps(plan.tls.cert)}",
        f"key_file: {json.dumps(plan.tls.key)}",
        f"ca_file: {json.dumps(plan.tls.ca)}",
        'min_version: "1.2"',
        f"timeout: {TLS_TIMEOUT}",
    ]
    if verify:
        fields.append("verify: true")
    return "tls { " + ", ".join(fields) + " }"


def _route_url(route: str, password: str | None) -> str:
    if password is None:
        return route
    parts = urlsplit(route)
    host, port = route_address(route)
    return f"{parts.scheme}://{ROUTE_USER}:{password}@{host}:{port}"


def _cluster(plan: FleetPlan, node: int) -> str:
    if not plan.routes:
        return ""
    host, port = route_address(plan.routes[node - 1])
    lines = ["cluster {", '  name: "unitgate"', f"  listen: {json.dumps(f'{host}:{port}')}"]
    if plan.tls is not None:
        # Mutual TLS: a route must show a certificate of the fleet's CA before it says anything.
        lines.append("  " + _tls(plan, verify=True))
    if plan.route_password is not None:
        # And the route's own password: a certificate alone (one from a shared CA) is not enough.
        lines.append(
            f"  authorization {{ user: {json.dumps(ROUTE_USER)}, "
            f"password: {json.dumps(plan.route_password)}, timeout: {TLS_TIMEOUT} }}"
        )
    routes = [_route_url(r, plan.route_password) for r in plan.routes]
    lines += [f"  routes: {json.dumps(routes)}", "}"]
    return "\n".join(lines) + "\n"


def server_config(plan: FleetPlan, node: int = 0) -> str:
    """One node's config (node 0 alone; 1..N in a cluster). It holds no seed, only public keys,
    but the route password: it is as private as the seeds."""
    host, port = listen_address(plan.servers[max(node, 1) - 1])
    users = [_user(plan.hub, subjects.hub_permissions())]
    if plan.admin is not None:
        users.append(_user(plan.admin, subjects.admin_permissions()))
    users += [_user(key, subjects.agent_permissions(name)) for name, key in plan.instances.items()]
    suffix = f"-{node}" if node else ""
    tls = _tls(plan, verify=False) + "\n" if plan.tls is not None else ""
    return (
        "# Written by `unitgate fleet` from fleet.json: edit that through `unitgate fleet add-host`,\n"
        "# `remove-host` and `rotate`, which write this again. Each agent may publish and subscribe\n"
        "# only under its own instance's subjects and keys; the hubs watch them all and send commands.\n"
        f"listen: {json.dumps(f'{host}:{port}')}\n"
        f'server_name: "unitgate-nats{suffix}"\n'
        f"pid_file: {json.dumps(str(plan.pid_path(node)))}\n"
        f"max_payload: {MAX_PAYLOAD}\n"
        f"jetstream {{ store_dir: {json.dumps(str(plan.directory / f'jetstream{suffix}'))} }}\n"
        + tls
        + _cluster(plan, node)
        + "authorization {\n  users = [\n"
        + ",\n".join(users)
        + "\n  ]\n}\n"
    )
