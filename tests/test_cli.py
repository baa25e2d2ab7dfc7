"""The command line, run as a user would run it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, running
from unitgate.sandbox.host import descendants

UNITGATE = [sys.executable, "-m", "unitgate"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UNITGATE, *args], capture_output=True, text=True, timeout=60)


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "demo", "schema"):
        assert command in result.stdout
    serve = run("serve", "--help")
    assert "--config" in serve.stdout
    assert "--scope" in serve.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_bad_config_stops_startup_with_the_key(tmp_config: Callable[[str], Path]) -> None:
    result = run("serve", "--config", str(tmp_config('port = "eighty"\nbogus = 1\n')))
    assert result.returncode == 2
    assert "port: Input should be a valid integer" in result.stderr
    assert "bogus: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_value_stops_startup() -> None:
    result = run("serve", "--port", "0")
    assert result.returncode == 2
    assert "port: Input should be greater than or equal to 1" in result.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_demo_serves_and_leaves_nothing_behind(stop_signal: signal.Signals, own_systemd: None) -> None:
    port = free_port()
    with subprocess.Popen(
        [*UNITGATE, "demo", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as demo:
        family, sandbox_dir = drive_the_demo(demo, port, stop_signal)
    assert demo.returncode == 0
    assert not [pid for pid in family if running(pid)]
    assert not sandbox_dir.exists()


def drive_the_demo(
    demo: subprocess.Popen[str], port: int, stop_signal: signal.Signals
) -> tuple[set[int], Path]:
    """Query the running demo, then stop it with `stop_signal`: its processes and sandbox folder."""
    try:
        assert demo.stdout is not None
        banner = ""
        for line in demo.stdout:
            banner += line
            if "Uvicorn running" in line:
                break
        assert f"http://127.0.0.1:{port}/graphql" in banner
        sandbox_dir = re.search(r"XDG_RUNTIME_DIR=(\S+)/run", banner)
        assert sandbox_dir is not None
        family = descendants(demo.pid)
        assert len(family) >= 4  # the manager and its services

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=json.dumps(
                {"query": "{ services { ... on ServiceList { services { name active } } } }"}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            services = json.load(response)["data"]["services"]["services"]
        assert {"nginx", "php8.2-fpm", "mariadb", "redis-server"} <= {s["name"] for s in services}
        logs = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=json.dumps(
                {
                    "query": '{ serviceLogs(name: "nginx") { __typename ... on ServiceLogs { lines { message } } } }'
                }
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(logs, timeout=10) as response:  # noqa: S310 (loopback)
            result = json.load(response)["data"]["serviceLogs"]
        assert result["__typename"] == "ServiceLogs"  # the demo has a journal of its own
    finally:
        os.kill(demo.pid, stop_signal)
        demo.wait(timeout=30)
    return family, Path(sandbox_dir.group(1))


@pytest.mark.timeout(60)
def test_serve_with_a_config_file(sandbox: Any, tmp_config: Callable[[str], Path]) -> None:
    """`unitgate serve` as an operator runs it: a config file, a token, a real port."""
    from unitgate.services.policy.tokens import new_token, token_sha256

    token = new_token()
    port = free_port()
    config = tmp_config(
        f'scope = "user"\nport = {port}\njournal_directory = "{sandbox.journal_directory}"\n'
        f'[[tokens]]\nname = "ops"\nrole = "operator"\nsha256 = "{token_sha256(token)}"\n'
    )
    with subprocess.Popen(
        [*UNITGATE, "serve", "--config", str(config)],
        env={**os.environ, **sandbox.env},
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        query_the_server(server, port, token)
    assert server.returncode == 0


def query_the_server(server: subprocess.Popen[str], port: int, token: str) -> None:
    """One query with the token and one without, then SIGTERM, as a service manager stops it."""
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if "Uvicorn running" in line:
                break
        query = {"query": '{ service(name: "nginx") { __typename ... on ServiceStatus { activeState } } }'}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=json.dumps(query).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            assert json.load(response) == {
                "data": {"service": {"__typename": "ServiceStatus", "activeState": "active"}}
            }
        anonymous = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=json.dumps(query).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(anonymous, timeout=10)  # noqa: S310 (loopback)
        refused.value.close()
        assert refused.value.code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
