"""The allowlist: exact names only, systemd's unit-name rules, and hostile names refused."""

from __future__ import annotations

import pytest

from tests.helpers import HOSTILE_NAMES
from unitgate.services.errors import ServiceNotAllowed
from unitgate.services.systemd.allowlist import DEFAULT_ALLOWLIST, Allowlist, unit_name_problem
from unitgate.services.systemd.units import unit_for


def test_default_allowlist_is_exactly_the_web_stack() -> None:
    assert isinstance(DEFAULT_ALLOWLIST, frozenset)
    assert sorted(DEFAULT_ALLOWLIST) == sorted(
        [
            "nginx",
            "php7.4-fpm",
            "php8.0-fpm",
            "php8.1-fpm",
            "php8.2-fpm",
            "php8.3-fpm",
            "php8.4-fpm",
            "mariadb",
            "mysql",
            "redis-server",
            "postfix",
            "fail2ban",
            "ufw",
            "netdata",
        ]
    )


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_not_allowed(name: str) -> None:
    allowlist = Allowlist(DEFAULT_ALLOWLIST)
    assert name not in allowlist
    with pytest.raises(ServiceNotAllowed):
        allowlist.require(name)


@pytest.mark.parametrize("value", [None, 1, b"nginx", ["nginx"]])
def test_non_strings_are_not_allowed(value: object) -> None:
    with pytest.raises(ServiceNotAllowed):
        Allowlist(DEFAULT_ALLOWLIST).require(value)


def test_allowed_name_passes_unchanged() -> None:
    assert Allowlist(DEFAULT_ALLOWLIST).require("php8.2-fpm") == "php8.2-fpm"
    assert unit_for("php8.2-fpm") == "php8.2-fpm.service"


def test_refusal_message_is_bounded() -> None:
    with pytest.raises(ServiceNotAllowed) as refused:
        Allowlist(DEFAULT_ALLOWLIST).require("x" * 10_000)
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize("name", ["nginx", "php8.2-fpm", "getty@tty1", "my_app:web", "a" * 247, "x\\x2dy"])
def test_valid_unit_names(name: str) -> None:
    assert unit_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("-nginx", "ASCII"),
        ("nginx;reboot", "ASCII"),
        ("ng\u0456nx", "ASCII"),
        ("a/b", "ASCII"),
        ("a@b@c", "ASCII"),
        ("nginx.service", "suffix"),
        ("a" * 248, "255"),
    ],
)
def test_invalid_unit_names(name: str, problem: str) -> None:
    found = unit_name_problem(name)
    assert found is not None
    assert problem in found


def test_allowlist_rejects_invalid_configured_names() -> None:
    with pytest.raises(ValueError, match="nginx;reboot"):
        Allowlist(["nginx", "nginx;reboot"])
