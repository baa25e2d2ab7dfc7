"""The one way unitgate starts a process: argv only, clean environment, capped output, timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from unitgate.services.errors import CommandTimeout, ServerBusy, UnitgateError

DEFAULT_OUTPUT_CAP = 1024 * 1024
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class CompletedCommand:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    truncated: bool


class CommandTimedOut(Exception):
    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.argv = tuple(argv)
        self.timeout = timeout
        super().__init__(f"{argv[0]} did not finish within {timeout:g} s")


class CommandNotStarted(Exception):
    """The executable is missing or cannot be executed."""


@contextlib.contextmanager
def service_errors(command: str, unavailable: Callable[[str], UnitgateError]) -> Iterator[None]:
    """The one translation of the runner's failures into the typed errors clients see: a
    timeout is CommandTimeout naming `command`; a program that cannot start is `unavailable`."""
    try:
        yield
    except CommandTimedOut as error:
        raise CommandTimeout(command, error.timeout) from None
    except CommandNotStarted as error:
        raise unavailable(str(error)) from None


class ProcessSlots:
    """At most `limit` children at once, shared by status reads, actions and logs; callers past
    that wait their turn in order (FIFO), and past `queue_limit` waiting are refused (ServerBusy),
    so a flood of requests can neither fork the machine nor queue without end."""

    def __init__(self, limit: int = 8, queue_limit: int = 64) -> None:
        self.limit = limit
        self.queue_limit = queue_limit
        self._free = asyncio.Semaphore(limit)
        self.waiting = 0
        self.running = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._free.locked() and self.waiting >= self.queue_limit:
            raise ServerBusy(retry_after_seconds=1)
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._free.release()


class ProcessRunner:
    """Starts child processes for the services layer and counts them.

    Every child gets its own session, so a timeout can kill the whole group (sudo and the
    systemctl below it) and is always reaped: no zombie and no orphan outlives a call.
    """

    def __init__(
        self, env: Mapping[str, str], output_cap: int = DEFAULT_OUTPUT_CAP, slots: ProcessSlots | None = None
    ) -> None:
        self._env = dict(env)
        self._output_cap = output_cap
        self.slots = slots or ProcessSlots()
        self.spawned = 0
        self.seconds = 0.0  # spent in `run` children, for /metrics

    async def _spawn(self, argv: Sequence[str], stderr: int, limit: int) -> asyncio.subprocess.Process:
        if not isinstance(argv, list | tuple) or not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError("argv must be a non-empty list of strings")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=self._env,
                start_new_session=True,
                limit=limit,
            )
        except OSError as error:
            raise CommandNotStarted(f"cannot run {argv[0]}: {error.strerror or error}") from error
        self.spawned += 1
        return process

    async def run(self, argv: Sequence[str], *, timeout: float) -> CompletedCommand:
        """Run to completion under one of the shared slots (ServerBusy when none can be had).
        `timeout` covers the wait for a slot too: behind children that hang (a frozen manager),
        a caller times out when its own time is up, not its own time after theirs."""
        deadline = time.monotonic() + timeout
        async with contextlib.AsyncExitStack() as held:
            try:
                async with asyncio.timeout(timeout):
                    await held.enter_async_context(self.slots.slot())
            except TimeoutError:
                raise CommandTimedOut(argv, timeout) from None
            started = time.monotonic()
            if started >= deadline:
                raise CommandTimedOut(argv, timeout)
            try:
                return await self._run(argv, deadline - started, timeout)
            finally:
                self.seconds += time.monotonic() - started

    async def _run(self, argv: Sequence[str], remaining: float, timeout: float) -> CompletedCommand:
        process = await self._spawn(argv, asyncio.subprocess.PIPE, _READ_CHUNK)
        try:
            assert process.stdout is not None
            assert process.stderr is not None
            async with asyncio.timeout(remaining):
                (stdout, out_cut), (stderr, err_cut) = await asyncio.gather(
                    _read_capped(process.stdout, self._output_cap),
                    _read_capped(process.stderr, self._output_cap),
                )
                returncode = await process.wait()
        except TimeoutError:
            raise CommandTimedOut(argv, timeout) from None
        finally:
            if process.returncode is None:
                await _kill_and_reap(process)
        return CompletedCommand(tuple(argv), returncode, stdout, stderr, out_cut or err_cut)

    async def spawn_stream(self, argv: Sequence[str], line_limit: int) -> asyncio.subprocess.Process:
        """Start a long-running child whose stdout the caller reads line by line (up to
        `line_limit` bytes a line); the caller ends it with `terminate`. Not under a slot: these are
        the shared `journalctl -f` followers, at most one per allowlisted unit."""
        return await self._spawn(argv, asyncio.subprocess.DEVNULL, line_limit)

    @staticmethod
    async def terminate(process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            await _kill_and_reap(process)


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    """Read to EOF but keep at most `cap` bytes, so a chatty child can neither block nor bloat us."""
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(_READ_CHUNK):
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
        if len(chunk) > room:
            truncated = True
    return bytes(kept), truncated


async def _kill_and_reap(process: asyncio.subprocess.Process) -> None:
    # Shielded so that a cancelled caller still waits for the reap instead of leaving a zombie.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await asyncio.shield(process.wait())
