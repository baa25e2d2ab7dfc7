"""`unitgate doctor` on a fleet host (an agent's or a hub's config): its key file's mode, its
CA present and in its dates, and every NATS server letting this key in over TLS."""

from __future__ import annotations

import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from unitgate.config.settings import Settings
from unitgate.deploy.findings import Finding, fail, ok, warn
from unitgate.services.fleet import subjects
from unitgate.services.fleet.tls import dial_once, with_tls

CONNECT_TIMEOUT = 5.0


def key_finding(path: Path) -> Finding:
    """The seed is the host's identity: no other user may read it, none but its owner write it."""
    try:
        info = path.stat()
        seed = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError as error:
        return fail(
            "fleet key", f"cannot read {path}: {error.strerror}", "copy INSTANCE.nk from `fleet init`"
        )
    if info.st_mode & (stat.S_IRWXO | stat.S_IWGRP):
        mode = stat.S_IMODE(info.st_mode)
        return fail(
            "fleet key", f"{path} is mode {mode:04o}: others may read or write it", f"chmod 640 {path}"
        )
    if not seed.startswith("SU"):
        return fail("fleet key", f"{path} holds no NKEY user seed", "copy INSTANCE.nk from `fleet init`")
    return ok("fleet key", f"{path} is readable by its owner and group only")


def ca_finding(settings: Settings) -> Finding:
    from unitgate.services.fleet.certificates import expiry_problem, utcnow

    fleet = settings.fleet
    assert fleet is not None
    if fleet.tls_ca is None:
        if any(server.startswith("nats://") for server in fleet.servers):
            return warn(
                "fleet TLS",
                "no tls_ca and nats:// servers: whoever is on the network reads and alters the wire",
                "`unitgate fleet init` anew makes a TLS fleet (its servers refuse plaintext)",
            )
        return ok("fleet TLS", "tls:// servers, checked against the system's certificate store")
    path = Path(fleet.tls_ca)
    try:
        data = path.read_bytes()
    except OSError as error:
        return fail(
            "fleet TLS", f"cannot read tls_ca {path}: {error.strerror}", "copy ca.pem from `fleet init`"
        )
    problem = expiry_problem(data, f"tls_ca {path}", utcnow())
    if problem is not None:
        status, detail = problem
        fix = "a new CA and certificate: `fleet init` anew, or your PKI's through --tls-cert"
        return fail("fleet TLS", detail, fix) if status == "FAIL" else warn("fleet TLS", detail, fix)
    return ok("fleet TLS", f"servers are checked against {path}, in its dates")


def _why(error: Exception) -> tuple[str, str]:
    text = str(error) or type(error).__name__
    if "authorization violation" in text.lower():
        return (
            "refuses this key",
            "was it removed or rotated? `fleet rotate NAME` gives a new one to copy here",
        )
    if "certificate" in text.lower() or "ssl" in text.lower():
        return f"fails TLS ({text})", "tls_ca must be the CA that signed the server's certificate"
    return f"does not answer ({text})", "is nats-server running there, and is its port reachable from here?"


async def nats_findings(settings: Settings, connect: Callable[..., Awaitable[Any]]) -> list[Finding]:
    """Every server, one at a time, with this host's key and CA: what an agent or hub would get."""
    fleet = settings.fleet
    assert fleet is not None
    user = settings.instance_name if settings.instance_name not in (None, "hub") else subjects.HUB_USER
    dial = with_tls(connect, fleet.tls_ca)
    findings = []
    for url in fleet.servers:
        try:
            nc = await dial_once(
                dial,
                [url],
                CONNECT_TIMEOUT,
                nkeys_seed=fleet.credentials,
                inbox_prefix=subjects.inbox_prefix(user or subjects.HUB_USER),
            )
        except Exception as error:  # every way a connect fails is a finding, not a crash
            said, fix = _why(error)
            findings.append(fail("fleet NATS", f"{url} {said}", fix))
            continue
        version = getattr(nc, "_server_info", {}).get("version", "?")
        findings.append(ok("fleet NATS", f"{url} lets this key in (nats-server {version})"))
        await nc.close()
    return findings


async def fleet_findings(settings: Settings) -> list[Finding]:
    import nats

    assert settings.fleet is not None
    return [
        key_finding(Path(settings.fleet.credentials)),
        ca_finding(settings),
        *await nats_findings(settings, nats.connect),
    ]
