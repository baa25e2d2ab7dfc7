"""`unitgate doctor`: what would fail on this server, one line each, with the fix."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from unitgate.config.file import file_mode_problem
from unitgate.config.settings import ConfigError, Settings, load_settings
from unitgate.deploy.doctor_fleet import fleet_findings
from unitgate.deploy.findings import Finding, fail, ok, warn
from unitgate.deploy.privilege import render_polkit_rule, render_sudoers
from unitgate.services.errors import UnitgateError
from unitgate.services.systemd.bus import SystemdSignals, bus_address
from unitgate.services.systemd.journal import Journal
from unitgate.services.systemd.route import (
    ProcessFacts,
    RestartVia,
    RouteUnusable,
    choose_route,
    no_new_privileges,
    read_facts,
)
from unitgate.services.systemd.runner import ProcessRunner
from unitgate.services.systemd.systemctl import Systemctl, systemctl_environment
from unitgate.services.systemd.units import Scope
from unitgate.view import graphiql_assets

SUDOERS_FILE = Path("/etc/sudoers.d/unitgate")
POLKIT_RULE_FILE = Path("/etc/polkit-1/rules.d/50-unitgate.rules")
SERVICE_UNIT = "unitgate.service"
JOURNAL_GROUPS = ("systemd-journal", "adm")


@dataclass(frozen=True, slots=True)
class Service:
    """What the running unitgate.service is, as root sees it (None where it cannot be known)."""

    main_pid: int | None
    no_new_privileges: bool  # the running process's, else what the unit gives a new one
    unit_no_new_privileges: bool  # what the unit, as loaded now, gives a new process
    supplementary_groups: tuple[str, ...]


def config_finding(path: Path | None, user: str) -> Finding:
    """The config file may be read by the service and written by root alone."""
    if path is None:
        return warn("config", "no --config given: the defaults are checked", "pass --config FILE")
    try:
        info = path.stat()
    except OSError as error:
        return fail(
            "config", f"cannot read {path}: {error.strerror}", "run `unitgate setup`, or check the path"
        )
    try:
        holds_tokens = bool(load_settings(path).tokens)
    except ConfigError:
        holds_tokens = True  # unreadable as settings: assume the worst of what it holds
    problem = file_mode_problem(info.st_mode, holds_tokens)
    if problem is not None:
        return fail("config", f"{path} {problem}", f"chmod 640 {path}")
    try:
        service_uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        service_uid = None
    if service_uid is not None and info.st_uid == service_uid:
        return fail(
            "config", f"{path} belongs to {user}, which could rewrite its own tokens", f"chown root {path}"
        )
    return ok("config", f"{path} is read-only to {user}")


def route_finding(settings: Settings, facts: ProcessFacts, user: str, root: bool) -> list[Finding]:
    """Whether the restart route can work, and whether its privilege file is present and right."""
    try:
        route = choose_route(settings.route(), Scope(settings.scope), facts)
    except RouteUnusable as error:
        return [fail("restart route", str(error).split(": ", 1)[0], str(error).split(": ", 1)[-1])]
    findings = [ok("restart route", f"{route} (restart_via = {settings.restart_via!r})")]
    allowlist = settings.build_allowlist()
    if route is RestartVia.SUDO:
        expected = render_sudoers(allowlist, user, settings.systemctl_path, settings.enabled_actions())
        findings.append(_file_finding("sudoers", SUDOERS_FILE, expected, root, "--restart-via sudo"))
    elif route is RestartVia.POLKIT:
        expected = render_polkit_rule(allowlist, user, settings.enabled_actions())
        findings.append(
            _file_finding("polkit rule", POLKIT_RULE_FILE, expected, root, "--restart-via polkit")
        )
    return findings


def _file_finding(check: str, path: Path, expected: str, root: bool, flag: str) -> Finding:
    fix = f"`unitgate setup {flag}` installs it for this config's allowlist"
    try:
        actual = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return fail(check, f"{path} is missing, so every restart and reload is refused", fix)
    except PermissionError:
        if root:
            return fail(check, f"{path} cannot be read", fix)
        return warn(
            check, f"{path} is not readable by this user", "run `unitgate doctor` as root to compare it"
        )
    if actual != expected:
        return fail(check, f"{path} does not match this config's allowlist", fix)
    return ok(check, f"{path} allows exactly the allowlisted units")


def journal_groups_finding(user: str, service: Service | None) -> Finding | None:
    """As root: whether the service will be able to read the journal."""
    groups = set(service.supplementary_groups) if service is not None else set()
    try:
        member = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    except KeyError:
        member = set()
    if (groups | member) & set(JOURNAL_GROUPS):
        return ok(
            "journal access",
            f"{user} reads the journal as a member of {sorted((groups | member) & set(JOURNAL_GROUPS))[0]}",
        )
    return fail(
        "journal access",
        f"{user} is in none of {', '.join(JOURNAL_GROUPS)}, so every log query fails",
        "SupplementaryGroups=systemd-journal in the unit (deploy/unitgate.service has it)",
    )


async def systemd_findings(settings: Settings, environ: Mapping[str, str]) -> list[Finding]:
    """The manager over systemctl and D-Bus, the allowlisted units, and the journal."""
    scope = Scope(settings.scope)
    allowlist = settings.build_allowlist()
    runner = ProcessRunner(systemctl_environment(scope, environ))
    systemctl = Systemctl(allowlist, runner, settings.systemctl_options())
    findings: list[Finding] = []
    try:
        version = await systemctl.manager_version()
        statuses = await systemctl.show(allowlist.sorted())
    except UnitgateError as error:
        return [fail("manager", str(error), "is systemd running? is this the right --scope?")]
    signals = SystemdSignals(scope, bus_address(scope, environ), allowlist.names)
    try:
        await signals.connect(lambda name: None)
        findings.append(ok("manager", f"systemd {version} answers, and its D-Bus signals reach unitgate"))
    except Exception as error:  # any failure to reach the bus is a finding, not a crash
        findings.append(
            warn("manager", f"systemd {version} answers, but not over D-Bus ({error}): updates will poll")
        )
    finally:
        await signals.close()
    installed = [s for s in statuses if s.installed]
    aliases = [f"{s.name} is {s.unit_id}" for s in installed if s.is_alias]
    absent = [s.name for s in statuses if not s.installed]
    detail = f"installed: {', '.join(s.name for s in installed) or 'none'}"
    if aliases:
        detail += f" ({'; '.join(aliases)}: listed once)"
    detail += f"; not installed: {', '.join(absent) or 'none'}"
    findings.append(ok("services", detail) if installed else warn("services", detail, "check the allowlist"))
    if installed:
        journal = Journal(allowlist, runner, settings.journal_options())
        try:
            await journal.recent(installed[0].name, 1)
            findings.append(ok("journal", f"readable (tried {installed[0].name})"))
        except UnitgateError as error:
            findings.append(
                fail(
                    "journal",
                    str(error),
                    "run unitgate with SupplementaryGroups=systemd-journal (as deploy/unitgate.service does)",
                )
            )
    return findings


def assets_finding(settings: Settings) -> Finding:
    folder = (
        Path(settings.graphiql_assets_dir) if settings.graphiql_assets_dir else graphiql_assets.DEFAULT_DIR
    )
    absent = graphiql_assets.missing(folder, graphiql_assets.vendored_assets())
    if absent:
        return warn(
            "graphiql",
            f"{len(absent)} of GraphiQL's files are missing in {folder}: the page loads them from a CDN",
            "`unitgate graphiql-assets` fetches them (needs npm), or reinstall from a wheel built with npm",
        )
    return ok("graphiql", "its files are served by unitgate itself")


def read_service(runner_environ: Mapping[str, str]) -> Service | None:
    """The running unitgate.service as root sees it; None when there is no such service."""
    import subprocess

    try:
        result = subprocess.run(
            [
                "systemctl",
                "show",
                "--property=MainPID,SupplementaryGroups,LoadState,NoNewPrivileges",
                SERVICE_UNIT,
            ],
            capture_output=True,
            text=True,
            timeout=10,
            env=dict(runner_environ),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    props = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if props.get("LoadState") != "loaded":
        return None
    pid = int(props.get("MainPID") or 0) or None
    # The unit sets NoNewPrivileges=yes itself, and the sudo drop-in sets it to no and undoes
    # every option that would imply it: so the setting says what a started service will have.
    unit_nnp = nnp = props.get("NoNewPrivileges") == "yes"
    if pid is not None:
        with contextlib.suppress(OSError):
            nnp = no_new_privileges(Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace"))
    return Service(pid, nnp, unit_nnp, tuple(props.get("SupplementaryGroups", "").split()))


async def diagnose(
    settings: Settings, config_path: Path | None, user: str, environ: Mapping[str, str] | None = None
) -> list[Finding]:
    """Every check, as this process can make it: as root, of the installed service too."""
    environ = os.environ if environ is None else environ
    root = os.geteuid() == 0
    facts = read_facts(settings.sudo_path)
    findings = [config_finding(config_path, user)]
    service = (
        read_service(systemctl_environment(Scope.SYSTEM, environ))
        if root and settings.scope == "system"
        else None
    )
    if root and settings.scope == "system":
        if service is None:
            findings.append(
                warn("service", f"{SERVICE_UNIT} is not installed", "`unitgate setup` installs it")
            )
        else:
            running = "running" if service.main_pid else "not running"
            if service.no_new_privileges != service.unit_no_new_privileges:
                findings.append(
                    fail(
                        "service",
                        f"{SERVICE_UNIT} runs with an older version of its unit (NoNewPrivileges differs)",
                        "systemctl restart unitgate",
                    )
                )
            else:
                findings.append(ok("service", f"{SERVICE_UNIT} is installed and {running}"))
            journal = journal_groups_finding(user, service)
            if journal is not None:
                findings.append(journal)
        try:
            service_uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            findings.append(fail("user", f"there is no user {user}", "`unitgate setup` creates it"))
            service_uid = 1
        # What decides the route is the service's process, not this root shell.
        nnp = service.no_new_privileges if service is not None else True
        facts = ProcessFacts(service_uid, nnp, facts.polkit_installed, facts.sudo_installed)
    findings += route_finding(settings, facts, user, root)
    findings += await systemd_findings(settings, environ)
    findings.append(assets_finding(settings))
    if settings.fleet is not None:
        findings += await fleet_findings(settings)
    return findings


def run(settings: Settings, config_path: Path | None, user: str) -> int:
    """Print every finding; exit status 1 when anything would fail."""
    findings = asyncio.run(diagnose(settings, config_path, user))
    for finding in findings:
        print(finding.line())
    return 1 if any(f.status == "FAIL" for f in findings) else 0
