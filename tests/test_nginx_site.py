"""The nginx site and the socket unit `setup --nginx` writes, as text: checked line by line here,
and by Debian's own `nginx -t` on PID 1 in e2e/test_nginx.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from unitgate.config.edge_limits import EdgeLimits
from unitgate.config.settings import load_settings
from unitgate.deploy.install import Layout, Report
from unitgate.deploy.nginx import ensure_config
from unitgate.deploy.nginx_site import Site, nginx_user, render, server_name_problem, socket_unit

SITE = Site("unitgate.example", "/etc/ssl/u.pem", "/etc/ssl/u.key")


def directives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_the_site_terminates_tls_and_forwards_to_the_socket() -> None:
    lines = directives(render(SITE))
    assert "server unix:/run/unitgate/http.sock;" in lines
    assert "listen 443 ssl;" in lines
    assert "listen [::]:443 ssl;" in lines
    assert "ssl_certificate     /etc/ssl/u.pem;" in lines
    assert "ssl_certificate_key /etc/ssl/u.key;" in lines
    assert "return 301 https://$host$request_uri;" in lines  # plain http goes to https


def test_the_client_address_is_set_never_appended() -> None:
    lines = directives(render(SITE))
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in lines
    assert not [line for line in lines if "$proxy_add_x_forwarded_for" in line]
    assert 'proxy_set_header Forwarded "";' in lines  # a client's own is not passed on either


def test_websockets_are_upgraded_and_live_for_hours() -> None:
    lines = directives(render(SITE))
    assert "proxy_http_version 1.1;" in lines
    assert "proxy_set_header Upgrade $http_upgrade;" in lines
    assert "proxy_set_header Connection $unitgate_connection;" in lines
    assert "proxy_read_timeout 1h;" in lines
    # The Host a browser sent, port and all: the websocket's Origin check compares them.
    assert "proxy_set_header Host $http_host;" in lines


def test_limits_are_no_looser_than_unitgates() -> None:
    limits = EdgeLimits(max_body_bytes=65536, max_head_bytes=16384, head_timeout=5.0, body_timeout=7.0)
    lines = directives(render(Site("u.example", "c", "k", limits=limits)))
    assert "client_max_body_size        65536;" in lines
    assert "large_client_header_buffers 4 4k;" in lines  # 16 KiB in all, as unitgate's head
    assert "client_header_timeout       5s;" in lines
    assert "client_body_timeout         7s;" in lines


def test_other_ports_and_no_redirect() -> None:
    lines = directives(render(Site("u.example", "c", "k", https_port=8443, http_port=8080)))
    assert "listen 8443 ssl;" in lines
    assert "return 301 https://$host:8443$request_uri;" in lines
    assert "listen 8080;" in lines
    assert not [
        line for line in directives(render(Site("u.example", "c", "k", http_port=None))) if "301" in line
    ]


def test_the_socket_is_for_root_and_nginxs_group_only() -> None:
    lines = directives(socket_unit("www-data"))
    assert "ListenStream=/run/unitgate/http.sock" in lines
    assert "SocketGroup=www-data" in lines
    assert "SocketMode=0660" in lines


@pytest.mark.parametrize(
    ("conf", "user"),
    [
        ("user www-data;\nworker_processes auto;\n", ("www-data", None)),
        ("  user nginx nginx;\n", ("nginx", "nginx")),
        ("# user nobody;\nevents {}\n", ("www-data", None)),
        ("", ("www-data", None)),
    ],
)
def test_whom_nginx_runs_as(conf: str, user: tuple[str, str | None]) -> None:
    assert nginx_user(conf) == user


@pytest.mark.parametrize("name", ["unitgate.example", "web1", "192.0.2.7", "2001:db8::7", "a-b.example"])
def test_server_names_that_work(name: str) -> None:
    assert server_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "bad name", "evil;}", "-lead.example", "a..b", "x" * 64, "ünï.example"])
def test_server_names_that_would_break_the_site(name: str) -> None:
    assert server_name_problem(name) is not None


def nginx_site(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unitgate", "nginx-site", *args], capture_output=True, text=True, timeout=60
    )


def test_nginx_site_prints_what_setup_writes() -> None:
    printed = nginx_site("--server-name", "unitgate.example", "--https-port", "8443", "--http-port", "0")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == render(
        Site(
            "unitgate.example",
            "/etc/unitgate/tls/unitgate.example.pem",
            "/etc/unitgate/tls/unitgate.example.key",
            https_port=8443,
            http_port=None,
        )
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server-name", "evil;}"], "is not a host name"),
        (["--server-name", "u.example", "--certificate", "/c.pem"], "--certificate and --key go together"),
        (["--server-name", "u.example", "--https-port", "70000"], "is not a port"),
    ],
)
def test_nginx_site_refuses_what_would_break_it(args: list[str], message: str) -> None:
    printed = nginx_site(*args)
    assert printed.returncode == 2
    assert message in printed.stderr
    assert "Traceback" not in printed.stderr
    assert printed.stdout == ""


def test_the_config_learns_the_proxy_and_the_name_and_keeps_what_it_had(tmp_path: Path) -> None:
    layout = Layout(config=tmp_path / "unitgate.toml")
    layout.config.write_text(
        f'host = "127.0.0.1"\nport = 8000\n\n[[tokens]]\nname = "a"\nrole = "viewer"\nsha256 = "{"a" * 64}"\n'
    )
    first = Report(dry_run=False)
    assert ensure_config(first, layout, "unitgate.example", None)
    settings = load_settings(layout.config)
    assert settings.trusted_proxies == ("unix",)
    assert settings.allowed_hosts == ("localhost", "127.0.0.1", "::1", "unitgate.example")
    assert len(settings.tokens) == 1  # the tables after the keys are untouched
    again = Report(dry_run=False)
    assert not ensure_config(again, layout, "unitgate.example", None)
    assert again.lines == [f"unchanged: {layout.config}"]
    # A second name is added to the first, not put in its place.
    assert ensure_config(Report(dry_run=False), layout, "dash.example", None)
    assert load_settings(layout.config).allowed_hosts == (
        "localhost", "127.0.0.1", "::1", "unitgate.example", "dash.example"
    )  # fmt: skip


def test_setup_refuses_nginx_options_without_nginx() -> None:
    """--server-name alone would be silently ignored: refused before any step is taken."""
    setup = subprocess.run(
        [sys.executable, "-m", "unitgate", "setup", "--server-name", "unitgate.example"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert setup.returncode == 2
    assert "--server-name goes with --nginx" in setup.stderr
    assert setup.stdout == ""
