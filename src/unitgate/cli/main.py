"""The `unitgate` command line: what each command does (cli_parser.py has their words)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from unitgate.cli import fleet as cli_fleet
from unitgate.cli.parser import build_parser

if TYPE_CHECKING:
    from unitgate.config.settings import Settings


class UsageError(Exception):
    """A refusal the user can fix; printed without a traceback, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from unitgate.config.errors import ConfigError

    try:
        return _COMMANDS[args.command](args)
    except (ConfigError, UsageError, ValueError) as error:
        print(f"unitgate: {error}", file=sys.stderr)
        return 2


def _schema(args: argparse.Namespace) -> int:
    from unitgate.schema.root import schema

    print(schema.as_str())
    return 0


def _graphiql_assets(args: argparse.Namespace) -> int:
    from unitgate.deploy import graphiql_fetch

    return graphiql_fetch.main(["--dir", str(args.dir)] if args.dir else [])


def _serve(args: argparse.Namespace) -> int:
    from unitgate.config.file import require_private
    from unitgate.config.settings import load_settings
    from unitgate.server.app import create_app

    settings = load_settings(
        args.config,
        {
            "host": args.host,
            "port": args.port,
            "scope": args.scope,
            "insecure_no_auth": args.insecure_no_auth,
        },
    )
    if args.config is not None:
        require_private(args.config, settings)
    if settings.insecure_no_auth:
        from unitgate.config.network import is_loopback

        if not is_loopback(settings.host):
            raise UsageError(
                f"--insecure-no-auth is refused on {settings.host}: "
                "only a loopback address may go without tokens"
            )
        print(
            "unitgate: WARNING: serving without authentication; every client is an operator", file=sys.stderr
        )
    elif not settings.tokens:
        raise UsageError(
            "no tokens configured: add one made by `unitgate token new --name NAME --role operator` "
            "to the config file, or pass --insecure-no-auth on a loopback address"
        )
    # uvicorn shuts down gracefully, then re-raises the signal; SIGTERM then unwinds like Ctrl-C
    # and the process exits 0, as a service manager expects of a clean stop.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        _run_server(create_app(settings), settings)
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.fleet:
        return cli_fleet.demo(args, _run_server)
    from unitgate.config.settings import load_settings
    from unitgate.sandbox.demo import demo_sandbox
    from unitgate.sandbox.manager import SandboxError
    from unitgate.server.app import build_control, create_app

    overrides: dict[str, object] = {
        "scope": "user",
        "port": args.port,
        "poll_interval": 1.0,
        "insecure_no_auth": True,
    }
    load_settings(None, overrides)  # a bad --port fails here, before anything boots
    # SIGTERM must unwind like Ctrl-C so the sandbox's teardown always runs.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    sandbox = demo_sandbox()
    try:
        sandbox.start()
    except SandboxError as error:
        print(f"unitgate: cannot start the demo sandbox: {error}", file=sys.stderr)
        return 1
    try:
        journal = {"journal_directory": str(sandbox.journal_directory)} if sandbox.journal_directory else {}
        settings = load_settings(None, {**overrides, **journal})
        app = create_app(settings, build_control(settings, sandbox.env))
        url = f"http://127.0.0.1:{settings.port}/graphql"
        print(
            f"  Dashboard: http://127.0.0.1:{settings.port}/\n"
            f"unitgate demo: a private systemd user manager runs {', '.join(sandbox.units)}.\n"
            f"  GraphiQL:  {url}\n"
            f"  NO AUTHENTICATION: the demo listens on 127.0.0.1 only, and every client is an operator.\n"
            f"  Drive the sandbox yourself: XDG_RUNTIME_DIR={sandbox.runtime_dir} systemctl --user status\n"
            f"  Ctrl-C stops unitgate and the sandbox.",
            flush=True,
        )
        _run_server(app, settings)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


def _token(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from unitgate.config.settings import describe_validation_error, load_settings
    from unitgate.config.tables import TokenConfig
    from unitgate.services.policy.access import Role
    from unitgate.services.policy.tokens import config_snippet, new_token, token_sha256

    token = new_token()
    services = _listed(args.services)
    actions = _listed(args.actions)
    try:
        entry = TokenConfig(
            name=args.name, role=args.role, sha256=token_sha256(token), services=services, actions=actions
        )
    except ValidationError as error:
        raise UsageError(describe_validation_error(error, "token new")) from None
    config = installed_config(args.config)
    if config is not None:
        # The server would refuse a scope outside its allowlist or its actions: say so now.
        settings = load_settings(config)
        load_settings(config, {"tokens": [*(t.model_dump() for t in settings.tokens), entry.model_dump()]})
    print(token)
    print()
    print("# Add this to unitgate's config file; keep the token above secret, it is not stored anywhere:")
    print(config_snippet(args.name, Role(args.role), token, services, actions), end="")
    return 0


def _listed(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated option as a tuple; None when it was not given."""
    return None if value is None else tuple(part.strip() for part in value.split(",") if part.strip())


def _privilege(args: argparse.Namespace) -> int:
    from unitgate.config.settings import load_settings
    from unitgate.deploy.privilege import render_polkit_rule, render_sudoers

    settings = load_settings(installed_config(args.config))
    allowlist = settings.build_allowlist()
    if args.command == "sudoers":
        print(
            render_sudoers(allowlist, args.user, settings.systemctl_path, settings.enabled_actions()), end=""
        )
    else:
        print(render_polkit_rule(allowlist, args.user, settings.enabled_actions()), end="")
    return 0


def _setup(args: argparse.Namespace) -> int:
    from unitgate.config.settings import load_settings
    from unitgate.deploy import doctor
    from unitgate.deploy.install import Layout, Request, SetupError, setup
    from unitgate.deploy.nginx import NginxLayout, nginx_request, setup_nginx

    if args.agent:
        return cli_fleet.setup_agent(args)

    layout = Layout()
    request = Request(
        restart_via=args.restart_via, host=args.host, port=args.port, dry_run=args.dry_run, user=args.user
    )
    try:
        nginx = nginx_request(args)  # its mistakes before any step
        report = setup(request, layout, emit_token=lambda token: print(token, flush=True))
        if nginx is not None:
            setup_nginx(report, nginx, layout, NginxLayout(), args.user)
    except SetupError as error:
        raise UsageError(str(error)) from None
    for line in report.lines:
        print(line)
    if args.dry_run:
        return 0
    print("doctor:")
    return doctor.run(load_settings(layout.config), layout.config, args.user)


def _doctor(args: argparse.Namespace) -> int:
    from unitgate.config.settings import load_settings
    from unitgate.deploy import doctor

    config = installed_config(args.config)
    return doctor.run(load_settings(config), config, args.user)


def installed_config(given: Path | None) -> Path | None:
    """The config file named, else the one `unitgate setup` installs when it is there: the
    generators and doctor must not quietly ignore the server's allowlist."""
    from unitgate.deploy.install import Layout

    if given is None and Layout().config.exists():
        return Layout().config
    return given


def _nginx_site(args: argparse.Namespace) -> int:
    from unitgate.deploy.nginx import print_site

    return print_site(args, installed_config(args.config))


def _documents(args: argparse.Namespace) -> int:
    import json

    from graphql import GraphQLError, parse

    from unitgate.view.trusted_documents import document_hash

    manifest: dict[str, str] = {}
    for path in args.files:
        try:
            text = path.read_text(encoding="utf-8")
            parse(text)
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
        except GraphQLError as error:
            raise UsageError(f"{path} is not a GraphQL document: {error.message}") from None
        manifest[document_hash(text)] = text
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


def _agent(args: argparse.Namespace) -> int:
    from unitgate.cli.agent import run_agent

    return run_agent(args)


def _hub(args: argparse.Namespace) -> int:
    return cli_fleet.hub(args, _run_server)


def _fleet(args: argparse.Namespace) -> int:
    return cli_fleet.fleet(args)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": _serve,
    "agent": _agent,
    "hub": _hub,
    "fleet": _fleet,
    "demo": _demo,
    "schema": _schema,
    "graphiql-assets": _graphiql_assets,
    "token": _token,
    "sudoers": _privilege,
    "polkit-rule": _privilege,
    "setup": _setup,
    "nginx-site": _nginx_site,
    "doctor": _doctor,
    "documents": _documents,
}


def _run_server(app: object, settings: Settings) -> None:
    from unitgate.server import listen

    listen.run(app, settings)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
