"""The allowlist of service names and systemd's unit-name rules for the configured ones."""

from __future__ import annotations

import re
from collections.abc import Iterable

from unitgate.services.errors import ServiceNotAllowed
from unitgate.services.systemd.units import SERVICE_SUFFIX

DEFAULT_ALLOWLIST: frozenset[str] = frozenset(
    {
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
    }
)

# systemd's unit_name_is_valid(): "[a-zA-Z0-9:_.\\-]" in the prefix, one optional "@instance",
# and at most 255 bytes including the ".service" suffix. A leading "-" is refused on top of that,
# so a configured name can never read as an option on systemctl's command line.
_UNIT_PREFIX = r"[A-Za-z0-9:_.\\][A-Za-z0-9:_.\\-]*"
_UNIT_NAME = re.compile(rf"{_UNIT_PREFIX}(?:@[A-Za-z0-9:_.\\-]*)?")
_UNIT_NAME_MAX = 255


def unit_name_problem(name: str) -> str | None:
    """Why `name` is not a valid bare service name for systemd, or None when it is."""
    if not name:
        return "is empty"
    if not name.isascii() or _UNIT_NAME.fullmatch(name) is None:
        return "may hold only ASCII letters, digits and ':_.\\-', one '@', and not start with '-'"
    if name.endswith(SERVICE_SUFFIX):
        return "must be given without the '.service' suffix"
    if len(name) + len(SERVICE_SUFFIX) > _UNIT_NAME_MAX:
        return f"is longer than systemd's {_UNIT_NAME_MAX}-character limit for unit names"
    return None


class Allowlist:
    """An immutable set of service names; the only gate between client input and systemctl."""

    __slots__ = ("_names",)

    def __init__(self, names: Iterable[str]) -> None:
        checked = frozenset(names)
        for name in checked:
            problem = unit_name_problem(name)
            if problem is not None:
                raise ValueError(f"service name {name!r} {problem}")
        self._names = checked

    @property
    def names(self) -> frozenset[str]:
        return self._names

    def sorted(self) -> list[str]:
        return sorted(self._names)

    def require(self, name: object) -> str:
        """Return `name` when it is exactly an allowlisted name; raise ServiceNotAllowed otherwise.

        Exact membership is the whole check: no normalisation, no suffix stripping, so a
        homoglyph, a path or an option-looking string can never match.
        """
        if isinstance(name, str) and name in self._names:
            return name
        raise ServiceNotAllowed(name if isinstance(name, str) else repr(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._names

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"Allowlist({self.sorted()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Allowlist) and other._names == self._names

    def __hash__(self) -> int:
        return hash(self._names)

    def __reduce__(self) -> tuple[type[Allowlist], tuple[list[str]]]:
        # Unpickled through __init__, so every name is checked again.
        return (Allowlist, (self.sorted(),))
