"""A unit's journal through the one process runner: recent lines, and lines as they are written."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from unitgate.services.errors import InvalidCursor, JournalUnavailable
from unitgate.services.systemd.allowlist import Allowlist
from unitgate.services.systemd.history import HistoryEvent, journal_start, match_arguments, parse_events
from unitgate.services.systemd.logs import MAX_LINES, LogEntry, check_cursor, entries
from unitgate.services.systemd.runner import CompletedCommand, ProcessRunner, service_errors
from unitgate.services.systemd.units import Scope, unit_for

_ERROR_CAP = 2000
_COMMAND = "journalctl"


@dataclass(frozen=True, slots=True)
class JournalOptions:
    scope: Scope = Scope.SYSTEM
    journalctl_path: str = "/usr/bin/journalctl"
    directory: str | None = None  # --directory, for a journal elsewhere (tests, containers)
    root: str | None = None  # --root
    timeout: float = 5.0


class Journal:
    def __init__(self, allowlist: Allowlist, runner: ProcessRunner, options: JournalOptions) -> None:
        self.allowlist = allowlist
        self.options = options
        self._runner = runner

    def _journalctl(self) -> list[str]:
        argv = [self.options.journalctl_path]
        if self.options.directory:
            argv.append(f"--directory={self.options.directory}")
        if self.options.root:
            argv.append(f"--root={self.options.root}")
        return argv

    def argv(self, name: str, *extra: str) -> list[str]:
        """journalctl for one allowlisted unit; the name is checked before anything else."""
        unit = unit_for(self.allowlist.require(name))
        argv = self._journalctl()
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

    async def history(self, name: str, unit: str, since: datetime | None, limit: int) -> list[HistoryEvent]:
        """The manager's messages about `unit` (the one allowlisted `name` resolves to), newest
        first, at most `limit` (and MAX_LINES), from `since`."""
        self.allowlist.require(name)
        limit = max(0, min(limit, MAX_LINES))
        if limit == 0:
            return []
        since_argument = [f"--since=@{since.timestamp():.6f}"] if since is not None else []
        argv = [
            *self._journalctl(),
            "-o", "json", "--no-pager", "-q", "--reverse", "-n", str(limit), *since_argument,
            *match_arguments(unit, self.options.scope),
        ]  # fmt: skip
        result = await self._run(argv)
        return parse_events(result.stdout.decode("utf-8", "replace").splitlines(), unit, self.options.scope)

    async def start(self) -> datetime | None:
        """The oldest entry the journal still holds (None when it cannot tell)."""
        result = await self._run([*self._journalctl(), "--header", "--no-pager"])
        return journal_start(result.stdout.decode("utf-8", "replace"))

    async def spawn_follower(self, name: str, *extra: str, line_limit: int) -> asyncio.subprocess.Process:
        """A long-running `journalctl ... -f` for one unit; end it with `terminate`."""
        with service_errors(_COMMAND, JournalUnavailable):
            return await self._runner.spawn_stream(self.argv(name, "-f", *extra), line_limit)

    async def terminate(self, process: asyncio.subprocess.Process) -> None:
        await self._runner.terminate(process)

    async def _run(self, argv: list[str]) -> CompletedCommand:
        with service_errors(_COMMAND, JournalUnavailable):
            result = await self._runner.run(argv, timeout=self.options.timeout)
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace").strip()[:_ERROR_CAP]
            if any(arg.startswith("--after-cursor=") for arg in argv) and "cursor" in detail.lower():
                raise InvalidCursor()
            raise JournalUnavailable(detail or f"journalctl exited {result.returncode}")
        return result
