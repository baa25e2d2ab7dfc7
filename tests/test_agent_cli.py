"""The agent reads its config in a forked child (cli/agent.py): what comes back, what a
refusal looks like from the command line, and what the child's memory leaves behind (nothing)."""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from unitgate.cli import agent as agent_cli
from unitgate.cli.agent import AGENT_MEMORY_INTERVAL, ConfigReadFailed, agent_plan, read_in_child
from unitgate.config.errors import ConfigError
from unitgate.services.systemd.allowlist import Allowlist
from unitgate.services.systemd.units import UnitVerb

FLEET = '[fleet]\nservers = ["tls://10.0.0.5:4222"]\ncredentials = "/etc/unitgate/web1.nk"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def agent(config: Path | None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "unitgate", "agent"] + (["--config", str(config)] if config else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_the_plan_holds_what_the_agent_runs_on(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        'instance_name = "web1"\nscope = "user"\nactions = ["restart"]\n'
        f'extra_services = ["worker"]\n{FLEET}tls_ca = "/etc/unitgate/nats-ca.pem"\nheartbeat_interval = 3.0\n',
    )
    plan = read_in_child(lambda: agent_plan(config))
    assert plan.instance_name == "web1"
    assert plan.scope == "user"
    assert plan.servers == ("tls://10.0.0.5:4222",)
    assert plan.credentials == "/etc/unitgate/web1.nk"
    assert plan.tls_ca == "/etc/unitgate/nats-ca.pem"
    assert plan.heartbeat_interval == 3.0
    assert plan.control.enabled == frozenset({UnitVerb.RESTART})
    assert "worker" in plan.control.allowlist
    assert plan.control.instance_name == "web1"
    # The agent writes a status on a change, not on a memory timer.
    assert plan.control.timings.memory_interval == AGENT_MEMORY_INTERVAL
    assert plan == agent_plan(config)  # the same, read here


def test_an_unpickled_allowlist_checks_its_names_again() -> None:
    sent = pickle.dumps(Allowlist(["nginx"]))
    assert pickle.loads(sent) == Allowlist(["nginx"])  # noqa: S301 (the test's own bytes)
    with pytest.raises(ValueError, match="service name"):
        pickle.loads(sent.replace(b"nginx", b"../x/"))  # noqa: S301


def test_what_the_child_loads_stays_in_the_child() -> None:
    assert "colorsys" not in sys.modules
    assert read_in_child(lambda: importlib.import_module("colorsys").__name__) == "colorsys"
    assert "colorsys" not in sys.modules


def test_a_refusal_in_the_child_is_raised_here_with_its_message() -> None:
    def refuse() -> None:
        raise ConfigError("config file x: port must be a number")

    with pytest.raises(ConfigError, match="port must be a number"):
        read_in_child(refuse)


def test_a_child_that_dies_is_an_error_not_a_hang() -> None:
    with pytest.raises(ConfigReadFailed, match="no answer"):
        read_in_child(lambda: os._exit(3))


def test_a_child_that_dies_is_one_line_and_status_1(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(agent_cli, "agent_plan", lambda path: os._exit(3))
    assert agent_cli.run_agent(argparse.Namespace(config=None)) == 1
    said = capfd.readouterr().err
    assert said == "unitgate agent: the child reading the config ended with wait status 768 and no answer\n"


def test_a_bug_in_the_child_is_reported_with_its_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    def broken() -> None:
        raise KeyError("oops")

    with pytest.raises(ConfigReadFailed, match="see the traceback above"):
        read_in_child(broken)
    assert "KeyError: 'oops'" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (None, "--config FILE is required"),
        ('instance_name = "web1"\n', "has no [fleet] table"),
        (FLEET, "instance_name must be set"),
        ('instance_name = "a.b"\n' + FLEET, "instance_name"),
        ('instance_name = "web1"\nport = "x"\n' + FLEET, "port"),
        ('instance_name = "web1"\n[fleet]\nservers = ["http://x"]\ncredentials = "k"\n', "servers"),
        ("instance_name = \n", "not valid TOML"),
    ],
)
def test_the_agent_refuses_a_bad_config_in_one_line(tmp_path: Path, text: str | None, said: str) -> None:
    done = agent(None if text is None else write(tmp_path, text))
    assert done.returncode == 2
    assert done.stderr.startswith("unitgate: ")
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
