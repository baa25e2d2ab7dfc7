"""The `unitgate` command line's words: every command, option and help text."""

from __future__ import annotations

import argparse
from pathlib import Path

from unitgate import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unitgate",
        description="A GraphQL API for a dashboard to watch and restart allowlisted systemd services.",
    )
    parser.add_argument("--version", action="version", version=f"unitgate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the API", description="Serve the GraphQL API.")
    _config_option(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.add_argument(
        "--scope", choices=["system", "user"], help="systemd manager to talk to (default system)"
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=None,
        help="serve without tokens, everyone an operator; refused unless the host is a loopback address",
    )

    agent = commands.add_parser(
        "agent",
        help="bridge this server's services to a fleet's NATS (no listening socket)",
        description=(
            "Run this server's services layer (allowlist, watcher, guard, audit, journal) and bridge it "
            "to NATS: each status change is written to the fleet's bucket once, and the actions and log "
            "requests addressed to this instance are answered after this server's own checks. It opens "
            "no port. The config needs instance_name and a [fleet] table (`unitgate fleet init`)."
        ),
    )
    _config_option(agent)
    hub = commands.add_parser(
        "hub",
        help="serve the API over every agent of a fleet",
        description=(
            "Serve the same GraphQL API, dashboard and /metrics over every host of a fleet: queries from "
            "the view the bucket keeps, actions and logs as requests to the host's agent. It keeps no "
            "state of its own; several hubs need no coordination."
        ),
    )
    _config_option(hub)
    hub.add_argument("--host", help="address to bind (default: the config's, else 127.0.0.1)")
    hub.add_argument("--port", type=int, help="port to bind (default: the config's, else 8000)")
    fleet = commands.add_parser("fleet", help="set up a fleet of agents and hubs, and change its hosts")
    fleet_commands = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    init = fleet_commands.add_parser(
        "init",
        help="write a fleet's nats-server config, keys and config files",
        description=(
            "Write DIR/fleet.json (the fleet's record, which add-host, remove-host and rotate change), "
            "DIR/nats-server.conf (JetStream, TLS, one NKEY user per agent and one for the hubs, each "
            "agent allowed its own subjects and keys only), DIR/hub.toml with a fresh admin token "
            "(printed once, alone on the first line), and DIR/INSTANCE.toml with its key beside it for "
            "each agent. Without --tls-cert, a CA and a certificate for every host of --nats-url and "
            "--routes are made (DIR/ca.pem is what agents and hubs trust; the CA's key is not kept). "
            "Every file is readable by its owner only; none is overwritten."
        ),
    )
    init.add_argument("dir", type=Path, metavar="DIR", help="where to write the files")
    init.add_argument("--instances", required=True, metavar="NAME,...", help="the agents' instance names")
    init.add_argument(
        "--nats-url",
        required=True,
        metavar="nats://HOST:PORT[,...]",
        help="where agents and hubs reach NATS; several are a cluster, one config file per node",
    )
    init.add_argument(
        "--routes",
        metavar="nats-route://HOST:PORT,...",
        help="for a cluster: each node's cluster address, in the order of --nats-url",
    )
    init.add_argument("--tls-cert", type=Path, metavar="FILE", help="the NATS servers' certificate (PEM)")
    init.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key (PEM, unencrypted)")
    init.add_argument("--tls-ca", type=Path, metavar="FILE", help="the CA that signed it (clients trust it)")
    for action, text in (
        ("add-host", "add a host: its key and config written, every node's config written and reloaded"),
        ("remove-host", "remove a host: its key refused at once, its files and its statuses gone"),
        ("rotate", "give a host a new key: the old one refused at once; copy NAME.nk to the host"),
    ):
        change = fleet_commands.add_parser(
            action,
            help=text,
            description=(
                f"{text[0].upper()}{text[1:]}. The change goes into DIR/fleet.json and every "
                "nats-server-*.conf; each node running here is tested with `nats-server -t`, reloaded "
                "(no agent or hub restarts) and asked until it shows the change. A node elsewhere "
                "needs its new config copied to it and `nats-server --signal reload`."
            ),
        )
        change.add_argument("name", metavar="NAME", help="the host's instance name")
        change.add_argument(
            "--dir", type=Path, default=Path(), metavar="DIR", help="the fleet's directory (default: here)"
        )

    demo = commands.add_parser(
        "demo",
        help="run against a private systemd with demo services",
        description=(
            "Boot a private systemd user manager with a few demo services and serve unitgate "
            "against it on 127.0.0.1, without authentication. Ctrl-C stops everything."
        ),
    )
    demo.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    demo.add_argument(
        "--fleet",
        action="store_true",
        help="a nats-server and three demo hosts (web1, web2, web3) with an agent each, under one hub",
    )

    commands.add_parser("schema", help="print the GraphQL schema (SDL)")
    documents = commands.add_parser(
        "documents",
        help="print a trusted-documents manifest for .graphql files",
        description=(
            "Print the JSON manifest that `trusted_documents` reads (the format graphql-codegen's client "
            "preset writes as persisted-documents.json): each file's SHA-256 and its text. Each file must "
            "hold a valid GraphQL document; a client sends the hash as documentId."
        ),
    )
    documents.add_argument("files", nargs="+", type=Path, metavar="FILE.graphql")
    assets = commands.add_parser(
        "graphiql-assets",
        help="fetch GraphiQL's files so the page works without a CDN",
        description=(
            "Fetch, with npm, the exact files strawberry's GraphiQL page names, check each against the "
            "page's integrity hash, and keep them where unitgate serves them from."
        ),
    )
    assets.add_argument("--dir", type=Path, help="where to put them (default: inside the installed package)")

    token = commands.add_parser("token", help="manage API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    new = token_commands.add_parser(
        "new",
        help="make a new token",
        description=(
            "Print a new random token alone on the first line, then the [[tokens]] entry to paste "
            "into the config file. The config keeps only the token's SHA-256."
        ),
    )
    new.add_argument("--name", required=True, help="a name for the token, shown in the audit log")
    new.add_argument("--role", required=True, choices=["viewer", "operator"], help="what it may do")
    new.add_argument(
        "--services",
        metavar="NAME,...",
        help="the allowlisted services it reaches (default: all); others answer ServiceNotAllowed",
    )
    new.add_argument(
        "--actions",
        metavar="ACTION,...",
        help="the actions it may take, of restart, reload, start, stop (default: all the server offers)",
    )
    _config_option(new, "/etc/unitgate/unitgate.toml when it exists", "to check the scope against")

    setup = commands.add_parser(
        "setup",
        help="install unitgate as a hardened system service (as root)",
        description=(
            "As root: create the unitgate user, write /etc/unitgate/unitgate.toml with a fresh operator "
            "token (printed once, alone on the first line; a config that exists keeps its tokens), install "
            "the polkit rule or the sudoers drop-in, the unit (and its sudo drop-in), put `unitgate` on "
            "PATH, enable and start the service, then run `unitgate doctor`. A second run changes nothing."
        ),
    )
    setup.add_argument(
        "--restart-via",
        choices=["polkit", "sudo"],
        help="how restarts get their privilege (default: the config's, polkit for a new one)",
    )
    setup.add_argument("--host", help="address to bind (default 127.0.0.1)")
    setup.add_argument("--port", type=int, help="port to bind (default 8000)")
    setup.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    setup.add_argument("--user", default="unitgate", help="the user unitgate runs as (default unitgate)")
    setup.add_argument(
        "--agent",
        action="store_true",
        help="install the fleet's agent (unitgate-agent.service, no listening socket) instead of the API",
    )
    setup.add_argument(
        "--fleet-config", type=Path, metavar="INSTANCE.toml", help="with --agent: from `unitgate fleet init`"
    )
    setup.add_argument(
        "--credentials", type=Path, metavar="INSTANCE.nk", help="with --agent: the agent's key, beside it"
    )
    setup.add_argument(
        "--nats-ca",
        type=Path,
        metavar="FILE",
        help="with --agent: the fleet's CA, which the agent trusts NATS by (default: ca.pem beside it)",
    )
    setup.add_argument(
        "--nginx",
        action="store_true",
        help="then put nginx in front over TLS: its site, a socket only nginx reaches, a certificate",
    )
    _nginx_options(setup)

    site = commands.add_parser(
        "nginx-site",
        help="print the nginx site `setup --nginx` writes",
        description=(
            "Print the nginx site that `setup --nginx` installs: TLS, websockets, limits no looser than "
            "unitgate's, X-Forwarded-For set from nginx's own view, forwarded to unitgate's socket "
            '(set trusted_proxies = ["unix"] and allowed_hosts in the config to match).'
        ),
    )
    _nginx_options(site)
    _config_option(site, "/etc/unitgate/unitgate.toml when it exists", "for the limits")

    doctor = commands.add_parser(
        "doctor",
        help="check what would fail on this server, with the fix",
        description=(
            "Check, one line each, what unitgate needs: the config file, the systemd manager over D-Bus, "
            "the journal, the restart route (NoNewPrivileges, the sudoers drop-in or the polkit rule), "
            "the allowlisted units and their aliases, GraphiQL's files. Run it as root or as the service "
            "user. Exit status 1 when something would fail."
        ),
    )
    _config_option(doctor, "/etc/unitgate/unitgate.toml when it exists")
    doctor.add_argument("--user", default="unitgate", help="the user unitgate runs as (default unitgate)")

    for name, what in (("sudoers", "a sudoers drop-in"), ("polkit-rule", "a polkit rule")):
        generator = commands.add_parser(
            name,
            help=f"print {what} allowing exactly the allowlisted restarts",
            description=f"Print {what} that lets USER restart the allowlisted units and nothing else.",
        )
        _config_option(generator, "/etc/unitgate/unitgate.toml when it exists")
        generator.add_argument(
            "--user", default="unitgate", help="the user unitgate runs as (default unitgate)"
        )
    return parser


def _nginx_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server-name", metavar="NAME", help="the name browsers use (default: this host's FQDN)"
    )
    parser.add_argument(
        "--certificate",
        type=Path,
        metavar="FILE",
        help="your certificate (chain); default: a self-signed one",
    )
    parser.add_argument("--key", type=Path, metavar="FILE", help="its private key")
    parser.add_argument("--https-port", type=int, metavar="N", help="where nginx serves https (default 443)")
    parser.add_argument(
        "--http-port", type=int, metavar="N", help="where nginx redirects http to https (default 80; 0: none)"
    )


def _config_option(parser: argparse.ArgumentParser, default: str = "", purpose: str = "") -> None:
    text = (
        "TOML configuration file"
        + (f" {purpose}" if purpose else "")
        + (f" (default {default})" if default else "")
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help=text)
