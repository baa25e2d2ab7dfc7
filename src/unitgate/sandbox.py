"""A private systemd user manager in its own mount namespace, for the tests and the demo.

It sees the host's files but none of its units: the manager reads units from its own
XDG_CONFIG_HOME and talks over its own XDG_RUNTIME_DIR. Nothing here boots a system manager.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

SYSTEMD = "/usr/lib/systemd/systemd"
TARGET = "unitgate-sandbox.target"

# systemd refuses to run a user instance unless /run/systemd/system exists; the tmpfs keeps the
# host's /run/systemd untouched and disappears with the namespace. Before that, the shell moves
# itself into the sandbox's own cgroups, so the manager's units never share a cgroup with the
# host's or another sandbox's (two managers in one cgroup kill each other's "nginx.service").
_BOOT_SCRIPT = """
systemd=$1 target=$2; shift 2
for procs in "$@"; do echo $$ > "$procs" || exit 1; done
mount -t tmpfs -o mode=755 tmpfs /run/systemd && mkdir -p /run/systemd/system || exit 1
exec "$systemd" --user --unit="$target" --log-target=console --log-level=info
"""


class SandboxError(RuntimeError):
    pass


class UserManagerSandbox:
    """Boots `systemd --user` into a target of its own that wants `start` of `units`."""

    def __init__(
        self,
        units: Mapping[str, str],
        start: Iterable[str] = (),
        root: Path | None = None,
    ) -> None:
        self.units = dict(units)
        self.start_units = list(start)
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="unitgate-sandbox-")) if root is None else root
        self.runtime_dir = self.root / "run"
        self.config_dir = self.root / "config"
        self.unit_dir = self.config_dir / "systemd" / "user"
        self.log_path = self.root / "manager.log"
        self.cgroups: list[Path] = []
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a client of this manager needs: `systemctl --user` finds it through these."""
        return {"XDG_RUNTIME_DIR": str(self.runtime_dir)}

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 30.0) -> None:
        if shutil.which("unshare") is None or not os.access(SYSTEMD, os.X_OK):
            raise SandboxError(f"the sandbox needs unshare(1) and {SYSTEMD}")
        self._write_units()
        self.cgroups = _make_cgroups(f"unitgate-sandbox-{uuid.uuid4().hex[:12]}")
        notify_path = self.root / "notify"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            unshare = ["unshare", "--mount", "--propagation", "private"]
            if os.geteuid() != 0:
                unshare += ["--user", "--map-root-user"]
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [
                        *unshare,
                        *("/bin/sh", "-c", _BOOT_SCRIPT, "unitgate-sandbox", SYSTEMD, TARGET),
                        *(str(cgroup / "cgroup.procs") for cgroup in self.cgroups),
                    ],
                    env=self._manager_env(notify_path),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            # The manager says READY=1 once the boot transaction is done: wait for that, not a clock.
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._process.poll() is not None:
                    self.stop()
                    raise SandboxError(f"systemd --user did not become ready:\n{self.log_tail()}")
                notify.settimeout(min(remaining, 0.5))
                try:
                    message = notify.recv(4096)
                except TimeoutError:
                    continue
                if b"READY=1" in message.split(b"\n"):
                    break

    def _manager_env(self, notify_path: Path) -> dict[str, str]:
        home = self.root / "home"
        for folder in (home, self.root / "data", self.root / "state", self.root / "cache"):
            folder.mkdir(exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "XDG_CONFIG_HOME": str(self.config_dir),
            "XDG_DATA_HOME": str(self.root / "data"),
            "XDG_STATE_HOME": str(self.root / "state"),
            "XDG_CACHE_HOME": str(self.root / "cache"),
            "NOTIFY_SOCKET": str(notify_path),
            "LANG": "C.UTF-8",
        }

    def _write_units(self) -> None:
        self.runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.runtime_dir, 0o700)
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        for name, body in self.units.items():
            (self.unit_dir / name).write_text(body, encoding="utf-8")
        # dbus.socket gives the manager a user bus ($XDG_RUNTIME_DIR/bus), as on a real login.
        wants = " ".join(["dbus.socket", *self.start_units])
        (self.unit_dir / TARGET).write_text(
            f"[Unit]\nDescription=unitgate sandbox\nWants={wants}\n", encoding="utf-8"
        )

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Drive the sandbox from outside, as an operator would."""
        return subprocess.run(
            ["systemctl", "--user", *args],
            env={**os.environ, **self.env, "LC_ALL": "C", "TZ": "UTC", "SYSTEMD_PAGER": ""},
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        output = self.systemctl("show", f"--property={','.join(properties)}", unit).stdout
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the manager and every process it started, then remove the sandbox's files."""
        process, self._process = self._process, None
        if process is not None:
            family = descendants(process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                family |= descendants(process.pid)
                process.kill()
                process.wait()
            # A manager that exits cleanly has stopped its units; anything left is killed.
            for pid in family | _cgroup_pids(self.cgroups):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        _remove_cgroups(self.cgroups)
        self.cgroups = []
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> UserManagerSandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def cgroup_mounts() -> list[Path]:
    """Where the cgroup hierarchies are mounted: cgroup2 and every v1 one but cpuset.

    systemd tracks processes in cgroup2 and v1 name=systemd, and on a hybrid host it reads
    MemoryCurrent from the v1 memory controller. cpuset is left out: a new cpuset cgroup takes
    no process until its cpus and mems are filled in, and nothing here needs it.
    """
    mounts: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ", 1)
        if len(fields) != 2:
            continue
        fstype, _source, options = [*fields[1].split(), "", ""][:3]
        if fstype == "cgroup2" or (fstype == "cgroup" and "cpuset" not in options.split(",")):
            mounts.append(Path(fields[0].split()[4]))
    return mounts


def _make_cgroups(slice_name: str) -> list[Path]:
    """A cgroup shaped like a real user manager's, `X.slice/user-UID.slice/user@UID.service`, in
    every hierarchy systemd uses; none where we may not create cgroups (an unprivileged user)."""
    uid = os.getuid()
    made: list[Path] = []
    for mount in cgroup_mounts():
        cgroup = mount / f"{slice_name}.slice" / f"user-{uid}.slice" / f"user@{uid}.service"
        try:
            cgroup.mkdir(parents=True)
        except OSError:
            _remove_cgroups(made)
            return []
        made.append(cgroup)
    return made


def _cgroup_pids(cgroups: Iterable[Path]) -> set[int]:
    pids: set[int] = set()
    for cgroup in cgroups:
        for procs in cgroup.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in procs.read_text().split())
    return pids


def _remove_cgroups(cgroups: Iterable[Path]) -> None:
    """Remove each sandbox cgroup tree, deepest first, up to and including its top slice."""
    for cgroup in cgroups:
        top = cgroup.parent.parent
        deadline = time.monotonic() + 5
        while top.exists():
            # Killed processes leave their cgroup once reaped, which can take a moment.
            for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
            if not top.exists() or time.monotonic() > deadline:
                break
            time.sleep(0.01)


def process_tree() -> dict[int, list[int]]:
    """Parent pid -> child pids of every process (zombies included), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; fields resume after the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(root_pid: int) -> set[int]:
    """Every process below `root_pid`."""
    children = process_tree()
    found: set[int] = set()
    pending = [root_pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found
