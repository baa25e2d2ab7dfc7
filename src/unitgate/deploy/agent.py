"""`unitgate setup --agent`: the fleet's agent as a hardened system service, with the same
hardening and privilege routes as `unitgate serve`, and no listening socket. Idempotent."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from unitgate.config.settings import load_settings
from unitgate.deploy.install import (
    SERVICE,
    Layout,
    Report,
    SetupError,
    ensure_privilege,
    ensure_user,
    require_root,
    run_checked,
    set_key,
    shipped,
    write,
)
from unitgate.deploy.privilege import check_user_name

AGENT_SERVICE = "unitgate-agent.service"


@dataclass(frozen=True, slots=True)
class AgentLayout:
    config: Path = Path("/etc/unitgate/agent.toml")
    credentials: Path = Path("/etc/unitgate/agent.nk")
    ca: Path = Path("/etc/unitgate/nats-ca.pem")
    unit_dir: Path = Path("/etc/systemd/system")
    sudoers: Path = Path("/etc/sudoers.d/unitgate")
    polkit_rule: Path = Path("/etc/polkit-1/rules.d/50-unitgate.rules")

    @property
    def unit(self) -> Path:
        return self.unit_dir / AGENT_SERVICE

    @property
    def sudo_drop_in(self) -> Path:
        return self.unit_dir / f"{AGENT_SERVICE}.d" / "sudo.conf"

    def privilege(self) -> Layout:
        """Where setup's privilege step writes, with the agent's config as the allowlist's."""
        return Layout(config=self.config, sudoers=self.sudoers, polkit_rule=self.polkit_rule)


@dataclass(frozen=True, slots=True)
class AgentRequest:
    fleet_config: Path  # INSTANCE.toml from `unitgate fleet init`
    credentials: Path  # INSTANCE.nk beside it
    restart_via: str | None = None
    dry_run: bool = False
    user: str = "unitgate"
    ca: Path | None = None  # the fleet's CA; default: ca.pem beside fleet_config


def agent_unit_text(executable: str, config: Path) -> str:
    """serve's hardened unit, running the agent: it connects out to NATS and listens on nothing."""
    text = re.sub(
        r"^ExecStart=.*$", f"ExecStart={executable} agent --config {config}", shipped(SERVICE), flags=re.M
    )
    text = re.sub(
        r"^Description=.*$",
        "Description=unitgate agent: this server's services, bridged to NATS",
        text,
        flags=re.M,
    )
    return text.replace(
        "# AF_UNIX reaches systemd and the D-Bus; AF_INET/AF_INET6 serve the API;",
        "# AF_UNIX reaches systemd and the D-Bus; AF_INET/AF_INET6 reach NATS (it listens on nothing);",
    )


def agent_config_text(given: str, credentials: Path, route: str, ca: Path | None = None) -> str:
    """The fleet config as given, its credentials (and CA) where setup puts them, and the route."""
    text, found = re.subn(r"^credentials\s*=.*$", f'credentials = "{credentials}"', given, flags=re.M)
    if found != 1:
        raise SetupError("the fleet config has no `credentials` line in its [fleet] table")
    if ca is not None:
        text, found = re.subn(r"^tls_ca\s*=.*$", f'tls_ca = "{ca}"', text, flags=re.M)
        if found != 1:
            raise SetupError("the fleet config has no `tls_ca` line in its [fleet] table")
    return set_key(text, "restart_via", f'"{route}"')


def _fleet_ca(request: AgentRequest, named: str | None) -> str | None:
    """The CA the agent will trust NATS by: given, or ca.pem beside the config (where `fleet
    init` wrote it); checked to be a certificate in its dates before it is installed."""
    if named is None:
        return None
    from unitgate.services.fleet.certificates import CertificateProblem, check_ca, utcnow

    path = request.ca or request.fleet_config.parent / "ca.pem"
    try:
        data = path.read_bytes()
        check_ca(data, utcnow(), str(path))
    except OSError as error:
        raise SetupError(
            f"cannot read the fleet's CA {path} ({error.strerror}): copy ca.pem beside the config, "
            "or pass --nats-ca FILE"
        ) from None
    except CertificateProblem as problem:
        raise SetupError(str(problem)) from None
    return data.decode("ascii")


def setup_agent(request: AgentRequest, layout: AgentLayout = AgentLayout()) -> Report:
    check_user_name(request.user)
    report = Report(request.dry_run)
    executable = str(Path(sys.prefix) / "bin" / "unitgate")
    require_root()
    try:
        given = request.fleet_config.read_text(encoding="utf-8")
        seed = request.credentials.read_text(encoding="utf-8")
    except OSError as error:
        raise SetupError(f"cannot read {error.filename}: {error.strerror}") from None
    settings = load_settings(request.fleet_config)
    if settings.fleet is None or settings.instance_name is None:
        raise SetupError(
            f"{request.fleet_config} is not an agent's config: no [fleet] table or instance_name"
        )
    if not seed.startswith("SU"):
        raise SetupError(f"{request.credentials} is not an NKEY user seed (from `unitgate fleet init`)")
    route = request.restart_via or (
        "polkit" if settings.restart_via in ("auto", "direct") else settings.restart_via
    )
    ca = _fleet_ca(request, settings.fleet.tls_ca)
    ensure_user(report, request.user)
    owner = request.user if not report.dry_run else None
    changed = write(report, layout.credentials, seed, 0o640, owner)
    if ca is not None:
        changed |= write(report, layout.ca, ca, 0o644)  # a certificate: public, but root's to change
    installed = agent_config_text(given, layout.credentials, route, layout.ca if ca is not None else None)
    changed |= write(report, layout.config, installed, 0o640, owner)
    changed |= ensure_privilege(report, layout.privilege(), route, request.user)
    changed |= write(report, layout.unit, agent_unit_text(executable, layout.config), 0o644)
    if route == "sudo":
        changed |= write(report, layout.sudo_drop_in, shipped(f"{SERVICE}.d/sudo.conf"), 0o644)
    if request.dry_run:
        report.lines.append(f"would start {AGENT_SERVICE} and enable it at boot")
        return report
    active = subprocess.run(["systemctl", "is-active", "--quiet", AGENT_SERVICE], check=False).returncode == 0
    run_checked(["systemctl", "daemon-reload"])
    run_checked(["systemctl", "enable", AGENT_SERVICE])
    run_checked(["systemctl", "restart" if active and changed else "start", AGENT_SERVICE])
    return report
