"""The fleet's TLS material, its plan and the configs rendered from it, and every refusal of
`fleet init`, `add-host`, `remove-host` and `rotate` leaving the directory as it was. No server
runs here (nats-server -t only reads a config): tests/test_fleet_lifecycle.py has them live."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from unitgate.config.settings import load_settings
from unitgate.deploy import fleet_hosts as fleet_lifecycle
from unitgate.deploy import nats_reload
from unitgate.deploy.doctor_fleet import ca_finding, key_finding
from unitgate.services.fleet import certificates, credentials, nats_config
from unitgate.services.fleet import plan as plans
from unitgate.services.fleet.certificates import CertificateProblem, TlsFiles
from unitgate.services.fleet.plan import PlanError, TlsPaths

NOW = certificates.utcnow()
URLS = ["nats://nats1.example:4222", "nats://10.0.0.2:4222"]
ROUTES = ["nats-route://nats1.example:6222", "nats-route://10.0.0.2:6222"]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_a_made_certificate_passes_every_check_for_the_hosts_it_names() -> None:
    made = certificates.generate(["nats1.example", "10.0.0.2"], NOW)
    certificates.check(made, ["nats1.example", "10.0.0.2"], NOW)
    with pytest.raises(CertificateProblem, match=r"does not name nats2\.example"):
        certificates.check(made, ["nats2.example"], NOW)


def test_a_certificate_with_another_key_another_ca_or_past_its_dates_is_refused() -> None:
    one, two = certificates.generate(["a"], NOW), certificates.generate(["a"], NOW)
    with pytest.raises(CertificateProblem, match="does not match its key"):
        certificates.check(TlsFiles(one.ca, one.cert, two.key), ["a"], NOW)
    with pytest.raises(CertificateProblem, match="not signed by the CA given"):
        certificates.check(TlsFiles(two.ca, one.cert, one.key), ["a"], NOW)
    old = certificates.generate(["a"], NOW - timedelta(days=certificates.SERVER_DAYS + 1))
    with pytest.raises(CertificateProblem, match="the certificate expired on"):
        certificates.check(old, ["a"], NOW)
    with pytest.raises(CertificateProblem, match="not a PEM certificate"):
        certificates.check(TlsFiles(one.ca, b"junk", one.key), ["a"], NOW)
    with pytest.raises(CertificateProblem, match="not an unencrypted PEM private key"):
        certificates.check(TlsFiles(one.ca, one.cert, b"junk"), ["a"], NOW)


def test_doctor_warns_of_a_ca_near_its_end_and_fails_one_past_it() -> None:
    fresh = certificates.generate(["a"], NOW).ca
    assert certificates.expiry_problem(fresh, "ca", NOW) is None
    late = NOW + timedelta(days=certificates.CA_DAYS - 10)
    assert certificates.expiry_problem(fresh, "ca", late) == (
        "warn",
        f"ca expires on {late + timedelta(days=10):%Y-%m-%d}",
    )
    status, detail = certificates.expiry_problem(
        fresh, "ca", NOW + timedelta(days=certificates.CA_DAYS + 1)
    ) or ("", "")
    assert status == "FAIL"
    assert "expired" in detail


def test_init_writes_a_tls_cluster_whose_routes_need_the_ca_and_their_password(tmp_path: Path) -> None:
    written = credentials.init(tmp_path, ["web1", "web2"], URLS, "", ROUTES)
    assert {p.name for p in written} >= {"fleet.json", "nats-server-1.conf", "nats-server-2.conf", "ca.pem"}
    assert all(os.stat(p).st_mode & 0o077 == 0 for p in written)
    plan = plans.load(tmp_path)
    assert plan.servers == ("tls://nats1.example:4222", "tls://10.0.0.2:4222")
    assert plan.route_password is not None
    node = (tmp_path / "nats-server-2.conf").read_text()
    assert 'listen: "10.0.0.2:4222"' in node
    cluster = node[node.index("cluster {") :]
    assert "verify: true" in cluster  # a route shows the fleet CA's certificate
    assert f'password: "{plan.route_password}"' in cluster
    assert f"nats-route://route:{plan.route_password}@10.0.0.2:6222" in cluster
    assert node.count("tls {") == 2  # clients too
    for name in ("web1", "web2", "hub"):
        assert (tmp_path / f"{name}.nk").read_text().strip() not in node
    agent = load_settings(tmp_path / "web1.toml").fleet
    assert agent is not None
    assert agent.tls_ca == str(tmp_path / "ca.pem")
    assert agent.servers == plan.servers
    made = TlsFiles(*(Path(p).read_bytes() for p in (plan.tls.ca, plan.tls.cert, plan.tls.key)))  # type: ignore[union-attr]
    certificates.check(made, ["nats1.example", "10.0.0.2"], NOW)


def test_nats_server_itself_accepts_every_config_init_writes(tmp_path: Path) -> None:
    credentials.init(
        tmp_path,
        ["web1"],
        ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"],
        "",
        ["nats-route://127.0.0.1:6222", "nats-route://127.0.0.1:6223"],
    )
    binary = nats_reload.nats_server_binary(None)
    assert binary is not None
    for node in (1, 2):
        nats_reload.test_config(binary, (tmp_path / f"nats-server-{node}.conf").read_text(), tmp_path)
    with pytest.raises(PlanError, match="nats-server refuses the new config"):
        nats_reload.test_config(binary, "listen: {{{", tmp_path)
    assert not (tmp_path / ".nats-server-candidate.conf").exists()


@pytest.mark.parametrize(
    ("instances", "urls", "routes", "said"),
    [
        (["web1", "web1"], URLS[:1], [], "distinct"),
        (["hub"], URLS[:1], [], "the hubs' user"),
        (["web.1"], URLS[:1], [], "must be 1 to 63"),
        (["web1"], URLS, [], "a cluster needs --routes"),
        (["web1"], URLS[:1], ROUTES[:1], "--routes makes a cluster"),
        (["web1"], ["http://x:1"], [], "nats://HOST:PORT"),
        (["web1"], URLS, ["nats-route://user:pw@a:1", ROUTES[1]], "nats-route://HOST:PORT"),
    ],
)
def test_init_refuses_bad_input_and_writes_nothing(
    tmp_path: Path, instances: list[str], urls: list[str], routes: list[str], said: str
) -> None:
    with pytest.raises(PlanError, match=said):
        credentials.init(tmp_path, instances, urls, "", routes)
    assert list(tmp_path.iterdir()) == []


def test_init_refuses_given_certificates_that_do_not_serve_and_writes_nothing(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    good, other = certificates.generate(["nats1.example"], NOW), certificates.generate(["nats1.example"], NOW)
    expired = certificates.generate(["nats1.example"], NOW - timedelta(days=900))
    for name, data in {"ca": good.ca, "cert": good.cert, "key": good.key, "key2": other.key,
                       "oldca": expired.ca, "old": expired.cert, "oldkey": expired.key}.items():  # fmt: skip
        (pki / name).write_bytes(data)
    fleet = tmp_path / "fleet"
    for tls, said in [
        (TlsPaths(str(pki / "ca"), str(pki / "cert"), str(pki / "key2")), "does not match its key"),
        (TlsPaths(str(pki / "oldca"), str(pki / "old"), str(pki / "oldkey")), "expired"),
        (TlsPaths(str(pki / "ca"), str(pki / "cert"), str(pki / "missing")), "cannot read"),
    ]:
        with pytest.raises(PlanError, match=said):
            credentials.init(fleet, ["web1"], URLS[:1], "", (), tls)
        assert not fleet.exists()
    credentials.init(
        fleet, ["web1"], URLS[:1], "", (), TlsPaths(str(pki / "ca"), str(pki / "cert"), str(pki / "key"))
    )
    assert plans.load(fleet).tls == TlsPaths(str(pki / "ca"), str(pki / "cert"), str(pki / "key"))
    assert not (fleet / "ca.pem").exists()  # the admin's own files are used where they are


def test_lifecycle_refusals_leave_the_directory_as_it_was(tmp_path: Path) -> None:
    credentials.init(tmp_path, ["web1", "web2"], URLS[:1], "")
    before = snapshot(tmp_path)
    with pytest.raises(PlanError, match="web1 is already a host"):
        fleet_lifecycle.add_host(tmp_path, "web1")
    with pytest.raises(PlanError, match="must be 1 to 63"):
        fleet_lifecycle.add_host(tmp_path, "web 3")
    with pytest.raises(PlanError, match="the hubs' user"):
        fleet_lifecycle.add_host(tmp_path, "hub")
    with pytest.raises(PlanError, match=r"web9 is not a host of this fleet \(its hosts: web1, web2\)"):
        fleet_lifecycle.remove_host(tmp_path, "web9")
    with pytest.raises(PlanError, match="web9 is not a host"):
        fleet_lifecycle.rotate(tmp_path, "web9")
    with pytest.raises(PlanError, match="is not a fleet's directory"):
        fleet_lifecycle.add_host(tmp_path / "elsewhere", "web3")
    assert snapshot(tmp_path) == before


def test_add_remove_and_rotate_change_only_what_they_name(tmp_path: Path) -> None:
    credentials.init(tmp_path, ["web1", "web2"], URLS[:1], "")
    web2_seed = (tmp_path / "web2.nk").read_text()
    applied, key = fleet_lifecycle.add_host(tmp_path, "web3")
    assert not applied.everywhere  # no nats-server runs this directory's config here
    assert "no nats-server runs it here" in applied.lines[0]
    assert (tmp_path / "web3.nk").read_text().strip() == key.seed
    assert key.public in (tmp_path / "nats-server.conf").read_text()
    assert load_settings(tmp_path / "web3.toml").instance_name == "web3"
    old_web1 = plans.load(tmp_path).instances["web1"]
    _, old_seed, new = fleet_lifecycle.rotate(tmp_path, "web1")
    config = (tmp_path / "nats-server.conf").read_text()
    assert old_web1 not in config
    assert new.public in config
    assert (tmp_path / "web1.nk").read_text().strip() == new.seed != old_seed
    _, removed_seed = fleet_lifecycle.remove_host(tmp_path, "web3")
    assert removed_seed == key.seed
    assert key.public not in (tmp_path / "nats-server.conf").read_text()
    assert not (tmp_path / "web3.nk").exists()
    assert not (tmp_path / "web3.toml").exists()
    assert (tmp_path / "web2.nk").read_text() == web2_seed
    assert sorted(json.loads((tmp_path / "fleet.json").read_text())["instances"]) == ["web1", "web2"]


def test_a_stale_pid_file_names_no_server_to_signal(tmp_path: Path) -> None:
    credentials.init(tmp_path, ["web1"], URLS[:1], "")
    plan = plans.load(tmp_path)
    (tmp_path / "nats-server.pid").write_text(str(os.getpid()))  # this python, not a nats-server
    assert nats_reload.running_node(plan.pid_path(0), plan.config_path(0)) is None
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "nats-server.pid").write_text(str(sleeper.pid))
        assert nats_reload.running_node(plan.pid_path(0), plan.config_path(0)) is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_doctor_fails_a_key_others_may_read_and_a_missing_ca(tmp_path: Path) -> None:
    credentials.init(tmp_path, ["web1"], URLS[:1], "")
    key = tmp_path / "web1.nk"
    assert key_finding(key).status == "ok"
    key.chmod(0o644)
    assert key_finding(key).status == "FAIL"
    assert "chmod 640" in key_finding(key).line()
    settings = load_settings(tmp_path / "web1.toml")
    assert ca_finding(settings).status == "ok"
    (tmp_path / "ca.pem").unlink()
    assert ca_finding(settings).status == "FAIL"


def test_the_rendered_config_carries_no_route_section_alone() -> None:
    plan = plans.FleetPlan(Path("/srv/f"), ("tls://127.0.0.1:4222",), "UHUB", tls=TlsPaths("/c", "/s", "/k"))
    text = nats_config.server_config(plan)
    assert "cluster" not in text
    assert 'pid_file: "/srv/f/nats-server.pid"' in text
