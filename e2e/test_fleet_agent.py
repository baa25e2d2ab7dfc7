"""An agent on systemd as PID 1: installed by `unitgate setup --agent` in the container, against
a nats-server and a hub on the host; Debian's real nginx restarted through the hub."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from tests.helpers import fleet_init, free_port, serve

from e2e.conftest import Deployment
from unitgate.cli.fleet import build_fleet_control
from unitgate.config.settings import load_settings
from unitgate.sandbox import demo_fleet
from unitgate.server.app import create_app


@pytest.fixture
def fleet_host(deployed: Deployment, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """fleet init on the host, a nats-server there (the container shares its network), the
    agent's two files copied in, `setup --agent` run inside, and a hub on the host."""
    port = free_port()
    token = fleet_init(tmp_path, "pid1", f"nats://127.0.0.1:{port}")
    nats = demo_fleet.start_nats(tmp_path / "nats-server.conf", port)
    try:
        for name in ("pid1.toml", "pid1.nk", "ca.pem"):
            deployed.container.run("sh", "-c", f"cat > /root/{name}", input=(tmp_path / name).read_text())
        setup = deployed.sh(
            "/opt/unitgate/bin/unitgate setup --agent --fleet-config /root/pid1.toml --credentials /root/pid1.nk"
        )
        assert "unitgate-agent.service" in setup.stdout
        # The fleet's CA is installed beside the key, and the agent dials TLS trusting it alone.
        installed = deployed.sh("cat /etc/unitgate/agent.toml").stdout
        assert 'tls_ca = "/etc/unitgate/nats-ca.pem"' in installed
        assert "tls://127.0.0.1:" in installed
        assert deployed.sh("cat /etc/unitgate/nats-ca.pem").stdout == (tmp_path / "ca.pem").read_text()
        settings = load_settings(tmp_path / "hub.toml", {"port": free_port()})
        control = build_fleet_control(settings)
        with serve(create_app(settings, control), cast(Any, control)) as hub:
            yield hub, token
    finally:
        deployed.sh("systemctl stop unitgate-agent.service", check=False)
        demo_fleet.stop(nats)


def ask(hub: Any, token: str, query: str) -> Any:
    response = httpx.post(
        hub.url, json={"query": query}, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_the_hub_restarts_real_nginx_through_the_agent_on_pid1(
    deployed: Deployment, fleet_host: tuple[Any, str]
) -> None:
    hub, token = fleet_host
    listed = '{ services(instances: ["pid1"]) { ... on ServiceList { services { name mainPid } } } }'
    deadline = time.monotonic() + 60
    while True:  # the agent connects, writes its statuses, is heard: state in another machine
        names = {s["name"]: s["mainPid"] for s in ask(hub, token, listed)["services"]["services"]}
        if "nginx" in names:
            break
        assert time.monotonic() < deadline, deployed.sh(
            "journalctl -u unitgate-agent -n 30", check=False
        ).stdout
        time.sleep(0.1)
    assert names["nginx"] == deployed.main_pid("nginx.service")
    before = deployed.main_pid("nginx.service")
    restart = 'mutation { restartService(name: "nginx", instance: "pid1") { __typename ... on RestartSucceeded { service { mainPid } } } }'
    result = ask(hub, token, restart)["restartService"]
    assert result["__typename"] == "RestartSucceeded", result
    after = deployed.main_pid("nginx.service")
    assert after != before
    assert result["service"]["mainPid"] == after
    # The agent runs as the unitgate user under the shipped hardening, and listens on nothing.
    agent = deployed.main_pid("unitgate-agent.service")
    status = deployed.sh(f"cat /proc/{agent}/status").stdout
    assert "NoNewPrivs:\t1" in status
    assert f"pid={agent}," not in deployed.sh("ss -ltnupH", check=False).stdout
    # Its audit names the caller as the hub reported it.
    audit = deployed.sh("journalctl -u unitgate-agent -o cat -n 50", check=False).stdout
    assert '"token": "admin"' in audit
