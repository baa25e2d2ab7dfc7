"""Fixtures that start real things: one private systemd user manager and one unitgate server per
session, and what tests need from the machine (systemd, Chromium, node)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import (
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    RunningServer,
    Served,
    bearer,
    free_port,
    sandbox_settings,
    serve,
)
from tests.units import STARTED, UNITS
from unitgate.sandbox.manager import SYSTEMD, UserManagerSandbox
from unitgate.server.app import build_control, create_app
from unitgate.services.policy.control import ServiceControl
from unitgate.services.policy.tokens import token_sha256


@pytest.fixture(scope="session")
def own_systemd() -> None:
    """The test boots a systemd manager of its own: it needs systemd, unshare, and root (or
    unprivileged user namespaces). `make test` installs the packages."""
    assert os.access(SYSTEMD, os.X_OK), "make test installs Debian's systemd"
    assert shutil.which("unshare"), "make test installs util-linux"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, which Playwright drives."""
    path = Path("/usr/bin/chromium")
    assert path.exists(), "make test installs Debian's chromium"
    return path


@pytest.fixture(scope="session")
def node() -> str:
    """Node.js, for the graphql-http audit and the polkit rule's JavaScript."""
    path = shutil.which("node")
    assert path, "make test installs nodejs"
    return path


@pytest.fixture(scope="session")
def sandbox(own_systemd: None) -> Iterator[UserManagerSandbox]:
    with UserManagerSandbox(UNITS, start=STARTED) as manager:
        yield manager


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
async def make_client(
    make_control: Callable[..., ServiceControl],
) -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """The app with its own settings, in process (httpx's ASGI transport, no server, no port),
    for checks that need no real socket; the client carries the operator's token."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> httpx.AsyncClient:
            app = create_app(sandbox_settings(**overrides), make_control(**overrides))
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://localhost",
                headers=bearer(),
                timeout=30,
            )
            return await stack.enter_async_context(client)

        yield make


@pytest.fixture
async def control(make_control: Callable[..., ServiceControl]) -> ServiceControl:
    return make_control()


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


@pytest.fixture
def tmp_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "unitgate.toml"
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)  # as setup leaves it: serve refuses a config others may read
        return path

    return write


@pytest.fixture
def serve_process(sandbox: UserManagerSandbox, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """unitgate as a process of its own (`unitgate serve`), on the sandbox, with the operator's
    and the viewer's tokens: for attacks measured by its descriptors, memory, children, stderr."""
    started: list[Served] = []

    def start(**settings: Any) -> Served:
        port = free_port()
        values = {
            "scope": "user",
            "port": port,
            "journal_directory": str(sandbox.journal_directory),
            "poll_interval": 3600.0,
            "memory_interval": 3600.0,
            **settings,
        }
        lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        for name, role, token in (("ops", "operator", OPERATOR_TOKEN), ("view", "viewer", VIEWER_TOKEN)):
            lines += [
                "[[tokens]]",
                f'name = "{name}"',
                f'role = "{role}"',
                f'sha256 = "{token_sha256(token)}"',
            ]
        config = tmp_path / f"unitgate-{port}.toml"
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)  # serve refuses a config others may read
        process = subprocess.Popen(
            [sys.executable, "-m", "unitgate", "serve", "--config", str(config)],
            env={**os.environ, **sandbox.env},
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        for line in process.stderr:
            if "Uvicorn running" in line:
                break
        served = Served(process, port)
        started.append(served)
        return served

    yield start
    for served in started:
        served.process.send_signal(signal.SIGTERM)
        served.process.wait(30)
        assert served.process.stderr is not None
        served.process.stderr.close()
