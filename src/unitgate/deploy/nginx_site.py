"""The nginx site in front of unitgate, and the systemd socket between them, as text: TLS at
nginx, websockets upgraded, limits no looser than unitgate's, X-Forwarded-For set (never
appended) from the address nginx itself saw."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from unitgate.config.edge_limits import EdgeLimits

# Made by systemd (unitgate.socket) for nginx's group alone, handed to unitgate.service.
SOCKET = "/run/unitgate/http.sock"
SOCKET_UNIT = "unitgate.socket"
# unitgate believes X-Forwarded-For from that socket's peers only.
TRUSTED_PROXIES = ("unix",)


@dataclass(frozen=True, slots=True)
class Site:
    server_name: str
    certificate: str
    key: str
    https_port: int = 443
    http_port: int | None = 80  # a redirect to https; None for none
    socket: str = SOCKET
    limits: EdgeLimits = field(default_factory=EdgeLimits)


def server_name_problem(name: str) -> str | None:
    """Why `name` cannot be an nginx server_name and a certificate's name; or None."""
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    if len(name) > 253 or not re.fullmatch(
        r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*", name
    ):
        return f"{name!r} is not a host name (letters, digits, dots and hyphens)"
    return None


def _listen(port: int, options: str = "") -> str:
    return f"    listen {port}{options};\n    listen [::]:{port}{options};\n"


def render(site: Site) -> str:
    """The site file, for sites-available/ (nginx's http context)."""
    limits = site.limits
    redirect = ""
    if site.http_port is not None:
        target = "https://$host" + ("" if site.https_port == 443 else f":{site.https_port}")
        redirect = (
            "server {\n"
            + _listen(site.http_port)
            + f"    server_name {site.server_name};\n"
            + f"    return 301 {target}$request_uri;\n"
            + "}\n\n"
        )
    # unitgate's head limit, in nginx's buffers: 4 of a quarter each.
    header_buffer = max(1, limits.max_head_bytes // 4 // 1024)
    return f"""# unitgate behind nginx, written by `unitgate setup --nginx` (`unitgate nginx-site` prints it).
# nginx terminates TLS and forwards to unitgate's unix socket, which only nginx's group may reach;
# unitgate believes the X-Forwarded-For set here from that socket alone (trusted_proxies).

upstream unitgate {{
    server unix:{site.socket};
    keepalive 16;
}}

# A websocket's upgrade is passed on; any other request keeps the upstream connection alive.
map $http_upgrade $unitgate_connection {{
    default upgrade;
    ''      '';
}}

{redirect}server {{
{_listen(site.https_port, " ssl")}    server_name {site.server_name};

    ssl_certificate     {site.certificate};
    ssl_certificate_key {site.key};
    ssl_protocols       TLSv1.2 TLSv1.3;
    ssl_session_cache   shared:unitgate:1m;

    # No looser than unitgate's own limits, so a request it would refuse stops here.
    client_max_body_size        {limits.max_body_bytes};
    client_header_buffer_size   1k;
    large_client_header_buffers 4 {header_buffer}k;
    client_header_timeout       {limits.head_timeout:g}s;
    client_body_timeout         {limits.body_timeout:g}s;

    location / {{
        proxy_pass http://unitgate;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        # Set, not appended: whatever a client sends in its own X-Forwarded-For is dropped.
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Forwarded "";
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $unitgate_connection;
        # Subscriptions live for hours; unitgate sends a keep-alive every 15 s.
        proxy_read_timeout 1h;
        proxy_send_timeout 1h;
    }}
}}
"""


def socket_unit(group: str, socket: str = SOCKET) -> str:
    """unitgate.socket: systemd makes the socket, 0660 for root and nginx's group, and hands it to
    unitgate.service when that starts; unitgate itself needs no membership of nginx's group."""
    return f"""# unitgate's socket for nginx, written by `unitgate setup --nginx`.
[Unit]
Description=unitgate: the socket nginx forwards to
Documentation=file:///usr/local/share/doc/unitgate/README.md

[Socket]
ListenStream={socket}
SocketUser=root
SocketGroup={group}
SocketMode=0660
DirectoryMode=0755

[Install]
WantedBy=sockets.target
"""


def nginx_user(nginx_conf: str) -> tuple[str, str | None]:
    """The user nginx's workers run as, and the group if the `user` directive names one
    (Debian's www-data when there is none)."""
    found = re.search(r"^\s*user\s+([A-Za-z0-9_.-]+)(?:\s+([A-Za-z0-9_.-]+))?\s*;", nginx_conf, re.M)
    return (found.group(1), found.group(2)) if found else ("www-data", None)
