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
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

from unitgate.sandbox.host import cgroup_pids, descendants, make_cgroups, remove_cgroups

SYSTEMD = "/usr/lib/systemd/systemd"
TARGET = "unitgate-sandbox.target"
READY_UNIT = "unitgate-sandbox-ready.service"
READY_MESSAGE = b"UNITGATE_SANDBOX_READY=1"

# systemd refuses to run a user instance unless /run/systemd/system exists; the tmpfs keeps the
# host's /run/systemd untouched and disappears with the namespace. Before that, the shell moves
# itself into the sandbox's own cgroups, so the manager's units never share a cgroup with the
# host's or another sandbox's (two managers in one cgroup kill each other's "nginx.service").
#
# With a journal, a systemd-journald of the sandbox's own runs beside the manager, in a sibling
# cgroup: its sockets are in the private /run/systemd, its files in the sandbox's folder bound
# onto /run/log, and a tmpfs covers /var/log/journal, so the host's journal sees nothing. The
# manager's cgroup is shaped like a real user manager's (X.slice/user-0.slice/user@0.service),
# which is how journald tells `journalctl --user-unit` which unit a line came from.
_BOOT_SCRIPT = """
systemd=$1 target=$2 journald_conf=$3 log_dir=$4 journald_cgroups=$5 manager_cgroups=$6
mount -t tmpfs -o mode=755 tmpfs /run/systemd && mkdir -p /run/systemd/system || exit 1
log_target=console
if [ -n "$log_dir" ]; then
  for procs in $journald_cgroups; do echo $$ > "$procs" || exit 1; done
  mkdir -p /run/systemd/journal || exit 1
  mount --bind "$log_dir" /run/log || exit 1
  if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=755 tmpfs /var/log/journal || exit 1; fi
  mount --bind "$journald_conf" /etc/systemd/journald.conf || exit 1
  # Not told of NOTIFY_SOCKET: its READY=1 is not the one the sandbox waits for.
  # Its parent is this shell, which becomes the manager: it ends with the manager.
  env -u NOTIFY_SOCKET setpriv --pdeathsig SIGTERM /usr/lib/systemd/systemd-journald &
  # journald makes its sockets within milliseconds; units started before that would log nowhere.
  tries=0
  while [ ! -S /run/systemd/journal/stdout ]; do
    tries=$((tries + 1)); [ $tries -gt 1000 ] && { echo "journald did not start" >&2; exit 1; }
    sleep 0.01
  done
  log_target=journal
fi
for procs in $manager_cgroups; do echo $$ > "$procs" || exit 1; done
exec "$systemd" --user --unit="$target" --log-target=$log_target --log-level=info
"""

_JOURNALD_CONF = """[Journal]
Storage=volatile
ReadKMsg=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
"""
JOURNALD = "/usr/lib/systemd/systemd-journald"


class SandboxError(RuntimeError):
    pass


class UserManagerSandbox:
    """Boots `systemd --user` into a target of its own that wants `start` of `units`."""

    def __init__(
        self,
        units: Mapping[str, str],
        start: Iterable[str] = (),
        root: Path | None = None,
        journal: bool = True,
    ) -> None:
        self.units = dict(units)
        self.start_units = list(start)
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="unitgate-sandbox-")) if root is None else root
        self.runtime_dir = self.root / "run"
        self.config_dir = self.root / "config"
        self.unit_dir = self.config_dir / "systemd" / "user"
        self.log_path = self.root / "manager.log"
        self.want_journal = journal
        self.cgroups: list[Path] = []
        self.journal_directory: Path | None = None
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
        try:
            self._boot(timeout)
        except BaseException:
            self.stop()
            raise

    def _boot(self, timeout: float) -> None:
        notify_path = self.root / "notify"
        self._write_units(notify_path)
        self.cgroups = make_cgroups(f"unitgate-sandbox-{uuid.uuid4().hex[:12]}")
        manager_cgroups = [
            top / f"user-{os.getuid()}.slice" / f"user@{os.getuid()}.service" for top in self.cgroups
        ]
        journald_cgroups = [top / "unitgate-journald.scope" for top in self.cgroups]
        # journald needs cgroups of its own to tell units apart; without them, no journal.
        journal = self.want_journal and bool(self.cgroups) and os.access(JOURNALD, os.X_OK)
        log_dir = self.root / "log"
        journald_conf = self.root / "journald.conf"
        if journal:
            log_dir.mkdir(exist_ok=True)
            journald_conf.write_text(_JOURNALD_CONF, encoding="utf-8")
            for cgroup in journald_cgroups:
                cgroup.mkdir()
            self.journal_directory = log_dir / "journal"
        for cgroup in manager_cgroups:
            cgroup.mkdir(parents=True)
        paths = [str(p) for p in (*manager_cgroups, *journald_cgroups, log_dir, journald_conf)]
        if any(char.isspace() for path in paths for char in path):
            raise SandboxError("the sandbox's paths must not hold white space")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            unshare = ["unshare", "--mount", "--propagation", "private"]
            if os.geteuid() != 0:
                unshare += ["--user", "--map-root-user"]
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [
                        # Should whoever started the sandbox die without stopping it (a test run
                        # killed outright), the manager is told to shut down all the same.
                        *("setpriv", "--pdeathsig", "SIGTERM"),
                        *unshare,
                        *("/bin/sh", "-c", _BOOT_SCRIPT, "unitgate-sandbox", SYSTEMD, TARGET),
                        str(journald_conf) if journal else "",
                        str(log_dir) if journal else "",
                        " ".join(str(c / "cgroup.procs") for c in journald_cgroups) if journal else "",
                        " ".join(str(c / "cgroup.procs") for c in manager_cgroups),
                    ],
                    env=self._manager_env(notify_path),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            # The manager's own READY=1 comes at basic.target, before the units of the sandbox's
            # target; a last unit ordered after all of them says when they have started.
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._process.poll() is not None:
                    raise SandboxError(f"systemd --user did not become ready:\n{self.log_tail()}")
                notify.settimeout(min(remaining, 0.5))
                try:
                    message = notify.recv(4096)
                except TimeoutError:
                    continue
                if READY_MESSAGE in message.split(b"\n"):
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

    def _write_units(self, notify_path: Path) -> None:
        self.runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.runtime_dir, 0o700)
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        for name, body in self.units.items():
            (self.unit_dir / name).write_text(body, encoding="utf-8")
        # dbus.socket gives the manager a user bus ($XDG_RUNTIME_DIR/bus), as on a real login.
        started = " ".join(["dbus.socket", *self.start_units])
        notify = (
            f"import socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)"
            f".sendto({READY_MESSAGE!r}, {str(notify_path)!r})"
        )
        (self.unit_dir / READY_UNIT).write_text(
            f"[Unit]\nDescription=unitgate sandbox is up\nAfter={started}\n"
            f'[Service]\nType=oneshot\nExecStart={sys.executable} -c "{notify}"\n',
            encoding="utf-8",
        )
        (self.unit_dir / TARGET).write_text(
            f"[Unit]\nDescription=unitgate sandbox\nWants={started} {READY_UNIT}\n", encoding="utf-8"
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
            for pid in family | cgroup_pids(self.cgroups):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        remove_cgroups(self.cgroups)
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
