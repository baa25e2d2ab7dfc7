"""`unitgate setup`: install unitgate as a hardened system service, in one idempotent step."""

from __future__ import annotations

import contextlib
import grp
import importlib.metadata
import os
import pwd
import re
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from unitgate.config.settings import load_settings
from unitgate.deploy.privilege import check_user_name, render_polkit_rule, render_sudoers
from unitgate.services.policy.access import Role
from unitgate.services.policy.tokens import config_snippet, new_token
from unitgate.services.systemd.route import POLKIT_DAEMONS

USER = "unitgate"
SERVICE = "unitgate.service"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where setup puts each thing; tests point it elsewhere."""

    config: Path = Path("/etc/unitgate/unitgate.toml")
    unit_dir: Path = Path("/etc/systemd/system")
    sudoers: Path = Path("/etc/sudoers.d/unitgate")
    polkit_rule: Path = Path("/etc/polkit-1/rules.d/50-unitgate.rules")
    command_link: Path = Path("/usr/local/bin/unitgate")
    readme: Path = Path("/usr/local/share/doc/unitgate/README.md")

    @property
    def unit(self) -> Path:
        return self.unit_dir / SERVICE

    @property
    def sudo_drop_in(self) -> Path:
        return self.unit_dir / f"{SERVICE}.d" / "sudo.conf"


@dataclass(frozen=True, slots=True)
class Request:
    restart_via: str | None = None  # polkit | sudo; None keeps the config's (polkit for a new one)
    host: str | None = None
    port: int | None = None
    dry_run: bool = False
    user: str = USER


@dataclass
class Report:
    """What setup did (or, with --dry-run, would do), line by line."""

    dry_run: bool
    lines: list[str] = field(default_factory=list)
    changed: bool = False

    def did(self, what: str) -> None:
        self.changed = True
        self.lines.append(("would " if self.dry_run else "") + what)

    def kept(self, what: str) -> None:
        self.lines.append(f"unchanged: {what}")


def shipped(name: str) -> str:
    """A file of deploy/ as the installed package carries it."""
    return files("unitgate").joinpath("deploy", *name.split("/")).read_text(encoding="utf-8")


def unit_text(executable: str, config: Path) -> str:
    """The shipped unit, starting this installation's unitgate with this config."""
    return re.sub(
        r"^ExecStart=.*$", f"ExecStart={executable} serve --config {config}", shipped(SERVICE), flags=re.M
    )


def config_text(token_entry: str, restart_via: str, host: str, port: int) -> str:
    return (
        "# unitgate's configuration (see the README). Written by `unitgate setup`; yours to edit.\n"
        f'host = "{host}"\n'
        f"port = {port}\n"
        f'restart_via = "{restart_via}"\n'
        'audit_file = "/var/log/unitgate/audit.log"\n\n'
        f"{token_entry}"
    )


def set_key(text: str, key: str, value: str) -> str:
    """`key = value` at the top level of a TOML text, replaced where it is, else added first."""
    pattern = re.compile(rf"^{key}\s*=.*$", re.M)
    top_level_end = re.search(r"^\[", text, re.M)
    head = text[: top_level_end.start()] if top_level_end else text
    if pattern.search(head):
        return pattern.sub(f"{key} = {value}", head, count=1) + text[len(head) :]
    return f"{key} = {value}\n" + text


def write(report: Report, path: Path, content: str, mode: int, owner_group: str | None = None) -> bool:
    """Write `content` unless the file already holds it; say which."""
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if current == content:
        if not report.dry_run and _fix_mode(report, path, mode, owner_group):
            return True
        report.kept(str(path))
        return False
    report.did(f"write {path}")
    if not report.dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as temp:
            temp.write(content)
        os.chmod(temp.name, mode)
        if owner_group is not None:
            os.chown(temp.name, 0, grp.getgrnam(owner_group).gr_gid)
        os.replace(temp.name, path)
    return True


def _fix_mode(report: Report, path: Path, mode: int, owner_group: str | None) -> bool:
    """A file whose content is right can still have the wrong mode or group (a 0666 config is as
    bad as a wrong one): put them right, and say so."""
    info = path.stat()
    gid = grp.getgrnam(owner_group).gr_gid if owner_group is not None else None
    changed = False
    if stat.S_IMODE(info.st_mode) != mode:
        report.did(f"chmod {mode:o} {path} (was {stat.S_IMODE(info.st_mode):o})")
        os.chmod(path, mode)
        changed = True
    if gid is not None and (info.st_uid, info.st_gid) != (0, gid):
        report.did(f"chown root:{owner_group} {path}")
        os.chown(path, 0, gid)
        changed = True
    return changed


def remove(report: Report, path: Path) -> bool:
    if not path.exists():
        return False
    report.did(f"remove {path} (the other route's)")
    if not report.dry_run:
        path.unlink()
    return True


def run_checked(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SetupError(f"{' '.join(argv)} failed: {(result.stderr or result.stdout).strip()[:500]}")


class SetupError(Exception):
    """A step could not be done; the message says which and why."""


def ensure_user(report: Report, user: str) -> None:
    try:
        pwd.getpwnam(user)
        report.kept(f"user {user}")
        return
    except KeyError:
        pass
    report.did(f"create the system user {user}")
    if not report.dry_run:
        run_checked(
            ["useradd", "--system", "--user-group", "--home-dir", "/", "--shell", "/usr/sbin/nologin", user]
        )


def ensure_config(report: Report, layout: Layout, request: Request, emit_token: Callable[[str], None]) -> str:
    """The config file, made with a fresh operator token, or kept with its tokens; the route."""
    path = layout.config
    if path.exists():
        text = path.read_text(encoding="utf-8")
        settings = load_settings(path)
        route = request.restart_via or ("polkit" if settings.restart_via == "auto" else settings.restart_via)
        wanted = text
        for key, value in (
            ("restart_via", f'"{request.restart_via}"' if request.restart_via else None),
            ("host", f'"{request.host}"' if request.host else None),
            ("port", str(request.port) if request.port else None),
        ):
            if value is not None:
                wanted = set_key(wanted, key, value)
        write(report, path, wanted, 0o640, request.user if not report.dry_run else None)
        return route
    route = request.restart_via or "polkit"
    token = new_token()
    text = config_text(
        config_snippet("operator", Role.OPERATOR, token),
        route,
        request.host or "127.0.0.1",
        request.port or 8000,
    )
    write(report, path, text, 0o640, request.user if not report.dry_run else None)
    if not report.dry_run:
        # Alone on the first line of standard output, as `token new` prints it; stored nowhere.
        emit_token(token)
    return route


def ensure_privilege(report: Report, layout: Layout, route: str, user: str) -> bool:
    settings = load_settings(layout.config) if layout.config.exists() else load_settings(None)
    allowlist = settings.build_allowlist()
    changed = False
    if route == "polkit":
        if not any(Path(path).exists() for path in POLKIT_DAEMONS):
            raise SetupError("the polkit route needs polkitd: `apt install polkitd`, or --restart-via sudo")
        changed |= write(
            report, layout.polkit_rule, render_polkit_rule(allowlist, user, settings.enabled_actions()), 0o644
        )
        changed |= remove(report, layout.sudoers)
    elif route == "sudo":
        sudoers = render_sudoers(allowlist, user, settings.systemctl_path, settings.enabled_actions())
        with tempfile.NamedTemporaryFile("w", suffix=".sudoers", encoding="utf-8") as candidate:
            candidate.write(sudoers)
            candidate.flush()
            run_checked(["visudo", "-cf", candidate.name])
        changed |= write(report, layout.sudoers, sudoers, 0o440)
        changed |= remove(report, layout.polkit_rule)
    else:
        raise SetupError(f"--restart-via takes polkit or sudo, not {route!r}")
    return changed


def ensure_unit(report: Report, layout: Layout, route: str, executable: str) -> bool:
    changed = write(report, layout.unit, unit_text(executable, layout.config), 0o644)
    if route == "sudo":
        changed |= write(report, layout.sudo_drop_in, shipped(f"{SERVICE}.d/sudo.conf"), 0o644)
    else:
        changed |= remove(report, layout.sudo_drop_in)
    return changed


def ensure_command_link(report: Report, layout: Layout, executable: str) -> None:
    link = layout.command_link
    if link.is_symlink() and os.readlink(link) == executable:
        report.kept(f"{link} -> {executable}")
        return
    report.did(f"link {link} -> {executable}")
    if not report.dry_run:
        link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(executable)


def readme_text() -> str:
    """The README, as the package's metadata carries it (what Documentation= points at)."""
    payload = importlib.metadata.metadata("unitgate").get_payload()  # type: ignore[attr-defined]
    return str(payload) if payload else "This unitgate was installed without its README.\n"


def start_service(report: Report, restart: bool) -> None:
    if report.dry_run:
        report.lines.append(f"would {'restart' if restart else 'start'} {SERVICE} and enable it at boot")
        return
    run_checked(["systemctl", "daemon-reload"])
    run_checked(["systemctl", "enable", SERVICE])
    run_checked(["systemctl", "restart" if restart else "start", SERVICE])


def require_root() -> None:
    if os.geteuid() != 0:
        raise SetupError("setup installs a system service: run it as root")


def setup(request: Request, layout: Layout = Layout(), emit_token: Callable[[str], None] = print) -> Report:
    """Every step, in order; each one leaves alone what is already as it should be."""
    check_user_name(request.user)
    report = Report(request.dry_run)
    executable = str(Path(sys.prefix) / "bin" / "unitgate")
    require_root()
    ensure_user(report, request.user)
    route = ensure_config(report, layout, request, emit_token)
    config_changed = report.changed
    changed = ensure_privilege(report, layout, route, request.user)
    changed |= ensure_unit(report, layout, route, executable)
    ensure_command_link(report, layout, executable)
    write(report, layout.readme, readme_text(), 0o644)
    active = subprocess.run(["systemctl", "is-active", "--quiet", SERVICE], check=False).returncode == 0
    start_service(report, restart=active and (changed or config_changed))
    return report
