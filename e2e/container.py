"""A throwaway system manager: this machine's own Debian booted by systemd-nspawn as PID 1, with
every write on a tmpfs (--volatile=overlay), so the host's files are never touched."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from unitgate.sandbox.host import process_tree

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerError(RuntimeError):
    pass


class SystemContainer:
    def __init__(self, name: str | None = None, bind_ro: dict[str, str] | None = None) -> None:
        """`bind_ro` maps host folders to where the container sees them, read-only."""
        self.name = name or f"unitgate-e2e-{uuid.uuid4().hex[:8]}"
        self.bind_ro = dict(bind_ro or {})
        self.root = Path(tempfile.mkdtemp(prefix="unitgate-e2e-root-"))
        self.log_path = Path(tempfile.mkstemp(prefix="unitgate-e2e-", suffix=".log")[1])
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.pid1: int | None = None
        self._mounted = False

    def start(self, timeout: float = 90) -> None:
        try:
            self._boot(timeout)
        except BaseException:
            self.stop()
            raise

    def _boot(self, timeout: float) -> None:
        # Non-recursive: the root file system alone, none of the host's other mounts.
        subprocess.run(["mount", "--bind", "/", str(self.root)], check=True)
        self._mounted = True
        with self.log_path.open("ab") as log:
            self._nspawn = subprocess.Popen(
                [
                    # A test run killed outright still powers the container off.
                    *("setpriv", "--pdeathsig", "SIGTERM"),
                    "systemd-nspawn",
                    "-D",
                    str(self.root),
                    "--volatile=overlay",
                    "-b",
                    "--register=no",
                    "--keep-unit",
                    f"--machine={self.name}",
                    f"--uuid={uuid.uuid4()}",
                    "--console=passive",
                    *(f"--bind-ro={host}:{inside}" for host, inside in self.bind_ro.items()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while self.pid1 is None:
            if self._nspawn.poll() is not None or time.monotonic() > deadline:
                raise ContainerError(f"systemd-nspawn did not start:\n{self.log_tail()}")
            kids = process_tree().get(self._nspawn.pid, [])
            if kids:
                self.pid1 = kids[0]
            else:
                time.sleep(0.05)
        state = ""
        while state not in ("running", "degraded"):
            if self._nspawn.poll() is not None or time.monotonic() > deadline:
                raise ContainerError(f"the container did not boot (state {state!r}):\n{self.log_tail()}")
            remaining = max(1.0, deadline - time.monotonic())
            state = self.run(
                "systemctl", "is-system-running", "--wait", check=False, timeout=remaining
            ).stdout.strip()

    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 300,
        input: str | None = None,
        user: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside, as root (or `user`), with a clean environment."""
        assert self.pid1 is not None
        command = ["nsenter", "-t", str(self.pid1), "-a"]
        if user is not None:
            command += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        environment = [f"PATH={PATH}", "LANG=C.UTF-8", *(f"{k}={v}" for k, v in (env or {}).items())]
        command += ["env", "-i", *environment, *argv]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise ContainerError(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 60) -> None:
        nspawn, self._nspawn = self._nspawn, None
        if nspawn is not None and nspawn.poll() is None:
            nspawn.send_signal(signal.SIGTERM)  # powers the container off
            try:
                nspawn.wait(timeout)
            except subprocess.TimeoutExpired:
                nspawn.send_signal(signal.SIGTERM)  # a second one ends it at once
                try:
                    nspawn.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(nspawn.pid, signal.SIGKILL)
                    nspawn.wait()
        if self._mounted:
            subprocess.run(["umount", str(self.root)], check=False)
            self._mounted = False
        with contextlib.suppress(OSError):
            self.root.rmdir()

    def __enter__(self) -> SystemContainer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if kind is None:  # the console log is kept only when something went wrong
            self.log_path.unlink(missing_ok=True)
