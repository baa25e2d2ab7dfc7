"""What the tests share: tokens and callers, settings for the sandbox, a server in a thread,
GraphQL documents and clients, and process checks. Fixtures stay in conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import uvicorn
from nats.aio.client import Client as NATS

from unitgate.config.settings import Settings
from unitgate.sandbox.host import process_tree
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.server.edge import uvicorn_options
from unitgate.services.fleet.tls import with_tls
from unitgate.services.policy.access import Role, scoped_actor
from unitgate.services.policy.control import ServiceControl
from unitgate.services.policy.tokens import new_token, token_sha256
from unitgate.services.systemd.units import UnitVerb

# Fresh for every session: nothing in the repository or its logs can hold a valid token.
OPERATOR_TOKEN = new_token()
VIEWER_TOKEN = new_token()
# As the tokens above authenticate: every offered action for the operator, none for the viewer.
OPERATOR = scoped_actor("test-operator", Role.OPERATOR, "127.0.0.1", UnitVerb)
VIEWER = scoped_actor("test-viewer", Role.VIEWER, "127.0.0.1", UnitVerb)


HOSTILE_NAMES = [
    "../../../etc/passwd",
    "nginx.service",
    "--help",
    "nginx;reboot",
    "ng\u0456nx",  # Cyrillic і
    "",
    "n" * 10_000,
    "nginx\x00",
    "nginx\n",
    "\x00",
    " nginx",
    "NGINX",
    "nginx ",
    "nginx@evil",
    "-nginx",
    "*",
    "nginx\\x2eservice",
]


def sandbox_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "scope": "user",
        # An hour: every live update in the tests must come from D-Bus signals, not from polling.
        "poll_interval": 3600.0,
        "memory_interval": 3600.0,
        "action_timeout": 15.0,
        # The suite restarts the same units many times; the limit itself is tested on its own.
        "action_limit": 1000,
        "tokens": [
            {"name": "test-operator", "role": "operator", "sha256": token_sha256(OPERATOR_TOKEN)},
            {"name": "test-viewer", "role": "viewer", "sha256": token_sha256(VIEWER_TOKEN)},
        ],
    }
    values.update(overrides)
    return Settings.model_validate(values)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    ws_url: str
    control: ServiceControl
    loop: asyncio.AbstractEventLoop
    app: Any = None

    def call(self, coroutine: Any, timeout: float = 10) -> Any:
        """Run a coroutine on the server's own loop (to inspect its tasks, say)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


@contextlib.contextmanager
def serve(app: Any, control: ServiceControl) -> Iterator[RunningServer]:
    """Run `app` under uvicorn on a free loopback port, in a thread with its own event loop."""
    port = free_port()
    options = {**uvicorn_options(), "loop": "none"}  # the thread brings its own loop
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options)
    uv = uvicorn.Server(config)
    loops: list[asyncio.AbstractEventLoop] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        loops.append(loop)
        loop.run_until_complete(uv.serve())
        loop.close()

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield RunningServer(
            f"http://127.0.0.1:{port}/graphql", f"ws://127.0.0.1:{port}/graphql", control, loops[0], app
        )
    finally:
        uv.should_exit = True
        thread.join(20)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """For state in another thread that offers no event to await: check often, fail loudly."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


STATUS_FIELDS = (
    "name active activeState subState loadState description mainPid memoryBytes "
    "uptimeSeconds activeSince restartCount unitFileState"
)
SERVICE = f"""query($name: String!) {{ service(name: $name) {{
  __typename
  ... on ServiceStatus {{ {STATUS_FIELDS} }}
  ... on Error {{ message }}
  ... on ServiceNotAllowed {{ name }}
  ... on ServiceNotFound {{ name }}
  ... on SystemctlTimeout {{ command timeoutSeconds }}
}} }}"""
RESTART = """mutation($name: String!) { restartService(name: $name) {
  __typename
  ... on RestartSucceeded { service { name mainPid activeState } }
  ... on Error { message }
  ... on RestartFailed { name exitCode }
  ... on SystemctlTimeout { command timeoutSeconds }
} }"""


def bearer(token: str = OPERATOR_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(
    url: str, query: str, variables: dict[str, Any] | None = None, token: str = OPERATOR_TOKEN
) -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            url, json={"query": query, "variables": variables or {}}, headers=bearer(token)
        )
    assert response.status_code == 200, response.text
    return response.json()


async def post_app(app: Any, query: str, variables: dict[str, Any] | None = None) -> Any:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=bearer()
        )
    assert response.status_code == 200, response.text
    return response.json()


def children() -> set[int]:
    """Our direct children, zombies included: a reaped child is not among them."""
    return set(process_tree().get(os.getpid(), []))


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


# Chromium as the tests launch it: as the machine's notes say, without these it keeps calling
# home, which is refused here.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def started_unit(sandbox: UserManagerSandbox, name: str, body: str) -> Iterator[str]:
    """A unit of this test's own in the sandbox, started; stopped, removed and forgotten after."""
    path = sandbox.unit_dir / f"{name}.service"
    path.write_text(body)
    sandbox.systemctl("daemon-reload")
    sandbox.systemctl("start", f"{name}.service")
    try:
        yield name
    finally:
        sandbox.systemctl("stop", f"{name}.service", check=False)
        path.unlink()
        sandbox.systemctl("daemon-reload")
        sandbox.systemctl("reset-failed", f"{name}.service", check=False)  # its own, not every failed unit


def raw_request(port: int, head: bytes, timeout: float = 5) -> bytes:
    """Send a request's head (and no body), then read what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        return sock.recv(65536)


@dataclass
class Served:
    """unitgate serving as a process of its own, and what can be measured of it."""

    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def children(self) -> int:
        return len(process_tree().get(self.process.pid, []))


def stderr_lines(served: Served) -> list[str]:
    """What the server wrote to stderr (everything after its start line), once it has stopped."""
    served.process.send_signal(signal.SIGTERM)
    _, err = served.process.communicate(timeout=30)
    return err.splitlines() if err else []


async def answer_time(url: str) -> float:
    """How long an honest client waits for `{ __typename }` (a fact to report, never asserted)."""
    started = time.perf_counter()
    async with httpx.AsyncClient(headers=bearer(), timeout=30) as client:
        response = await client.post(url, json={"query": "{ __typename }"})
    assert response.json() == {"data": {"__typename": "Query"}}, response.text
    return time.perf_counter() - started


FLEET_INIT = [sys.executable, "-m", "unitgate", "fleet", "init"]


def fleet_init(directory: Path, instances: str, nats_url: str, *options: str) -> str:
    """`unitgate fleet init` as an admin runs it; the hub's admin token it printed first."""
    init = subprocess.run(
        [*FLEET_INIT, str(directory), "--instances", instances, "--nats-url", nats_url, *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return init.stdout.splitlines()[0]


def fleet_connect(directory: Path) -> Callable[..., Awaitable[NATS]]:
    """nats.connect as the fleet's processes dial: trusting the CA `fleet init` made."""
    return with_tls(nats.connect, str(directory / "ca.pem"))


def agent_on_sandbox(config: Path, sandbox: UserManagerSandbox) -> None:
    """An agent's config from `fleet init`, pointed at a sandbox: its keys go before the [fleet]
    table, where TOML wants them. (Polling an hour: every update comes from D-Bus signals.)"""
    head, table = config.read_text().split("[fleet]\n", 1)
    config.write_text(
        head + 'scope = "user"\npoll_interval = 3600.0\nmemory_interval = 3600.0\naction_limit = 1000\n'
        f'journal_directory = "{sandbox.journal_directory}"\n[fleet]\n' + table
    )


@dataclass(frozen=True)
class Certificates:
    """A certificate authority of the test's own and a server certificate it signed."""

    ca: Path
    cert: Path
    key: Path


def make_certificates(directory: Path, names: Sequence[str], addresses: Sequence[str] = ()) -> Certificates:
    """Real certificates, made with openssl as an admin would: a CA, and a server certificate for
    `names` and `addresses` signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, request = directory / "server.pem", directory / "server.key", directory / "server.csr"
    san = ",".join([*(f"DNS:{name}" for name in names), *(f"IP:{address}" for address in addresses)])
    extensions = directory / "server.ext"
    extensions.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for argv in (
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=test CA"],
        ["openssl", "req", *ec, "-keyout", key, "-out", request, "-subj", f"/CN={names[0]}"],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            request,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "2",
            "-extfile",
            extensions,
        ],
    ):
        subprocess.run([str(part) for part in argv], check=True, capture_output=True, timeout=60)
    return Certificates(ca, cert, key)


# Each websocket protocol's words for starting an operation and for its results.
PROTOCOL_WORDS = {"graphql-transport-ws": ("subscribe", "next"), "graphql-ws": ("start", "data")}


async def first_result(ws: Any, protocol: str, token: str, document: str) -> dict[str, Any]:
    """connection_init with the token, then one operation: its first result's data."""
    start, result = PROTOCOL_WORDS[protocol]
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": start, "payload": {"query": document}}))
    message = json.loads(await ws.recv())
    while message["type"] == "ka":  # the legacy protocol's keep-alive
        message = json.loads(await ws.recv())
    assert message["type"] == result, message
    return dict(message["payload"]["data"])
