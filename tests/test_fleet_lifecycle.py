"""A fleet's life on real parts: a nats-server over TLS, agents as processes on systemd user
managers, a hub; `fleet add-host`, `rotate` and `remove-host` applied to the running server by
its reload, with no other agent or hub disconnected; plaintext refused; doctor's fleet checks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import nats
import pytest

from tests.helpers import RunningServer, agent_on_sandbox, fleet_init, free_port
from tests.test_fleet import hub_server, start_nats, stop, until
from tests.units import CRASHY, STARTED, UNITS
from unitgate.config.settings import load_settings
from unitgate.deploy.doctor_fleet import nats_findings
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.fleet import certificates, credentials

pytestmark = pytest.mark.timeout(180)
FLEET = [sys.executable, "-m", "unitgate", "fleet"]
HUB = [sys.executable, "-m", "unitgate", "hub", "--config"]


@dataclass
class Life:
    directory: Path
    url: str
    token: str
    hosts: dict[str, UserManagerSandbox]
    nats: subprocess.Popen[bytes]
    hub: RunningServer
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_agent(self, name: str) -> None:
        """An agent whose log is kept in a file, so a test can read what it said of NATS."""
        self.stop_agent(name)
        with self.log(name).open("ab") as log:
            self.agents[name] = subprocess.Popen(
                [sys.executable, "-m", "unitgate", "agent", "--config", str(self.directory / f"{name}.toml")],
                env={**os.environ, **self.hosts[name].env},
                stderr=log,
            )

    def stop_agent(self, name: str) -> None:
        if name in self.agents:
            stop(self.agents.pop(name))

    def log(self, name: str) -> Path:
        return self.directory / f"agent-{name}.log"

    def said(self, name: str) -> str:
        return self.log(name).read_text(errors="replace")


@pytest.fixture(scope="module")
def life(sandbox: UserManagerSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Life]:
    directory = tmp_path_factory.mktemp("life")
    url = f"nats://127.0.0.1:{free_port()}"
    token = fleet_init(directory, "web1,web2", url)
    with UserManagerSandbox(UNITS, start=STARTED) as second:
        # web3 will join later, on the session's manager beside web1 (two agents may share one).
        hosts = {"web1": sandbox, "web2": second, "web3": sandbox}
        for name in ("web1", "web2"):
            agent_on_sandbox(directory / f"{name}.toml", hosts[name])
        nats_process = start_nats(directory / "nats-server.conf", url)
        try:
            with hub_server(directory, token) as hub:
                running = Life(directory, url, token, hosts, nats_process, hub)
                running.start_agent("web1")
                running.start_agent("web2")
                try:
                    yield running
                finally:
                    for name in list(running.agents):
                        running.stop_agent(name)
        finally:
            stop(nats_process)


async def ask(life: Life, query: str) -> Any:
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {life.token}"}) as client:
        body = (await client.post(life.hub.url, json={"query": query})).json()
    assert "errors" not in body, body
    return body["data"]


async def hosts_online(life: Life) -> dict[str, bool]:
    return {i["name"]: i["online"] for i in (await ask(life, "{ instances { name online } }"))["instances"]}


def fleet(life: Life, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLEET, *args, "--dir", str(life.directory)], capture_output=True, text=True, timeout=60, check=False
    )


SERVICES = "{ services { ... on ServiceList { services { id mainPid } } } }"


async def pids(life: Life) -> dict[str, int]:
    return {s["id"]: s["mainPid"] for s in (await ask(life, SERVICES))["services"]["services"]}


def hub_reconnects(life: Life) -> int:
    nc = cast(Any, life.hub.control).link.nc
    return int(nc.stats["reconnects"])


async def test_hosts_join_rotate_and_leave_a_running_fleet_with_no_one_else_disturbed(life: Life) -> None:
    async def both() -> bool:
        states = await hosts_online(life)
        return states.get("web1") is True and states.get("web2") is True

    await until(both, 60)
    host = life.hosts["web1"]

    # add-host: in force at once on the running server; the new agent is let in and listed.
    added = fleet(life, "add-host", "web3")
    assert added.returncode == 0, added.stderr
    assert "reloaded it" in added.stderr
    assert "in force on every server" in added.stderr
    agent_on_sandbox(life.directory / "web3.toml", host)
    life.start_agent("web3")

    async def web3_listed() -> bool:
        return any(i.startswith("web3/") for i in await pids(life))

    await until(web3_listed, 60)

    # rotate web1 while one of its units changes: the old key is dropped and refused, the new
    # one (copied where the agent reads it, then the agent restarted) brings the change in.
    killed = int(host.show(f"{CRASHY}.service", "MainPID")["MainPID"])
    rotated = fleet(life, "rotate", "web1")
    assert rotated.returncode == 0, rotated.stderr
    os.kill(killed, signal.SIGKILL)

    async def dropped(name: str) -> bool:
        return "disconnected from NATS" in life.said(name)

    await until(lambda: dropped("web1"), 10)
    await until(lambda: asyncio.sleep(0, "Authorization Violation" in life.said("web1")), 10)
    life.start_agent("web1")  # it reads the new web1.nk that rotate wrote

    async def change_seen() -> bool:
        return (await pids(life)).get(f"web1/{CRASHY}") not in (None, 0, killed)

    await until(change_seen, 60)

    # remove-host web2: dropped at once, its statuses purged, gone from every listing.
    removed = fleet(life, "remove-host", "web2")
    assert removed.returncode == 0, removed.stderr
    assert "purged from the bucket" in removed.stderr
    await until(lambda: dropped("web2"), 10)

    async def web2_gone() -> bool:
        return "web2" not in await hosts_online(life) and not any(
            i.startswith("web2/") for i in await pids(life)
        )

    await until(web2_gone, 10)
    assert not (life.directory / "web2.nk").exists()

    # No one else noticed: the hub never reconnected, and web3's agent was never dropped
    # (web1's and web2's logs above show that line is written when it happens).
    assert hub_reconnects(life) == 0
    assert "disconnected from NATS" not in life.said("web3")
    assert (await hosts_online(life)) == {"web1": True, "web3": True}

    # Bad input changes nothing, and says why.
    again = fleet(life, "add-host", "web3")
    assert again.returncode == 2
    assert "web3 is already a host" in again.stderr
    unknown = fleet(life, "remove-host", "web2")
    assert unknown.returncode == 2
    assert "web2 is not a host of this fleet (its hosts: web1, web3)" in unknown.stderr


async def test_a_plaintext_client_is_refused_by_the_generated_server(life: Life) -> None:
    port = int(life.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        info = plain.recv(65536)
        assert info.startswith(b"INFO ")
        assert json.loads(info[5:].split(b"\r\n")[0])["tls_required"] is True
        seed = (life.directory / "hub.nk").read_text().strip()
        plain.sendall(b'CONNECT {"verbose":false,"pedantic":false,"tls_required":false}\r\nPING\r\n')
        said = b""
        while chunk := plain.recv(65536):  # the server closes: nothing it says is a PONG
            said += chunk
    assert b"PONG" not in said
    assert seed.encode() not in said
    # A client that does TLS but trusts the system's store, not the fleet's CA, is refused too.
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        await nats.connect(
            [life.url], nkeys_seed=str(life.directory / "hub.nk"), allow_reconnect=False, connect_timeout=5
        )


async def test_doctor_tells_a_key_let_in_from_one_refused_a_wrong_ca_and_no_server(
    life: Life, tmp_path: Path
) -> None:
    hub = load_settings(life.directory / "hub.toml")
    assert hub.fleet is not None
    [good] = await nats_findings(hub, nats.connect)
    assert good.status == "ok", good.line()
    assert "lets this key in" in good.detail
    stranger = tmp_path / "stranger.nk"
    stranger.write_text(credentials.new_nkey().seed)
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(certificates.generate(["127.0.0.1"], certificates.utcnow()).ca)
    nowhere = f"tls://127.0.0.1:{free_port()}"
    cases: dict[str, dict[str, object]] = {
        "refuses this key": {"credentials": str(stranger)},
        "fails TLS": {"tls_ca": str(other_ca)},
        "does not answer": {"servers": (nowhere,)},
    }
    for said, change in cases.items():
        settings = hub.model_copy(update={"fleet": hub.fleet.model_copy(update=dict(change))})
        [finding] = await nats_findings(settings, nats.connect)
        assert finding.status == "FAIL", (said, finding.line())
        assert said in finding.detail, finding.line()


def test_hub_takes_host_and_port_over_its_file(life: Life) -> None:
    port = free_port()  # hub.toml says 8000; the flags win
    hub = subprocess.Popen(
        [*HUB, str(life.directory / "hub.toml"), "--host", "127.0.0.1", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert hub.stderr is not None
        for line in hub.stderr:  # its own word that it listens, and where
            if "Uvicorn running" in line:
                break
        assert f"http://127.0.0.1:{port}" in line
        answer = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ instances { name } }"},
            headers={"Authorization": f"Bearer {life.token}", "Host": "localhost"},
            timeout=30,
        )
        assert {i["name"] for i in answer.json()["data"]["instances"]} >= {"web1"}
    finally:
        stop(cast(Any, hub))
        assert hub.stderr is not None
        hub.stderr.close()
