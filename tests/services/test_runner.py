"""The process runner, tested with real processes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.helpers import children, running
from unitgate.services.systemd.runner import CommandNotStarted, CommandTimedOut, ProcessRunner

ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


async def test_captures_output_and_exit_code() -> None:
    runner = ProcessRunner(ENV)
    result = await runner.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], timeout=5)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert not result.truncated
    assert runner.spawned == 1


async def test_child_sees_only_the_given_environment() -> None:
    result = await ProcessRunner(ENV).run(["/usr/bin/env"], timeout=5)
    assert sorted(result.stdout.decode().splitlines()) == ["LC_ALL=C", "PATH=/usr/bin:/bin"]


async def test_arguments_are_never_interpreted_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = await ProcessRunner(ENV).run(["/bin/echo", f"x; touch {marker}", "$(id)"], timeout=5)
    assert result.stdout == f"x; touch {marker} $(id)\n".encode()
    assert not marker.exists()


async def test_output_is_capped_but_drained() -> None:
    runner = ProcessRunner(ENV, output_cap=1000)
    script = "import sys; sys.stdout.write('x' * 3_000_000); sys.stdout.flush()"
    result = await runner.run([sys.executable, "-c", script], timeout=10)
    assert result.returncode == 0  # the child was never blocked on a full pipe
    assert result.stdout == b"x" * 1000
    assert result.truncated


async def test_timeout_kills_and_reaps_the_whole_group(tmp_path: Path) -> None:
    runner = ProcessRunner(ENV)
    before = children()
    pid_file = tmp_path / "grandchild"
    # A grandchild in the same group (as systemctl is below sudo): the kill must reach it too.
    script = f"sleep 30 & echo $! > {pid_file}; wait"
    with pytest.raises(CommandTimedOut) as timed_out:
        await runner.run(["/bin/sh", "-c", script], timeout=0.3)
    assert timed_out.value.timeout == 0.3
    assert children() == before
    assert not running(int(pid_file.read_text()))


async def test_cancellation_kills_and_reaps() -> None:
    before = children()
    task = asyncio.create_task(ProcessRunner(ENV).run(["/bin/sleep", "30"], timeout=60))
    while children() == before:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert children() == before


async def test_missing_executable() -> None:
    runner = ProcessRunner(ENV)
    with pytest.raises(CommandNotStarted, match="/nonexistent/systemctl"):
        await runner.run(["/nonexistent/systemctl", "show"], timeout=5)
    assert runner.spawned == 0


@pytest.mark.parametrize("argv", [[], ["/bin/echo", 1], "echo hi"])
async def test_argv_must_be_a_list_of_strings(argv: object) -> None:
    with pytest.raises(TypeError):
        await ProcessRunner(ENV).run(argv, timeout=5)  # type: ignore[arg-type]
