"""A unit's journal through the one process runner: recent lines, and lines as they are written."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from unitgate.services.allowlist import Allowlist, unit_for
from unitgate.services.errors import InvalidCursor, JournalUnavailable, SystemctlTimeout
from unitgate.services.runner import CommandNotStarted, CommandTimedOut, CompletedCommand, ProcessRunner
from unitgate.services.systemctl import Scope

MAX_LINES = 500
_ERROR_CAP = 2000
# What journald's cursors are made of ("s=…;i=…;b=…;m=…;t=…;x=…"); anything else never reaches
# journalctl's command line.
_CURSOR = re.compile(r"[A-Za-z0-9=;_-]{1,512}")


@dataclass(frozen=True, slots=True)
class LogEntry:
    time: datetime
    priority: int | None
    pid: int | None
    message: str
    cursor: str


@dataclass(frozen=True, slots=True)
class JournalOptions:
    scope: Scope = Scope.SYSTEM
    journalctl_path: str = "/usr/bin/journalctl"
    directory: str | None = None  # --directory, for a journal elsewhere (tests, containers)
    root: str | None = None  # --root
    timeout: float = 5.0


def parse_entry(line: bytes | str) -> LogEntry | None:
    """One line of `journalctl -o json` as a LogEntry, or None for anything that is not one.

    MESSAGE is a string, or with -a a list of byte values when it is not valid UTF-8 (decoded
    here with replacement), or null for a binary field journalctl chose not to print.
    """
    try:
        fields = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(fields, dict):
        return None
    cursor = fields.get("__CURSOR")
    realtime = _int(fields.get("__REALTIME_TIMESTAMP"))
    if not isinstance(cursor, str) or realtime is None:
        return None
    return LogEntry(
        time=datetime.fromtimestamp(realtime / 1_000_000, UTC),
        priority=_int(fields.get("PRIORITY")),
        pid=_int(fields.get("_PID")),
        message=_message(fields.get("MESSAGE")),
        cursor=cursor,
    )


def _message(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in value):
        return bytes(value).decode("utf-8", "replace")
    return ""


def _int(value: object) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def check_cursor(cursor: str) -> str:
    if not _CURSOR.fullmatch(cursor):
        raise InvalidCursor()
    return cursor


class Journal:
    def __init__(self, allowlist: Allowlist, runner: ProcessRunner, options: JournalOptions) -> None:
        self.allowlist = allowlist
        self.options = options
        self._runner = runner

    def argv(self, name: str, *extra: str) -> list[str]:
        """journalctl for one allowlisted unit; the name is checked before anything else."""
        unit = unit_for(self.allowlist.require(name))
        argv = [self.options.journalctl_path]
        if self.options.directory:
            argv.append(f"--directory={self.options.directory}")
        if self.options.root:
            argv.append(f"--root={self.options.root}")
        # `journalctl --user -u` finds nothing for root; --user-unit matches the user manager's
        # units in whatever journal holds them. -a: without it, fields over 4 kB come out null.
        argv += ["--user-unit" if self.options.scope is Scope.USER else "-u", unit]
        return [*argv, "-o", "json", "-a", "--no-pager", "-q", *extra]

    async def recent(self, name: str, lines: int) -> list[LogEntry]:
        """The last `lines` entries (at most MAX_LINES), oldest first."""
        lines = max(0, min(lines, MAX_LINES))
        if lines == 0:
            self.allowlist.require(name)
            return []
        result = await self._run(self.argv(name, "-n", str(lines)))
        return entries(result.stdout.splitlines())

    async def since(self, name: str, after_cursor: str) -> tuple[list[LogEntry], bool]:
        """Every entry after `after_cursor`, oldest first, as far as the output cap allows; the
        flag says whether that was all of them (if not, resume from the last one)."""
        result = await self._run(self.argv(name, f"--after-cursor={check_cursor(after_cursor)}"))
        lines = result.stdout.splitlines()
        if result.truncated and lines:
            lines = lines[:-1]  # the last line was cut by the cap
        return entries(lines), not result.truncated

    async def spawn_follower(self, name: str, *extra: str, line_limit: int) -> asyncio.subprocess.Process:
        """A long-running `journalctl ... -f` for one unit; end it with `terminate`."""
        try:
            return await self._runner.spawn_stream(self.argv(name, "-f", *extra), line_limit)
        except CommandNotStarted as error:
            raise JournalUnavailable(str(error)) from None

    async def terminate(self, process: asyncio.subprocess.Process) -> None:
        await self._runner.terminate(process)

    async def _run(self, argv: list[str]) -> CompletedCommand:
        try:
            result = await self._runner.run(argv, timeout=self.options.timeout)
        except CommandTimedOut:
            raise SystemctlTimeout("journalctl", self.options.timeout) from None
        except CommandNotStarted as error:
            raise JournalUnavailable(str(error)) from None
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace").strip()[:_ERROR_CAP]
            if any(arg.startswith("--after-cursor=") for arg in argv) and "cursor" in detail.lower():
                raise InvalidCursor()
            raise JournalUnavailable(detail or f"journalctl exited {result.returncode}")
        return result


def entries(lines: Sequence[bytes]) -> list[LogEntry]:
    parsed = (parse_entry(line) for line in lines if line.strip())
    return [entry for entry in parsed if entry is not None]
