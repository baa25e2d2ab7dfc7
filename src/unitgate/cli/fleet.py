"""What `unitgate hub`, `unitgate fleet init` and `setup --agent` do, and the settings an agent
or a hub reads (`unitgate agent` itself is cli/agent.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from unitgate.config.settings import Settings
    from unitgate.services.fleet.control import FleetControl


class FleetUsageError(ValueError):
    """A refusal the user can fix; printed without a traceback, exit status 2."""


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def fleet_settings(path: Path | None, overrides: dict[str, object] | None = None) -> Settings:
    """The settings of an agent or a hub: a private config file with a [fleet] table (and the
    command line's flags over it)."""
    from unitgate.config.file import require_private
    from unitgate.config.settings import load_settings

    if path is None:
        raise FleetUsageError("--config FILE is required: the file `unitgate fleet init` wrote")
    settings = load_settings(path, overrides)
    require_private(path, settings)
    if settings.fleet is None:
        raise FleetUsageError(f"{path} has no [fleet] table: `unitgate fleet init` writes one")
    return settings


def build_fleet_control(settings: Settings) -> FleetControl:
    """The hub's facade, from its settings."""
    import nats

    from unitgate.services.fleet.control import FleetControl
    from unitgate.services.fleet.tls import with_tls
    from unitgate.services.policy.audit import AuditLog

    fleet = settings.fleet
    assert fleet is not None
    return FleetControl(
        instance_name=settings.instance_name or "hub",
        enabled=settings.enabled_actions(),
        audit=AuditLog(Path(settings.audit_file) if settings.audit_file else None),
        servers=fleet.servers,
        seed=fleet.credentials,
        heartbeat_interval=fleet.heartbeat_interval,
        offline_after=fleet.offline_after,
        request_timeout=fleet.request_timeout,
        action_timeout=settings.action_timeout,
        connect=with_tls(nats.connect, fleet.tls_ca),
    )


def hub(args: argparse.Namespace, run_server: Callable[[object, Settings], None]) -> int:
    from unitgate.server.app import create_app

    settings = fleet_settings(args.config, {"host": args.host, "port": args.port})
    if not settings.tokens:
        raise FleetUsageError("no tokens configured: `unitgate fleet init` writes one into hub.toml")
    signal.signal(signal.SIGTERM, raise_interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        run_server(create_app(settings, build_fleet_control(settings)), settings)
    return 0


def fleet(args: argparse.Namespace) -> int:
    if args.fleet_command == "init":
        return fleet_init(args)
    return change_host(args)


def fleet_init(args: argparse.Namespace) -> int:
    from unitgate.services.fleet import credentials
    from unitgate.services.fleet.plan import TlsPaths
    from unitgate.services.policy.access import Role
    from unitgate.services.policy.tokens import config_snippet, new_token

    instances = [name.strip() for name in args.instances.split(",") if name.strip()]
    if not instances:
        raise FleetUsageError("--instances names at least one instance: web1,web2,...")
    given = (args.tls_cert, args.tls_key, args.tls_ca)
    if any(given) and not all(given):
        raise FleetUsageError("--tls-cert, --tls-key and --tls-ca go together (or none: they are made)")
    tls = TlsPaths(str(args.tls_ca), str(args.tls_cert), str(args.tls_key)) if all(given) else None
    token = new_token()
    admin = config_snippet("admin", Role.OPERATOR, token)
    urls = [url.strip() for url in args.nats_url.split(",") if url.strip()]
    routes = [route.strip() for route in (args.routes or "").split(",") if route.strip()]
    written = credentials.init(args.dir, instances, urls, admin, routes, tls)
    # Alone on the first line, as `token new` prints it; hub.toml keeps only its SHA-256.
    print(token)
    print(f"unitgate fleet init: wrote {len(written)} files in {args.dir.resolve()}:", file=sys.stderr)
    for path in written:
        print(f"  {path}", file=sys.stderr)
    print(
        f"  nats-server -c {args.dir}/nats-server.conf (a cluster: nats-server-N.conf on node N);\n"
        f"  unitgate hub --config {args.dir / 'hub.toml'};\n"
        "  and on each server, with its own file: unitgate agent --config web1.toml\n"
        "  The first line above is the hub's admin token, shown this once.",
        file=sys.stderr,
    )
    return 0


def change_host(args: argparse.Namespace) -> int:
    """add-host, remove-host, rotate: applied to every node here, then proven on every server."""
    import nats

    from unitgate.deploy import fleet_hosts as lifecycle

    name, directory = args.name, args.dir
    refused = admitted = ""
    if args.fleet_command == "add-host":
        applied, key = lifecycle.add_host(directory, name)
        admitted = key.seed
    elif args.fleet_command == "remove-host":
        applied, refused = lifecycle.remove_host(directory, name)
    else:
        applied, refused, key = lifecycle.rotate(directory, name)
        admitted = key.seed
    for line in applied.lines:
        print(f"  {line}", file=sys.stderr)
    if not applied.everywhere:
        said = f"unitgate fleet {args.fleet_command} {name}: written; in force once every node reloads"
        print(said, file=sys.stderr)
        _next_steps(args.fleet_command, name, applied.plan.directory)
        return 0
    problems = asyncio.run(lifecycle.confirm(nats.connect, applied.plan, refused, admitted))
    if problems:
        raise FleetUsageError(f"the change is written, but not in force everywhere: {'; '.join(problems)}")
    print(f"unitgate fleet {args.fleet_command} {name}: in force on every server", file=sys.stderr)
    if args.fleet_command == "remove-host":
        try:
            purged = asyncio.run(lifecycle.purge_host(nats.connect, applied.plan, name))
        except Exception as error:  # the key is refused whatever happens here: say what is left
            print(f"  its statuses stay in the bucket (hubs list it offline): {error}", file=sys.stderr)
        else:
            said = f"  {purged} keys of {name} purged from the bucket: hubs no longer list it"
            print(said, file=sys.stderr)
    _next_steps(args.fleet_command, name, applied.plan.directory)
    return 0


def _next_steps(command: str, name: str, directory: Path) -> None:
    if command == "add-host":
        print(
            f"  On {name}: copy {directory / f'{name}.toml'}, {directory / f'{name}.nk'} and the CA it "
            f"names, then `unitgate setup --agent --fleet-config {name}.toml --credentials {name}.nk`",
            file=sys.stderr,
        )
    elif command == "rotate":
        print(
            f"  On {name}: put the new {directory / f'{name}.nk'} where its agent reads its key "
            "(`unitgate setup --agent` again does it) and restart unitgate-agent",
            file=sys.stderr,
        )


def demo(args: argparse.Namespace, run_server: Callable[[object, Settings], None]) -> int:
    """`unitgate demo --fleet`: the fleet on this machine, a hub without tokens on loopback."""
    from unitgate.config.settings import load_settings
    from unitgate.sandbox.demo_fleet import INSTANCES, demo_fleet
    from unitgate.server.app import create_app

    signal.signal(signal.SIGTERM, raise_interrupt)  # unwinds like Ctrl-C: everything stops
    with contextlib.suppress(KeyboardInterrupt), demo_fleet() as hub_config:
        settings = load_settings(hub_config, {"port": args.port, "insecure_no_auth": True})
        print(
            f"  Dashboard: http://127.0.0.1:{settings.port}/\n"
            f"unitgate demo --fleet: a nats-server, and {len(INSTANCES)} private systemd user managers "
            f"with an agent each ({', '.join(INSTANCES)}), under one hub.\n"
            f"  GraphiQL:  http://127.0.0.1:{settings.port}/graphql\n"
            "  NO AUTHENTICATION: the hub listens on 127.0.0.1 only, and every client is an operator.\n"
            "  Ctrl-C stops the hub, the agents, the managers and nats-server.",
            flush=True,
        )
        run_server(create_app(settings, build_fleet_control(settings)), settings)
    return 0


def setup_agent(args: argparse.Namespace) -> int:
    """`unitgate setup --agent`: the agent installed as unitgate-agent.service."""
    from unitgate.deploy.agent import AGENT_SERVICE, AgentRequest, setup_agent
    from unitgate.deploy.install import SetupError

    if args.fleet_config is None or args.credentials is None:
        raise FleetUsageError(
            "setup --agent needs --fleet-config INSTANCE.toml and --credentials INSTANCE.nk"
        )
    request = AgentRequest(
        args.fleet_config, args.credentials, args.restart_via, args.dry_run, args.user, args.nats_ca
    )
    try:
        report = setup_agent(request)
    except SetupError as error:
        raise FleetUsageError(str(error)) from None
    for line in report.lines:
        print(line)
    if not args.dry_run:
        print(f"{AGENT_SERVICE} runs; `journalctl -u {AGENT_SERVICE}` tells how its connection goes")
    return 0
