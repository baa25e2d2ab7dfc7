"""Addresses and names at the network's edge, as pure values: which proxies are trusted and whom
they forward for (X-Forwarded-For), and which Host names unitgate answers to."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

# In trusted_proxies: whoever connects over a unix socket (the one `setup --nginx` has systemd
# make for nginx's group alone). uvicorn gives such a peer no address at all.
UNIX = "unix"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> Address | None:
    """An address as a proxy writes it: bare, `[v6]`, `v4:port` or `[v6]:port`; else None."""
    text = text.strip()
    if text.startswith("["):
        text, bracket, _ = text[1:].partition("]")
        if not bracket:
            return None
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket names an IPv4 peer ::ffff:a.b.c.d: it is that IPv4 address.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()
    unix: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """Addresses, networks (10.0.0.0/8) and `unix`; ValueError names a bad entry."""
        networks: list[Network] = []
        unix = False
        for entry in entries:
            if entry == UNIX:
                unix = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an address, a network or {UNIX!r}") from None
        return cls(tuple(networks), unix)

    def __bool__(self) -> bool:
        return bool(self.networks) or self.unix

    def trusts(self, peer: Address | None) -> bool:
        """`peer` None is a unix socket's."""
        if peer is None:
            return self.unix
        return any(peer in network for network in self.networks)

    def client(self, peer: tuple[str, int] | None, forwarded_for: list[bytes]) -> tuple[str, int] | None:
        """The address a request came from: its peer's, unless the peer is a trusted proxy that
        says whom it forwards for. The list is read from the right, past trusted proxies, to the
        first address no trusted proxy wrote; anything malformed on the way stops the reading,
        and the last trusted hop is the client."""
        peer_address = parse_address(peer[0]) if peer is not None else None
        if (peer is not None and peer_address is None) or not self.trusts(peer_address):
            return peer
        client = peer
        hops = b",".join(forwarded_for).decode("latin-1").split(",")
        for hop in reversed(hops if forwarded_for else []):
            address = parse_address(hop)
            if address is None:
                break
            client = (str(address), 0)
            if not self.trusts(address):
                break
        return client


def host_name(value: bytes) -> str | None:
    """The name a Host header carries, lower-case, without its port or a final dot; None when
    it is not a host name or an address."""
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    if text.startswith("["):
        name, bracket, port = text[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and port[1:].isdigit())):
            return None
    else:
        name, colon, port = text.partition(":")
        if colon and not port.isdigit():
            return None
    name = name.lower().removesuffix(".")
    if not name or not all(c.isalnum() or c in "-._:" for c in name):
        return None
    return name


def default_hosts(bind: str) -> tuple[str, ...]:
    """The names a server bound to `bind` is surely reached by: localhost, the loopback
    addresses, and the bound address itself unless that is every address."""
    try:
        every = ipaddress.ip_address(bind.strip("[]")).is_unspecified
    except ValueError:
        every = False
    return ("localhost", "127.0.0.1", "::1", *(() if every else (bind,)))


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches this host alone."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    names: frozenset[str]
    suffixes: tuple[str, ...] = ()  # from *.example.com: .example.com

    @classmethod
    def of(cls, entries: Iterable[str]) -> AllowedHosts:
        names: set[str] = set()
        suffixes: list[str] = []
        for entry in entries:
            name = entry.lower().removesuffix(".")
            wildcard = name.startswith("*.")
            name = name.removeprefix("*.")
            if name.startswith("[") and name.endswith("]"):
                name = name[1:-1]
            if not is_address(name) and (
                not name or not all(c.isalnum() or c in "-." for c in name) or not name.isascii()
            ):
                raise ValueError(
                    f"allowed_hosts: {entry!r} is not a host name or an address (and has no port)"
                )
            if wildcard:
                suffixes.append("." + name)
            else:
                names.add(name)
        return cls(frozenset(names), tuple(suffixes))

    def allows(self, headers: list[tuple[bytes, bytes]]) -> bool:
        values = [value for name, value in headers if name == b"host"]
        if len(values) != 1:
            return False  # none (HTTP/1.0), or two that could be read either way
        name = host_name(values[0])
        return name is not None and (name in self.names or name.endswith(self.suffixes))
