"""Which restart route a process takes: never one that cannot work in it."""

from __future__ import annotations

import pytest

from unitgate.services.systemd.route import (
    ProcessFacts,
    RestartVia,
    RouteUnusable,
    choose_route,
    no_new_privileges,
    read_facts,
)
from unitgate.services.systemd.units import Scope

AUTO, DIRECT, SUDO, POLKIT = RestartVia.AUTO, RestartVia.DIRECT, RestartVia.SUDO, RestartVia.POLKIT


def facts(euid: int = 998, nnp: bool = False, polkit: bool = True, sudo: bool = True) -> ProcessFacts:
    return ProcessFacts(euid=euid, no_new_privileges=nnp, polkit_installed=polkit, sudo_installed=sudo)


@pytest.mark.parametrize(
    ("configured", "scope", "process", "expected"),
    [
        # auto: root and the user manager need nothing; the service user takes what can work.
        (AUTO, Scope.SYSTEM, facts(euid=0, nnp=True), DIRECT),
        (AUTO, Scope.USER, facts(nnp=True, polkit=False), DIRECT),
        (AUTO, Scope.SYSTEM, facts(nnp=False), SUDO),  # the sudo drop-in in place
        (AUTO, Scope.SYSTEM, facts(nnp=True), POLKIT),  # the shipped hardened unit
        (AUTO, Scope.SYSTEM, facts(nnp=False, sudo=False), POLKIT),
        # what is asked for, where it can work
        (SUDO, Scope.SYSTEM, facts(nnp=False), SUDO),
        (POLKIT, Scope.SYSTEM, facts(nnp=True), POLKIT),
        (POLKIT, Scope.USER, facts(polkit=False), POLKIT),
        (DIRECT, Scope.SYSTEM, facts(nnp=True, polkit=False), DIRECT),
    ],
)
def test_the_route_that_can_work(
    configured: RestartVia, scope: Scope, process: ProcessFacts, expected: RestartVia
) -> None:
    assert choose_route(configured, scope, process) is expected


@pytest.mark.parametrize(
    ("configured", "process", "fix"),
    [
        (SUDO, facts(nnp=True), "sudo.conf"),
        (SUDO, facts(euid=0, nnp=True), "sudo.conf"),
        (POLKIT, facts(nnp=True, polkit=False), "apt install polkitd"),
        (AUTO, facts(nnp=True, polkit=False), "apt install polkitd"),
        (AUTO, facts(nnp=False, sudo=False, polkit=False), "apt install polkitd"),
    ],
)
def test_no_route_that_cannot_work_stops_startup_with_the_fix(
    configured: RestartVia, process: ProcessFacts, fix: str
) -> None:
    with pytest.raises(RouteUnusable, match=f'restart_via = "{configured}"') as refused:
        choose_route(configured, Scope.SYSTEM, process)
    assert fix in str(refused.value)


def test_no_new_privileges_is_read_from_proc_status() -> None:
    assert no_new_privileges("Name:\tunitgate\nNoNewPrivs:\t1\nSeccomp:\t2\n")
    assert not no_new_privileges("Name:\tunitgate\nNoNewPrivs:\t0\n")
    assert not no_new_privileges("")
    # This very process: the test runner runs without it.
    assert read_facts().no_new_privileges is False
