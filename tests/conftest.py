"""Fixtures that start real things: one private systemd user manager and one unitgate server per session."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.units import STARTED, UNITS
from unitgate.app import build_control, create_app
from unitgate.cli import uvicorn_options
from unitgate.config import Settings
from unitgate.sandbox import UserManagerSandbox
from unitgate.services.policy.access import Actor, Role
from unitgate.services.policy.control import ServiceControl
from unitgate.services.policy.tokens import new_token, token_sha256

# Fresh for every session: nothing in the repository or its logs can hold a valid token.
OPERATOR_TOKEN = new_token()
VIEWER_TOKEN = new_token()
OPERATOR = Actor(name="test-operator", role=Role.OPERATOR, address="127.0.0.1")
VIEWER = Actor(name="test-viewer", role=Role.VIEWER, address="127.0.0.1")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[UserManagerSandbox]:
    with UserManagerSandbox(UNITS, start=STARTED) as manager:
        yield manager


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


@pytest.fixture
async def make_control(sandbox: UserManagerSandbox) -> AsyncIterator[Callable[..., ServiceControl]]:
    """Build a ServiceControl on the sandbox (or on `environ`); closed after the test."""
    made: list[ServiceControl] = []

    def make(environ: dict[str, str] | None = None, **overrides: Any) -> ServiceControl:
        overrides.setdefault("journal_directory", str(sandbox.journal_directory))
        control = build_control(sandbox_settings(**overrides), sandbox.env if environ is None else environ)
        made.append(control)
        return control

    yield make
    for control in made:
        await control.aclose()


@pytest.fixture
async def control(make_control: Callable[..., ServiceControl]) -> ServiceControl:
    return make_control()


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

    def call(self, coroutine: Any, timeout: float = 10) -> Any:
        """Run a coroutine on the server's own loop (to inspect its tasks, say)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


@contextlib.contextmanager
def serve(app: Any, control: ServiceControl) -> Iterator[RunningServer]:
    """Run `app` under uvicorn on a free loopback port, in a thread with its own event loop."""
    port = free_port()
    options = {**uvicorn_options(), "loop": "none"}  # the thread brings its own loop
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options)  # type: ignore[arg-type]
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
            f"http://127.0.0.1:{port}/graphql", f"ws://127.0.0.1:{port}/graphql", control, loops[0]
        )
    finally:
        uv.should_exit = True
        thread.join(20)


@pytest.fixture(scope="session")
def server(sandbox: UserManagerSandbox) -> Iterator[RunningServer]:
    """unitgate under uvicorn on a real port, as a dashboard would reach it."""
    settings = sandbox_settings(journal_directory=str(sandbox.journal_directory))
    control = build_control(settings, sandbox.env)
    with serve(create_app(settings, control), control) as running:
        yield running


@pytest.fixture
def make_server(sandbox: UserManagerSandbox) -> Iterator[Callable[..., RunningServer]]:
    """Start a server with its own settings for one test; stopped after it."""
    with contextlib.ExitStack() as stack:

        def make(**overrides: Any) -> RunningServer:
            overrides.setdefault("journal_directory", str(sandbox.journal_directory))
            settings = sandbox_settings(**overrides)
            control = build_control(settings, sandbox.env)
            return stack.enter_context(serve(create_app(settings, control), control))

        yield make


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """For state in another thread that offers no event to await: check often, fail loudly."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


@pytest.fixture
def tmp_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "unitgate.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write
