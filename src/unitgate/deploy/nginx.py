"""`unitgate setup --nginx` and `unitgate nginx-site`: unitgate behind the host's nginx over TLS.
After the plain setup: a certificate (self-signed unless the admin's is given), the socket systemd
makes for nginx's group, the config's trusted_proxies and allowed_hosts, and the site, checked by
`nginx -t` before nginx reloads it."""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from unitgate.config.network import default_hosts, is_address
from unitgate.config.settings import Settings, load_settings
from unitgate.deploy.install import Layout, Report, SetupError, run_checked, set_key, write
from unitgate.deploy.nginx_site import (
    SOCKET_UNIT,
    TRUSTED_PROXIES,
    Site,
    nginx_user,
    render,
    server_name_problem,
    socket_unit,
)
from unitgate.server.listen import tls_problem

SITE_NAME = "unitgate"


@dataclass(frozen=True, slots=True)
class NginxLayout:
    """Debian's nginx, and where unitgate keeps a certificate it made; tests point it elsewhere."""

    nginx_conf: Path = Path("/etc/nginx/nginx.conf")
    sites_available: Path = Path("/etc/nginx/sites-available")
    sites_enabled: Path = Path("/etc/nginx/sites-enabled")
    tls_dir: Path = Path("/etc/unitgate/tls")

    @property
    def site(self) -> Path:
        return self.sites_available / SITE_NAME

    @property
    def enabled(self) -> Path:
        return self.sites_enabled / SITE_NAME


@dataclass(frozen=True, slots=True)
class NginxRequest:
    server_name: str
    certificate: Path | None = None  # the admin's own; None: a self-signed one, made once
    key: Path | None = None
    https_port: int = 443
    http_port: int | None = 80

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> NginxRequest:
        name = args.server_name or socket.getfqdn()
        problem = server_name_problem(name)
        if problem is not None:
            raise SetupError(f"--server-name: {problem}")
        if (args.certificate is None) != (args.key is None):
            raise SetupError("--certificate and --key go together")
        for option, port in (("--https-port", args.https_port), ("--http-port", args.http_port)):
            if port is not None and not 0 <= port <= 65535:
                raise SetupError(f"{option}: {port} is not a port")
        http_port = None if args.http_port == 0 else (args.http_port or 80)
        return cls(name, args.certificate, args.key, args.https_port or 443, http_port)

    def paths(self, layout: NginxLayout) -> tuple[Path, Path]:
        if self.certificate is not None and self.key is not None:
            return self.certificate.absolute(), self.key.absolute()
        return layout.tls_dir / f"{self.server_name}.pem", layout.tls_dir / f"{self.server_name}.key"


def nginx_request(args: argparse.Namespace) -> NginxRequest | None:
    """setup's nginx step as asked for, or None; its options without --nginx are a mistake."""
    if args.nginx:
        return NginxRequest.from_args(args)
    given = [o for o in ("server_name", "certificate", "key", "https_port", "http_port") if getattr(args, o)]
    if given:
        raise SetupError(f"--{given[0].replace('_', '-')} goes with --nginx")
    return None


def site_for(request: NginxRequest, layout: NginxLayout, settings: Settings) -> Site:
    certificate, key = request.paths(layout)
    return Site(
        request.server_name,
        str(certificate),
        str(key),
        request.https_port,
        request.http_port,
        limits=settings.edge_limits(),
    )


def ensure_certificate(report: Report, request: NginxRequest, layout: NginxLayout) -> None:
    certificate, key = request.paths(layout)
    if request.certificate is not None:
        problem = tls_problem(str(certificate), str(key))
        if problem is not None:
            raise SetupError(problem)
        report.kept(f"{certificate} (yours)")
        return
    if certificate.exists() and key.exists() and tls_problem(str(certificate), str(key)) is None:
        report.kept(f"{certificate} (self-signed)")
        return
    if shutil.which("openssl") is None:
        raise SetupError(
            "making a self-signed certificate needs openssl: `apt install openssl`, or --certificate"
        )
    report.did(
        f"make a self-signed certificate for {request.server_name}: {certificate}. Browsers warn about it "
        "until you replace it with your own, e.g. certbot's: unitgate setup --nginx --server-name "
        f"{request.server_name} --certificate /etc/letsencrypt/live/{request.server_name}/fullchain.pem "
        f"--key /etc/letsencrypt/live/{request.server_name}/privkey.pem"
    )
    if report.dry_run:
        return
    layout.tls_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    kind = "IP" if is_address(request.server_name) else "DNS"
    run_checked(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "825", "-subj", f"/CN={request.server_name}",
            "-addext", f"subjectAltName={kind}:{request.server_name}",
            "-keyout", str(key), "-out", str(certificate),
        ]
    )  # fmt: skip
    os.chmod(key, 0o600)  # nginx's master reads it as root
    os.chmod(certificate, 0o644)


def nginx_group(layout: NginxLayout) -> str:
    """The group nginx's workers run with: the socket is theirs and root's alone."""
    try:
        user, group = nginx_user(layout.nginx_conf.read_text(encoding="utf-8"))
    except OSError as error:
        raise SetupError(f"cannot read {layout.nginx_conf}: {error.strerror}; is nginx installed?") from None
    if group is not None:
        return group
    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except KeyError:
        raise SetupError(f"nginx runs as {user}, which does not exist") from None


def ensure_config(report: Report, layout: Layout, server_name: str, group: str | None) -> bool:
    """trusted_proxies gets the socket; allowed_hosts the server name (and keeps what it had)."""
    if not layout.config.exists():  # a dry run on a fresh host: setup has not written it
        report.did(f"set allowed_hosts and trusted_proxies in {layout.config}")
        return True
    settings = load_settings(layout.config)
    hosts = settings.allowed_hosts if settings.allowed_hosts is not None else default_hosts(settings.host)
    wanted = layout.config.read_text(encoding="utf-8")
    for key, values, adding in (
        ("allowed_hosts", hosts, (server_name,)),
        ("trusted_proxies", settings.trusted_proxies, TRUSTED_PROXIES),
    ):
        merged = list(dict.fromkeys([*values, *adding]))
        if merged != list(values) or not any(line.startswith(key) for line in wanted.splitlines()):
            wanted = set_key(wanted, key, json.dumps(merged))
    return write(report, layout.config, wanted, 0o640, group if not report.dry_run else None)


def ensure_site(report: Report, layout: NginxLayout, text: str) -> bool:
    """The site, enabled, and accepted by `nginx -t`; refused, it is taken back out."""
    try:
        before: str | None = layout.site.read_text(encoding="utf-8")
    except FileNotFoundError:
        before = None
    changed = write(report, layout.site, text, 0o644)
    linked = layout.enabled.is_symlink() and os.readlink(layout.enabled) == str(layout.site)
    if not linked:
        report.did(f"link {layout.enabled} -> {layout.site}")
        changed = True
        if not report.dry_run:
            layout.enabled.unlink(missing_ok=True)
            layout.enabled.symlink_to(layout.site)
    if report.dry_run or not changed:
        return changed
    check = subprocess.run(["nginx", "-t"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        if before is None:
            layout.enabled.unlink(missing_ok=True)
            layout.site.unlink()
        else:
            layout.site.write_text(before, encoding="utf-8")
        raise SetupError(f"nginx -t refused the site, which is taken back out:\n{check.stderr.strip()}")
    report.lines.append("nginx -t: the configuration is fine")
    return changed


def is_active(unit: str) -> bool:
    return subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0


def setup_nginx(
    report: Report, request: NginxRequest, layout: Layout, nginx: NginxLayout, user: str = "unitgate"
) -> None:
    """Every step after the plain setup's, each leaving alone what is already right."""
    if shutil.which("nginx") is None:
        raise SetupError("--nginx needs nginx: `apt install nginx`")
    group = nginx_group(nginx)
    ensure_certificate(report, request, nginx)
    unit_changed = write(report, layout.unit_dir / SOCKET_UNIT, socket_unit(group), 0o644)
    config_changed = ensure_config(report, layout, request.server_name, user)
    settings = load_settings(layout.config if layout.config.exists() else None)
    ensure_site(report, nginx, render(site_for(request, nginx, settings)))
    if report.dry_run:
        report.lines.append("would start unitgate.socket, restart unitgate.service and reload nginx")
        return
    run_checked(["systemctl", "daemon-reload"])
    run_checked(["systemctl", "enable", SOCKET_UNIT])
    if unit_changed or not is_active(SOCKET_UNIT):
        # systemd starts a socket only while its service is stopped, and hands it over only when
        # the service starts.
        run_checked(["systemctl", "stop", "unitgate.service"])
        run_checked(["systemctl", "restart", SOCKET_UNIT])
        run_checked(["systemctl", "start", "unitgate.service"])
    elif config_changed:
        run_checked(["systemctl", "restart", "unitgate.service"])
    run_checked(["systemctl", "reload-or-restart", "nginx.service"])
    port = "" if request.https_port == 443 else f":{request.https_port}"
    report.lines.append(f"open https://{request.server_name}{port}/ (the dashboard, with your token)")


def print_site(args: argparse.Namespace, config: Path | None) -> int:
    """`unitgate nginx-site`: the site setup --nginx writes, for an admin who writes it alone."""
    try:
        request = NginxRequest.from_args(args)
    except SetupError as error:
        raise ValueError(str(error)) from None  # the command line's mistake: exit status 2
    print(render(site_for(request, NginxLayout(), load_settings(config))), end="")
    return 0
