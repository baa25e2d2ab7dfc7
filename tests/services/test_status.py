"""Pure parsing of `systemctl show`: real systemd 252 and 219 output, odd values, aliases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from unitgate.services.systemd.status import (
    ClockReading,
    ShowOutputError,
    count_states,
    distinct_units,
    parse_memory,
    parse_show_output,
    parse_timestamp,
)

DATA = Path(__file__).parent / "data"
NAMES = ["nginx", "php8.2-fpm", "mariadb", "redis-server"]
# When the captured output was taken: realtime and CLOCK_MONOTONIC read together.
CLOCK = ClockReading(realtime=1795725860.0, monotonic=400.0)


def captured(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(
    ("sample", "memory"), [("show_systemd252.txt", 258048), ("show_systemd252_unix.txt", 184320)]
)
def test_parses_real_systemd_252_output(sample: str, memory: int) -> None:
    nginx, php, mariadb, redis = parse_show_output(captured(sample), NAMES, CLOCK)

    assert nginx.name == "nginx"
    assert nginx.description == "Test web server"
    assert (nginx.load_state, nginx.active_state, nginx.sub_state) == ("loaded", "active", "running")
    assert nginx.active
    assert nginx.installed
    assert nginx.main_pid == 2789
    assert nginx.memory_bytes == memory
    assert nginx.active_since == datetime(2026, 11, 26, 20, 44, 10, tzinfo=UTC)
    assert nginx.restart_count == 0
    assert nginx.unit_file_state == "static"
    assert nginx.can_reload

    assert (php.active_state, php.sub_state) == ("failed", "failed")
    assert not php.active
    assert php.main_pid is None
    assert php.memory_bytes is None
    assert php.active_since is None
    assert not php.can_reload

    assert mariadb.installed
    assert mariadb.active_state == "inactive"

    assert redis.load_state == "not-found"
    assert not redis.installed
    assert redis.unit_file_state is None


def test_parses_old_systemd_output() -> None:
    """systemd 219: raw 2^64-1 for unknown memory, "n/a" timestamps, no NRestarts, masked units."""
    nginx, mariadb = parse_show_output(captured("show_systemd219.txt"), ["nginx", "mariadb"], CLOCK)
    assert nginx.memory_bytes is None
    assert nginx.restart_count is None
    assert nginx.active_since == datetime(2026, 11, 25, 8, 15, 2, tzinfo=UTC)
    assert mariadb.load_state == "masked"
    assert mariadb.installed
    assert mariadb.active_since is None


def test_monotonic_fallback_for_unknown_timestamp_format() -> None:
    text = (
        "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=7\n"
        "ActiveEnterTimestamp=jeu. 26 nov. 2026 21:44:10 CET\n"
        "ActiveEnterTimestampMonotonic=100000000\n"
    )
    (status,) = parse_show_output(text, ["nginx"], CLOCK)
    # Entered at monotonic 100 s, read at 400 s: 300 s before the wall-clock reading.
    assert status.active_since == datetime.fromtimestamp(CLOCK.realtime - 300, UTC)
    assert status.uptime_seconds(datetime.fromtimestamp(CLOCK.realtime, UTC)) == 300


def test_blocks_are_matched_by_position_not_id() -> None:
    """An alias (mysql -> mariadb) reports its target's Id; the asked name is kept."""
    text = "Id=mariadb.service\nLoadState=loaded\nActiveState=active\nSubState=running\n"
    (status,) = parse_show_output(text, ["mysql"], CLOCK)
    assert status.name == "mysql"
    assert status.unit_id == "mariadb.service"
    assert status.is_alias


def test_each_unit_is_listed_once_under_its_own_name() -> None:
    text = "\n\n".join(
        f"Id={unit_id}\nLoadState={load}\nActiveState=active\nSubState=running"
        for unit_id, load in (
            ("mariadb.service", "loaded"),  # asked as mariadb
            ("mariadb.service", "loaded"),  # asked as mysql: Debian's alias
            ("nginx.service", "loaded"),
            ("redis-server.service", "not-found"),
            ("php8.2-fpm.service", "not-found"),
        )
    )
    names = ["mariadb", "mysql", "nginx", "redis-server", "php8.2-fpm"]
    statuses = parse_show_output(text, names, CLOCK)
    assert [s.name for s in distinct_units(statuses)] == ["mariadb", "nginx", "redis-server", "php8.2-fpm"]
    # Asked in the other order, the unit's own name still wins over its alias.
    swapped = [statuses[1], statuses[0], statuses[2]]
    assert [s.name for s in distinct_units(swapped)] == ["mariadb", "nginx"]
    # Only the alias allowlisted: it stands for the unit.
    assert [s.name for s in distinct_units([statuses[1]])] == ["mysql"]
    assert count_states(distinct_units(statuses[:3])).total == 2


def test_block_count_must_match() -> None:
    with pytest.raises(ShowOutputError, match="expected 1 unit blocks from systemctl, got 2"):
        parse_show_output(captured("show_systemd219.txt"), ["nginx"], CLOCK)
    with pytest.raises(ShowOutputError, match="expected 2"):
        parse_show_output("LoadState=loaded\nActiveState=active\nSubState=running\n", ["a", "b"], CLOCK)


def test_garbage_is_refused() -> None:
    with pytest.raises(ShowOutputError, match="KEY=value"):
        parse_show_output("<html>oops</html>\n", ["nginx"], CLOCK)
    with pytest.raises(ShowOutputError, match="ActiveState"):
        parse_show_output("LoadState=loaded\n", ["nginx"], CLOCK)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[not set]", None),
        ("18446744073709551615", None),
        ("0", None),
        ("", None),
        (None, None),
        ("-5", None),
        ("12x", None),
        ("٣", None),  # a non-ASCII digit is not a number here
        ("4096", 4096),
        ("6442450944", 6 * 2**30),  # 6 GiB: past 2^32
        ("18446744073709551614", 2**64 - 2),
    ],
)
def test_parse_memory(value: str | None, expected: int | None) -> None:
    assert parse_memory(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("@1795725850", datetime(2026, 11, 26, 20, 44, 10, tzinfo=UTC)),
        ("Thu 2026-11-26 20:44:10 UTC", datetime(2026, 11, 26, 20, 44, 10, tzinfo=UTC)),
        ("Thu 2026-11-26 21:44:10 CET", None),
        ("n/a", None),
        ("", None),
        ("@nope", None),
        ("Thu 2026-13-40 20:44:10 UTC", None),
    ],
)
def test_parse_timestamp(value: str, expected: datetime | None) -> None:
    assert parse_timestamp(value) == expected
