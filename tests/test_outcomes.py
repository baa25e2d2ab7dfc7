"""Outcomes that do not hide a dead service: an action systemd completes, that leaves the unit
dead, is a failure with the unit's state and its last log lines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import OPERATOR, started_unit
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.errors import ReloadFailed
from unitgate.services.policy.control import ServiceControl

SELF_KILLING = "netdata"  # allowlisted, and no other test's
UNIT = (
    "[Unit]\nDescription=Test service whose reload kills it\n"
    "[Service]\nExecStart=/bin/sleep infinity\nExecReload=/bin/kill -TERM $MAINPID\n"
)


@pytest.fixture
def self_killing_unit(sandbox: UserManagerSandbox) -> Iterator[str]:
    with started_unit(sandbox, SELF_KILLING, UNIT) as name:
        yield name


async def test_a_reload_that_kills_the_service_is_a_failure(
    control: ServiceControl, self_killing_unit: str
) -> None:
    with pytest.raises(ReloadFailed) as failed:
        await control.reload(self_killing_unit, OPERATOR)
    assert failed.value.exit_code == 0  # systemctl itself was content
    assert "the unit is inactive" in str(failed.value) or "the unit is failed" in str(failed.value)


async def test_a_reload_that_keeps_it_running_is_a_success(control: ServiceControl) -> None:
    from tests.units import HEALTHY

    status = await control.reload(HEALTHY, OPERATOR)
    assert status.active_state == "active"


def test_the_demo_nginx_survives_a_reload(own_systemd: None) -> None:
    from unitgate.sandbox.demo import demo_sandbox

    with demo_sandbox() as demo:
        before = demo.show("nginx.service", "MainPID")["MainPID"]
        demo.systemctl("reload", "nginx.service")
        after = demo.show("nginx.service", "MainPID", "ActiveState")
    assert after == {"MainPID": before, "ActiveState": "active"}
