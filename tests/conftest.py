"""Fixtures that start real things: one private systemd user manager and one unitgate server per session."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import RunningServer, sandbox_settings, serve
from tests.units import STARTED, UNITS
from unitgate.app import build_control, create_app
from unitgate.sandbox import UserManagerSandbox
from unitgate.services.policy.control import ServiceControl


@pytest.fixture(scope="session")
def sandbox() -> Iterator[UserManagerSandbox]:
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
        return path

    return write
