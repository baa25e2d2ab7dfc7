"""The network's edge as pure values: whom a trusted proxy forwards for, which Host names are
answered, and which websocket makes room when the pending caps are reached."""

from __future__ import annotations

import pytest

from unitgate.config.network import AllowedHosts, TrustedProxies, default_hosts, host_name, parse_address
from unitgate.config.settings import ConfigError, load_settings
from unitgate.view.ws_admission import AdmissionLimits, WebSocketAdmission

PROXY = ("127.0.0.1", 40000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:5555", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:198.51.100.2", "198.51.100.2"),  # a dual-stack socket's IPv4 peer
        ("unknown", None),
        ("203.0.113.7, 10.0.0.1", None),
        ("", None),
        ("[::1", None),
    ],
)
def test_an_address_as_a_proxy_writes_it(text: str, expected: str | None) -> None:
    parsed = parse_address(text)
    assert (str(parsed) if parsed is not None else None) == expected


def test_no_proxy_is_trusted_by_default() -> None:
    trusted = TrustedProxies.parse(())
    assert not trusted
    assert trusted.client(PROXY, [b"203.0.113.7"]) == PROXY
    assert trusted.client(None, [b"203.0.113.7"]) is None


def test_a_trusted_proxy_names_the_client() -> None:
    trusted = TrustedProxies.parse(["127.0.0.1"])
    assert trusted.client(PROXY, [b"203.0.113.7"]) == ("203.0.113.7", 0)
    assert trusted.client(PROXY, []) == PROXY  # it forwarded for no one: it is the client
    # Another local process is no proxy, whatever it sends.
    assert trusted.client(("127.0.0.2", 1), [b"203.0.113.7"]) == ("127.0.0.2", 1)


def test_only_the_hops_trusted_proxies_wrote_are_read() -> None:
    trusted = TrustedProxies.parse(["127.0.0.1", "10.0.0.0/8"])
    # The client wrote the first entry itself; the proxies appended the rest.
    assert trusted.client(PROXY, [b"198.51.100.66, 203.0.113.7, 10.1.2.3"]) == ("203.0.113.7", 0)
    assert trusted.client(PROXY, [b"198.51.100.66", b"203.0.113.7"]) == ("203.0.113.7", 0)
    # Garbage stops the reading: the last hop a trusted proxy vouched for is the client.
    assert trusted.client(PROXY, [b"evil, 10.1.2.3"]) == ("10.1.2.3", 0)
    assert trusted.client(PROXY, [b"not an address"]) == PROXY


def test_unix_trusts_the_socket_nginx_reaches_and_nothing_else() -> None:
    trusted = TrustedProxies.parse(["unix"])
    assert trusted.client(None, [b"203.0.113.7"]) == ("203.0.113.7", 0)
    assert trusted.client(None, []) is None
    assert trusted.client(PROXY, [b"203.0.113.7"]) == PROXY


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.0/33", "example.com", "*"])
def test_a_trusted_proxy_must_be_an_address_a_network_or_unix(entry: str) -> None:
    with pytest.raises(ValueError, match=repr(entry)):
        TrustedProxies.parse([entry])
    with pytest.raises(ConfigError, match=r"is not an address"):
        load_settings(None, {"trusted_proxies": [entry]})


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (b"localhost", "localhost"),
        (b"LocalHost:8000", "localhost"),
        (b"unitgate.example.", "unitgate.example"),
        (b"127.0.0.1:8000", "127.0.0.1"),
        (b"[::1]:8000", "::1"),
        (b"[::1]", "::1"),
        (b"localhost:", None),
        (b"localhost:80x", None),
        (b"[::1]x", None),
        (b"evil.example/path", None),
        (b"", None),
        (b"\xff", None),
        (b"a b", None),
    ],
)
def test_the_name_a_host_header_carries(header: bytes, name: str | None) -> None:
    assert host_name(header) == name


def test_allowed_hosts_by_name_pattern_and_address() -> None:
    allowed = AllowedHosts.of(["unitgate.example", "*.fleet.example", "[::1]", "127.0.0.1"])

    def allows(*hosts: bytes) -> bool:
        return allowed.allows([(b"host", host) for host in hosts])

    assert allows(b"unitgate.example")
    assert allows(b"UNITGATE.example:8443")
    assert allows(b"web1.fleet.example")
    assert not allows(b"fleet.example")
    assert allows(b"[::1]:8000")
    assert allows(b"127.0.0.1:8000")
    assert not allows(b"evil.example")
    assert not allows(b"unitgate.example.evil.example")
    assert not allows(b"evilfleet.example")
    assert not allows()  # no Host at all
    assert not allows(b"unitgate.example", b"evil.example")  # two, read either way


def test_by_default_the_loopback_names_and_the_bound_address() -> None:
    assert default_hosts("127.0.0.1") == ("localhost", "127.0.0.1", "::1", "127.0.0.1")
    assert default_hosts("192.0.2.10")[-1] == "192.0.2.10"
    assert default_hosts("0.0.0.0") == ("localhost", "127.0.0.1", "::1")
    assert default_hosts("::") == ("localhost", "127.0.0.1", "::1")
    settings = load_settings(None, {"host": "192.0.2.10"})
    assert settings.host_names().allows([(b"host", b"192.0.2.10:8000")])
    assert not settings.host_names().allows([(b"host", b"rebind.evil.example:8000")])


@pytest.mark.parametrize(
    "entry", ["unitgate.example:443", "http://unitgate.example", "", "a b", "ünï.example"]
)
def test_an_allowed_host_is_a_name_or_an_address(entry: str) -> None:
    with pytest.raises(ConfigError, match="allowed_hosts"):
        load_settings(None, {"allowed_hosts": [entry]})


def test_tls_needs_both_files() -> None:
    with pytest.raises(ConfigError, match="tls_certfile and tls_keyfile go together"):
        load_settings(None, {"tls_certfile": "/etc/ssl/cert.pem"})


class Evictions:
    def __init__(self) -> None:
        self.evicted: list[int] = []

    def of(self, key: int):  # type: ignore[no-untyped-def]
        return lambda: self.evicted.append(key)


def test_a_full_address_makes_room_by_evicting_its_own_oldest() -> None:
    admission = WebSocketAdmission(AdmissionLimits(connections=100, pending=10, pending_per_address=3))
    log = Evictions()
    for key in range(5):
        assert admission.admit(key, "198.51.100.1", log.of(key))
    assert log.evicted == [0, 1]  # oldest first; the newcomers are all in
    assert admission.pending == 3
    admission.authenticated(4)  # authenticated sockets are never evicted
    for key in (5, 6):
        admission.admit(key, "198.51.100.1", log.of(key))
    assert log.evicted == [0, 1, 2]


def test_a_full_server_evicts_from_the_address_that_holds_the_most() -> None:
    admission = WebSocketAdmission(AdmissionLimits(connections=100, pending=4, pending_per_address=4))
    log = Evictions()
    admission.admit(0, "192.0.2.1", log.of(0))  # an honest one, the oldest of all
    for key in (1, 2, 3):
        admission.admit(key, "198.51.100.1", log.of(key))  # a flood
    admission.admit(4, "192.0.2.2", log.of(4))
    assert log.evicted == [1]  # the flood's oldest, not the honest oldest
    assert admission.pending == 4


def test_only_authenticated_sockets_at_the_cap_refuse_a_newcomer() -> None:
    admission = WebSocketAdmission(AdmissionLimits(connections=2, pending=2, pending_per_address=2))
    log = Evictions()
    assert admission.admit(0, "a", log.of(0))
    assert admission.admit(1, "a", log.of(1))
    assert admission.admit(2, "b", log.of(2))  # a silent one makes room
    assert log.evicted == [0]
    admission.leave(0)
    admission.authenticated(1)
    admission.authenticated(2)
    assert not admission.admit(3, "c", log.of(3))  # two dashboards: the cap on descriptors holds
    admission.leave(1)
    assert admission.admit(3, "c", log.of(3))
