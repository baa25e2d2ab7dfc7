"""`unitgate doctor` on the deployed server: each check broken on purpose, and named."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

import pytest

from e2e.conftest import Deployment

pytestmark = pytest.mark.timeout(300)
CONFIG = "/etc/unitgate/unitgate.toml"
AS_SERVICE_USER = "setpriv --reuid=unitgate --regid=unitgate --init-groups"


def doctor(deployed: Deployment, *args: str, prefix: str = "") -> subprocess.CompletedProcess[str]:
    return deployed.sh(f"{prefix} unitgate doctor {' '.join(args)}", check=False)


def lines(result: subprocess.CompletedProcess[str], status: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(status)]


@contextlib.contextmanager
def broken(deployed: Deployment, breaks: str, repairs: str) -> Iterator[None]:
    deployed.sh(breaks)
    try:
        yield
    finally:
        deployed.sh(repairs)


def test_a_healthy_server(deployed: Deployment) -> None:
    result = doctor(deployed)
    assert result.returncode == 0, result.stdout
    assert lines(result, "FAIL") == []
    report = result.stdout
    for check in (
        "config",
        "service",
        "journal access",
        "restart route",
        "polkit rule",
        "manager",
        "journal",
    ):
        assert f"ok   {check}:" in report
    assert "mysql is mariadb.service" in report  # the alias, and that it is listed once


def test_as_the_service_user(deployed: Deployment) -> None:
    # The service gets systemd-journal from its unit; a shell of the same user has it from here.
    result = doctor(
        deployed,
        "--config",
        CONFIG,
        prefix=f"{AS_SERVICE_USER.replace('--init-groups', '--groups systemd-journal')}",
    )
    assert "ok   journal: readable" in result.stdout, result.stdout
    assert "ok   restart route: polkit" in result.stdout
    # The rule's folder is root's: the user is told to ask as root, not that it is wrong.
    assert "warn polkit rule" in result.stdout


def test_journal_unreadable(deployed: Deployment) -> None:
    result = doctor(deployed, "--config", CONFIG, prefix=AS_SERVICE_USER)
    assert result.returncode == 1
    (line,) = [line for line in lines(result, "FAIL") if "journal:" in line]
    assert "SupplementaryGroups=systemd-journal" in line


def test_unit_without_journal_group(deployed: Deployment) -> None:
    drop_in = "/etc/systemd/system/unitgate.service.d/nojournal.conf"
    with broken(
        deployed,
        f"mkdir -p $(dirname {drop_in}) && printf '[Service]\\nSupplementaryGroups=\\n' > {drop_in} && systemctl daemon-reload",
        f"rm {drop_in} && systemctl daemon-reload",
    ):
        result = doctor(deployed)
    assert result.returncode == 1
    assert any("journal access" in line and "SupplementaryGroups" in line for line in lines(result, "FAIL"))


def test_sudo_under_no_new_privileges(deployed: Deployment) -> None:
    with broken(
        deployed,
        f"sed -i 's/^restart_via = .*/restart_via = \"sudo\"/' {CONFIG}",
        f"sed -i 's/^restart_via = .*/restart_via = \"polkit\"/' {CONFIG}",
    ):
        result = doctor(deployed)
    assert result.returncode == 1
    (line,) = [line for line in lines(result, "FAIL") if "restart route" in line]
    assert "NoNewPrivileges" in line
    assert "sudo.conf" in line


def test_polkit_rule_missing_or_stale(deployed: Deployment) -> None:
    rule = "/etc/polkit-1/rules.d/50-unitgate.rules"
    with broken(deployed, f"mv {rule} /root/rule", f"mv /root/rule {rule}"):
        missing = doctor(deployed)
    with broken(
        deployed,
        f"cp {rule} /root/rule && sed -i 's/nginx.service/nginx-old.service/' {rule}",
        f"mv /root/rule {rule}",
    ):
        stale = doctor(deployed)
    assert missing.returncode == stale.returncode == 1
    assert any("polkit rule" in line and "is missing" in line for line in lines(missing, "FAIL"))
    assert any("polkit rule" in line and "does not match" in line for line in lines(stale, "FAIL"))


def test_sudoers_drop_in_missing(deployed: Deployment) -> None:
    drop_in = "/etc/systemd/system/unitgate.service.d/sudo.conf"
    shipped = "/opt/unitgate/lib/python3*/site-packages/unitgate/deploy/unitgate.service.d/sudo.conf"
    with broken(
        deployed,
        f"sed -i 's/^restart_via = .*/restart_via = \"sudo\"/' {CONFIG} && mkdir -p $(dirname {drop_in}) "
        f"&& cp {shipped} {drop_in} && systemctl daemon-reload",
        f"sed -i 's/^restart_via = .*/restart_via = \"polkit\"/' {CONFIG} && rm {drop_in} && systemctl daemon-reload",
    ):
        stale = doctor(deployed)  # the unit allows sudo now, the running process not yet
        deployed.sh("systemctl restart unitgate")
        result = doctor(deployed)
    deployed.sh("systemctl restart unitgate")
    deployed.wait_healthy()
    assert any("service" in line and "systemctl restart unitgate" in line for line in lines(stale, "FAIL"))
    assert result.returncode == 1
    assert "ok   restart route: sudo" in result.stdout  # the drop-in lets sudo work...
    assert any("sudoers" in line and "is missing" in line for line in lines(result, "FAIL"))  # ...if allowed


def test_config_writable_by_others(deployed: Deployment) -> None:
    with broken(deployed, f"chmod 666 {CONFIG}", f"chmod 640 {CONFIG}"):
        result = doctor(deployed)
    assert result.returncode == 1
    assert any("config" in line and "chmod 640" in line for line in lines(result, "FAIL"))


def test_no_manager_answers(deployed: Deployment) -> None:
    deployed.sh(
        f"sed 's#^port = #systemctl_path = \"/nonexistent/systemctl\"\\nport = #' {CONFIG} > /root/broken.toml"
    )
    result = doctor(deployed, "--config", "/root/broken.toml")
    assert result.returncode == 1
    assert any(line.startswith("FAIL manager:") for line in lines(result, "FAIL"))


def test_graphiql_files_missing(deployed: Deployment) -> None:
    static = deployed.sh("ls -d /opt/unitgate/lib/python3*/site-packages/unitgate/static").stdout.strip()
    with broken(deployed, f"mv {static} /root/static", f"mv /root/static {static}"):
        result = doctor(deployed)
    assert result.returncode == 0  # the page still works where the browser reaches the CDN
    assert any("graphiql" in line and "unitgate graphiql-assets" in line for line in lines(result, "warn"))
