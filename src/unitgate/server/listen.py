"""Where `serve`, `hub` and `demo` listen: the configured address, plus any socket systemd hands
over (socket activation: `setup --nginx` has systemd make a unix socket only nginx's group may
reach), over TLS when tls_certfile is set."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import sys
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unitgate.config.settings import Settings

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): the first descriptor systemd passes
_SYSTEMD_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def systemd_descriptors(environ: Mapping[str, str], pid: int) -> list[int]:
    """The listening descriptors systemd passed this process (none when they were meant for
    another: LISTEN_PID names the process they are for)."""
    if environ.get("LISTEN_PID") != str(pid):
        return []
    count = environ.get("LISTEN_FDS", "")
    if not count.isdigit():
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)))


def take_systemd_sockets(environ: MutableMapping[str, str]) -> list[socket.socket]:
    """Those descriptors as sockets; the variables are removed, so no child takes them too."""
    descriptors = systemd_descriptors(environ, os.getpid())
    for name in _SYSTEMD_VARIABLES:
        environ.pop(name, None)
    return [socket.socket(fileno=fd) for fd in descriptors]


def tls_problem(certfile: str, keyfile: str) -> str | None:
    """Why this certificate and key cannot serve TLS, before the server starts; or None."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except FileNotFoundError as error:
        return f"{error.filename} does not exist"
    except OSError as error:  # ssl.SSLError is one
        return f"cannot use tls_certfile {certfile} with tls_keyfile {keyfile}: {error}"
    return None


def run(app: object, settings: Settings) -> None:
    """Serve `app` until a signal stops it."""
    import uvicorn

    from unitgate.server.edge import uvicorn_options

    tls: dict[str, str] = {}
    if settings.tls_certfile is not None and settings.tls_keyfile is not None:
        problem = tls_problem(settings.tls_certfile, settings.tls_keyfile)
        if problem is not None:
            raise ValueError(problem)
        tls = {"ssl_certfile": settings.tls_certfile, "ssl_keyfile": settings.tls_keyfile}
    options = uvicorn_options(settings.edge_limits())
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        log_level="info",
        **tls,  # type: ignore[arg-type]
        **options,
    )
    server = uvicorn.Server(config)
    inherited = take_systemd_sockets(os.environ)
    if inherited:
        for sock in inherited:
            log.info("Listening on %s too, passed by systemd", sock.getsockname() or "a socket")
        server.run(sockets=[config.bind_socket(), *inherited])
    else:
        server.run()
    if not server.started:
        sys.exit(3)  # as uvicorn.run: the server did not start
