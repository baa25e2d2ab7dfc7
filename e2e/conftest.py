"""One throwaway Debian with systemd as PID 1 per session: Debian's own nginx, redis-server,
php8.2-fpm and mariadb-server, and unitgate installed exactly as the README's "Running it for
real" says. Every write lands on the container's tmpfs; the host is never touched."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.helpers import free_port

from e2e.container import SystemContainer

ROOT = Path(__file__).parents[1]
SOURCE = "/srv/unitgate-checkout"  # the checkout, read-only inside
PACKAGES = ["nginx", "redis-server", "php8.2-fpm", "mariadb-server", "polkitd", "sudo", "python3-venv"]
SERVICES = ["nginx", "redis-server", "php8.2-fpm", "mariadb"]

# Off Debian's default ports, in case the host (whose network the container shares) uses them.
MOVE_PORTS = r"""
set -e
sed -i 's/listen 80 default_server;/listen 18080 default_server;/; s/listen \[::\]:80 default_server;/listen [::1]:18080 default_server;/' /etc/nginx/sites-enabled/default
sed -i 's/^port 6379/port 16379/' /etc/redis/redis.conf
printf '[mysqld]\nport = 13306\nskip-networking\n' > /etc/mysql/mariadb.conf.d/99-unitgate-e2e.cnf
"""


@dataclass
class Deployment:
    container: SystemContainer
    port: int
    token: str  # the operator token `unitgate setup` printed
    setup_output: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def sh(self, script: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.container.run("sh", "-c", script, check=check, timeout=timeout)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.sh(f"systemctl show --property={','.join(properties)} {unit}").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self, unit: str) -> int:
        return int(self.show(unit, "MainPID")["MainPID"])

    def service_pid(self) -> int:
        return self.main_pid("unitgate.service")

    def wait_healthy(self, timeout: float = 20) -> None:
        """Until the API answers, after a start or restart of unitgate.service (Type=exec: systemd
        has no word for "listening", so ask the port itself)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"unitgate did not answer:\n{self.sh('journalctl -u unitgate -n 30', check=False).stdout}"
                )
            time.sleep(0.05)

    def post(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
        response = httpx.post(
            self.url,
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return response.json()


def copy_checkout(container: SystemContainer, destination: str) -> None:
    """The checkout as a tarball would bring it: without the virtualenv and other build output."""
    container.run(
        "sh",
        "-c",
        f"mkdir -p {destination} && tar -C {SOURCE} --exclude=./.venv --exclude=node_modules "
        f"--exclude=./build --exclude='*.egg-info' --exclude=./artifacts -cf - . | tar -C {destination} -xf -",
    )


@pytest.fixture(scope="session")
def system_container() -> Iterator[SystemContainer]:
    """A booted Debian with the web server's packages installed, running, and off their ports."""
    assert Path("/usr/bin/systemd-nspawn").exists(), "make test installs systemd-container"
    # Fetched once on the host (only its apt cache changes); the container installs from there.
    download = ["apt-get", "install", "-y", "-qq", "--download-only", "--no-install-recommends", *PACKAGES]
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(download, capture_output=True, env=apt_env, timeout=600).returncode != 0:
        # Package lists older than the mirror name files it no longer has: refresh, then again.
        subprocess.run(
            ["apt-get", "update", "-qq"], check=True, capture_output=True, env=apt_env, timeout=600
        )
        subprocess.run(download, check=True, capture_output=True, env=apt_env, timeout=600)
    with SystemContainer(bind_ro={str(ROOT): SOURCE}) as container:
        # The host's policy-rc.d keeps packages from starting during install: that is what lets
        # their ports move first. It goes afterwards, so the container behaves as a server does.
        container.run(
            "sh",
            "-c",
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
            + " ".join(PACKAGES),
            timeout=600,
        )
        container.run("sh", "-c", MOVE_PORTS)
        container.run("sh", "-c", "rm -f /usr/sbin/policy-rc.d; systemctl start " + " ".join(SERVICES))
        yield container


@pytest.fixture(scope="session")
def deployed(system_container: SystemContainer) -> Deployment:
    """unitgate installed and set up as the README says, on the polkit route."""
    container = system_container
    copy_checkout(container, "/root/unitgate")
    port = free_port()
    # The README's steps, word for word (its checkout is /root/unitgate here).
    container.run("sh", "-c", "python3 -m venv /opt/unitgate", timeout=120)
    container.run("sh", "-c", "/opt/unitgate/bin/pip install --quiet /root/unitgate", timeout=600)
    result = container.run("sh", "-c", f"/opt/unitgate/bin/unitgate setup --port {port}", timeout=300)
    token = result.stdout.splitlines()[0]
    assert re.fullmatch(r"ugt_[A-Za-z0-9_-]{43}", token), result.stdout
    deployment = Deployment(container, port, token, result.stdout)
    deployment.wait_healthy()
    return deployment


def graphql_message(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})
