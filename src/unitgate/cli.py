"""The `unitgate` command line: serve, demo and schema."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from unitgate import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unitgate",
        description="A GraphQL API for a dashboard to watch and restart allowlisted systemd services.",
    )
    parser.add_argument("--version", action="version", version=f"unitgate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the API", description="Serve the GraphQL API.")
    serve.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.add_argument(
        "--scope", choices=["system", "user"], help="systemd manager to talk to (default system)"
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

    commands.add_parser("schema", help="print the GraphQL schema (SDL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        from unitgate.schema.root import schema

        print(schema.as_str())
        return 0
    if args.command == "serve":
        return _serve(args)
    return _demo(args)


def _serve(args: argparse.Namespace) -> int:
    from unitgate.config import ConfigError, load_settings

    try:
        settings = load_settings(args.config, {"host": args.host, "port": args.port, "scope": args.scope})
    except ConfigError as error:
        print(f"unitgate: {error}", file=sys.stderr)
        return 2
    from unitgate.app import create_app

    _run_server(create_app(settings), settings.host, settings.port)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from unitgate.app import build_control, create_app
    from unitgate.config import ConfigError, load_settings
    from unitgate.demo import demo_sandbox
    from unitgate.sandbox import SandboxError

    try:
        settings = load_settings(None, {"scope": "user", "port": args.port, "poll_interval": 1.0})
    except ConfigError as error:
        print(f"unitgate: {error}", file=sys.stderr)
        return 2
    # SIGTERM must unwind like Ctrl-C so the sandbox's teardown always runs.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    sandbox = demo_sandbox()
    try:
        sandbox.start()
    except SandboxError as error:
        print(f"unitgate: cannot start the demo sandbox: {error}", file=sys.stderr)
        return 1
    try:
        app = create_app(settings, build_control(settings, sandbox.env))
        url = f"http://127.0.0.1:{settings.port}/graphql"
        print(
            f"unitgate demo: a private systemd user manager runs {', '.join(sandbox.units)}.\n"
            f"  GraphiQL:  {url}\n"
            f"  No authentication: the demo listens on 127.0.0.1 only.\n"
            f"  Drive the sandbox yourself: XDG_RUNTIME_DIR={sandbox.runtime_dir} systemctl --user status\n"
            f"  Ctrl-C stops unitgate and the sandbox.",
            flush=True,
        )
        _run_server(app, "127.0.0.1", settings.port)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


def _run_server(app: object, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", ws="websockets-sansio")  # type: ignore[arg-type]


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
