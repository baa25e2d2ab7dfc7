"""The fleet's wire, subjects and view without NATS: what a hostile host can send is refused
or dropped, keys and names round-trip, and a silent host goes offline."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from unitgate.services import errors
from unitgate.services.fleet import subjects, wire
from unitgate.services.fleet.credentials import new_nkey
from unitgate.services.fleet.nats_config import server_config
from unitgate.services.fleet.plan import FleetPlan, listen_address
from unitgate.services.fleet.view import MAX_SERVICES, FleetView
from unitgate.services.fleet.wire import WireError
from unitgate.services.systemd.logs import LogEntry
from unitgate.services.systemd.status import UnitStatus

STATUS = UnitStatus(
    name="php8.2-fpm",
    unit_id="php8.2-fpm.service",
    description="PHP",
    load_state="loaded",
    active_state="active",
    sub_state="running",
    main_pid=42,
    memory_bytes=5 << 32,
    active_since=datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
    restart_count=1,
    unit_file_state="enabled",
    can_reload=True,
    cpu_nsec=10**9,
    result="success",
    main_exit_status=None,
    tasks=3,
)


def test_a_status_round_trips_and_is_filed_under_its_host() -> None:
    data = json.loads(wire.dumps(wire.status_to_wire(STATUS)))
    assert wire.status_from_wire(data, "web1") == dataclasses.replace(STATUS, instance="web1")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "../etc/passwd"),
        ("name", 7),
        ("pid", "42"),
        ("pid", True),  # a bool is no number here
        ("reload", 1),
        ("since", "yesterday"),
        ("since", "2026-12-03T12:00:00"),  # a time without its zone
        ("description", "x" * 5000),
        ("active", None),
    ],
)
def test_a_hostile_status_is_refused(field: str, value: Any) -> None:
    data = {**wire.status_to_wire(STATUS), field: value}
    with pytest.raises(WireError):
        wire.status_from_wire(data, "web1")


@pytest.mark.parametrize("payload", [b"", b"[1]", b"{", b"\xff", b"[" * 100_000])
def test_what_is_not_an_object_is_refused(payload: bytes) -> None:
    with pytest.raises(WireError):
        wire.loads(payload)


@pytest.mark.parametrize("error", [error for error in wire.ERROR_FIELDS])
def test_every_typed_error_crosses_the_wire(error: type[errors.UnitgateError]) -> None:
    args: dict[str, Any] = {
        "name": "nginx",
        "command": "systemctl show",
        "timeout_seconds": 5.0,
        "reason": "gone",
        "retry_after_seconds": 3,
        "last_cursor": "s=1",
        "exit_code": 1,
        "detail": "failed",
        "recent_logs": [LogEntry(datetime(2026, 1, 1, tzinfo=UTC), 3, 9, "boom", "s=2")],
        "action": "restart",
        "role": "operator",
        "token": "php-team",
        "instance": "web1",
    }
    made = error(*(args[field] for field in wire.ERROR_FIELDS[error]))
    back = wire.error_from_wire(json.loads(wire.dumps(wire.error_to_wire(made))))
    assert type(back) is error
    assert str(back) == str(made)


def test_an_error_of_no_known_type_or_shape_is_refused() -> None:
    with pytest.raises(WireError):
        wire.error_from_wire({"type": "SystemExit"})
    with pytest.raises(WireError):
        wire.error_from_wire({"type": "RateLimited", "name": "nginx", "retry_after_seconds": "soon"})


def test_a_caller_is_checked() -> None:
    caller = wire.Caller("ops", "operator", "10.0.0.1", ("nginx",), ("restart",))
    assert wire.caller_from_wire(wire.caller_to_wire(caller)) == caller
    with pytest.raises(WireError):
        wire.caller_from_wire({**wire.caller_to_wire(caller), "role": "root"})
    with pytest.raises(WireError):
        wire.caller_from_wire({**wire.caller_to_wire(caller), "actions": ["reboot"]})


@pytest.mark.parametrize("service", ["nginx", "php8.2-fpm", "getty@tty1", "a:b", "x\\y"])
def test_keys_round_trip_and_stay_in_the_allowed_alphabet(service: str) -> None:
    key = subjects.status_key("web1", service)
    assert all(c.isalnum() or c in "-_=./" for c in key)
    assert subjects.parse_key(key) == subjects.Key("web1", service)
    assert subjects.parse_key(subjects.host_key("web1")) == subjects.Key("web1", None)


@pytest.mark.parametrize("name", ["", "web.1", "web*", "web 1", ">", "-web", "a" * 64])
def test_an_instance_name_is_one_plain_token(name: str) -> None:
    assert subjects.instance_problem(name) is not None


def test_an_agents_permissions_name_only_its_own_subjects() -> None:
    permissions = subjects.agent_permissions("web1")
    for subject in (*permissions.publish, *permissions.subscribe):
        assert "web1" in subject or subject == f"$JS.API.STREAM.INFO.{subjects.STREAM}"
        assert "*" not in subject


def test_the_server_config_holds_public_keys_only() -> None:
    hub, agent = new_nkey(), new_nkey()
    plan = FleetPlan(Path("/srv/fleet"), ("tls://127.0.0.1:4222",), hub.public)
    text = server_config(plan.with_instances({"web1": agent.public}))
    assert hub.public in text
    assert agent.public in text
    assert hub.seed not in text
    assert agent.seed not in text
    assert listen_address("nats://nats.example:4333") == ("nats.example", 4333)
    assert listen_address("tls://nats.example") == ("nats.example", 4222)
    with pytest.raises(ValueError, match="nats://HOST:PORT"):
        listen_address("http://nats.example")


async def test_the_view_drops_what_no_agent_of_ours_writes_and_expires_the_silent() -> None:
    now = [100.0]
    view = FleetView(offline_after=6.0, clock=lambda: now[0])
    good = wire.dumps(wire.status_to_wire(STATUS))
    view.apply(subjects.status_key("web1", "php8.2-fpm"), good)
    view.apply(subjects.status_key("web1", "nginx"), good)  # filed under another service's key
    view.apply("web1.elsewhere.x", good)
    view.apply(subjects.status_key("web1", "redis-server"), b"{not json")
    assert list(view.hosts["web1"].statuses) == ["php8.2-fpm"]
    view.heard_from("web1")
    assert view.hosts["web1"].online
    generation = view.generation
    now[0] += 6.5
    view.expire()
    assert not view.hosts["web1"].online
    changes = await asyncio.wait_for(view.changes_after(generation), 1)
    assert changes is not None
    assert [(c.host, c.status) for c in changes] == [("web1", None)]
    view.apply(subjects.status_key("web1", "php8.2-fpm"), None)
    # Its last key gone (as `fleet remove-host` purges them), the host is no host at all.
    assert "web1" not in view.hosts


def test_a_host_is_forgotten_only_once_its_every_key_is_gone() -> None:
    view = FleetView(offline_after=6.0, clock=lambda: 0.0)
    offered = wire.HostInfo("252", "system", ("php8.2-fpm",), ("restart",))
    view.apply(subjects.host_key("web1"), wire.dumps(wire.host_to_wire(offered)))
    view.apply(subjects.status_key("web1", "php8.2-fpm"), wire.dumps(wire.status_to_wire(STATUS)))
    view.apply(subjects.host_key("web1"), None)  # the purge takes the host key first
    assert list(view.hosts["web1"].statuses) == ["php8.2-fpm"]
    generation = view.generation
    view.apply(subjects.status_key("web1", "php8.2-fpm"), None)
    assert "web1" not in view.hosts
    assert view.generation > generation  # subscribers hear that it went


def test_a_host_cannot_fill_the_hubs_memory_with_services_it_does_not_offer() -> None:
    view = FleetView(offline_after=6.0, clock=lambda: 0.0)
    offered = wire.HostInfo("252", "system", ("php8.2-fpm",), ("restart",))
    view.apply(subjects.host_key("web1"), wire.dumps(wire.host_to_wire(offered)))
    for index in range(5000):
        name = f"junk{index}"
        status = dataclasses.replace(STATUS, name=name)
        view.apply(subjects.status_key("web1", name), wire.dumps(wire.status_to_wire(status)))
    view.apply(subjects.status_key("web1", "php8.2-fpm"), wire.dumps(wire.status_to_wire(STATUS)))
    assert list(view.hosts["web1"].statuses) == ["php8.2-fpm"]
    # Before it says what it offers, at most MAX_SERVICES are kept.
    for index in range(5000):
        status = dataclasses.replace(STATUS, name=f"junk{index}")
        view.apply(subjects.status_key("web2", f"junk{index}"), wire.dumps(wire.status_to_wire(status)))
    assert len(view.hosts["web2"].statuses) == MAX_SERVICES


def test_the_views_snapshot_is_one_value_until_anything_changes() -> None:
    from unitgate.services.fleet import subjects as keys
    from unitgate.services.fleet.view import FleetView

    view = FleetView(6.0, lambda: 0.0)
    first = view.snapshot()
    assert view.snapshot() is first
    assert view.is_current(first)
    status = {"name": "nginx", "unit": "nginx.service", "description": "", "load": "loaded",
              "active": "active", "sub": "running", "pid": 7, "memory": None, "since": None,
              "restarts": 0, "file": None, "reload": True}  # fmt: skip
    view.apply(keys.status_key("web1", "nginx"), json.dumps(status).encode())
    assert not view.is_current(first)
    second = view.snapshot()
    assert dict(second).keys() == {"web1/nginx"}
    view.heard_from("web1")  # online: what a query sees of the host changed
    assert not view.is_current(second)
