"""The status watcher's logic through its seams: a fake read and a fake signal source, no systemd."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Callable, Mapping

import pytest

from unitgate.services.errors import ServiceNotFound, SystemdUnavailable, UnitgateError
from unitgate.services.live.snapshot import Mode, StatusEvent, WatcherTimings
from unitgate.services.live.status_diff import worth_sending
from unitgate.services.live.status_stream import status_changes
from unitgate.services.live.watcher import StatusWatcher
from unitgate.services.systemd.status import UnitStatus

pytestmark = pytest.mark.timeout(10)
HOUR = 3600.0


def unit(
    name: str, pid: int | None = 10, state: str = "active", memory: int | None = 1000, unit_id: str = ""
) -> UnitStatus:
    return UnitStatus(
        name=name,
        unit_id=unit_id or f"{name}.service",
        description=name,
        load_state="not-found" if state == "absent" else "loaded",
        active_state="inactive" if state == "absent" else state,
        sub_state="running",
        main_pid=pid,
        memory_bytes=memory,
        active_since=None,
        restart_count=0,
        unit_file_state=None,
        can_reload=False,
    )


class FakeSystemd:
    """What a read returns now; counts reads, and can fail the next one."""

    def __init__(self, *units: UnitStatus) -> None:
        self.units = {status.name: status for status in units}
        self.reads = 0
        self.fail_next: UnitgateError | None = None

    def set(self, status: UnitStatus) -> None:
        self.units[status.name] = status

    async def read_all(self) -> list[UnitStatus]:
        self.reads += 1
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return [self.units[name] for name in sorted(self.units)]


class FakeSignals:
    """A signal source the test drives: `emit(name)`, `drop()` the connection, or refuse to connect."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.on_change: Callable[[str | None], None] | None = None
        self.closed = asyncio.Event()
        self.connects = 0
        self.syncs = 0
        self.followed: set[str] = set()  # the units of aliases, learnt from reads
        self.in_flight: list[str | None] = []  # sent by the manager, not yet dispatched here

    @property
    def describe(self) -> str:
        return "a fake bus"

    async def connect(self, on_change: Callable[[str | None], None]) -> None:
        if self.refuse:
            raise ConnectionRefusedError("no bus here")
        self.connects += 1
        self.closed = asyncio.Event()
        self.on_change = on_change

    def begin_sync(self) -> asyncio.Future[None]:
        self.syncs += 1
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.closed.is_set():
            answer.set_exception(ConnectionResetError("the bus is gone"))
            return answer

        def answered() -> None:
            for name in self.in_flight:  # what the manager sent before the round trip's answer
                self.emit(name)
            self.in_flight.clear()
            answer.set_result(None)

        asyncio.get_running_loop().call_soon(answered)
        return answer

    async def follow_units(self, units: Mapping[str, str]) -> bool:
        aliased = {unit for name, unit in units.items() if unit != f"{name}.service"}
        new = aliased - self.followed
        self.followed |= new
        return bool(new)

    async def wait_closed(self) -> None:
        await self.closed.wait()

    async def close(self) -> None:
        self.closed.set()

    def emit(self, name: str | None) -> None:
        assert self.on_change is not None
        self.on_change(name)


def watcher(
    systemd: FakeSystemd,
    signals: FakeSignals | None,
    accept: Callable[[str], bool] = lambda name: True,
    idle_after: float = HOUR,
) -> StatusWatcher:
    timings = WatcherTimings(
        poll_interval=HOUR, memory_interval=HOUR, coalesce=0, reconnect_interval=HOUR, idle_after=idle_after
    )
    return StatusWatcher(systemd.read_all, timings, signals, accept_signal=accept)


def mode(w: StatusWatcher) -> Mode:
    """Read afresh each time: the watcher moves between modes while a test awaits."""
    return w.mode


async def take(events: AsyncGenerator[StatusEvent, None], count: int) -> list[StatusEvent]:
    return [await anext(events) for _ in range(count)]


async def test_snapshot_then_only_what_changed() -> None:
    systemd = FakeSystemd(unit("a"), unit("b"), unit("c", state="absent"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    events = status_changes(w, None)
    assert await take(events, 2) == [unit("a"), unit("b")]  # installed ones only
    assert w.mode is Mode.EVENTS
    systemd.set(unit("b", pid=11))
    signals.emit("b")
    assert await anext(events) == unit("b", pid=11)
    # Memory alone is no event until a memory refresh.
    systemd.set(unit("a", memory=2000))
    systemd.set(unit("b", pid=12))
    signals.emit("b")
    assert await anext(events) == unit("b", pid=12)
    await events.aclose()
    assert mode(w) is Mode.IDLE
    assert not w.running


async def test_a_unit_installed_later_is_followed_when_following_all() -> None:
    systemd = FakeSystemd(unit("a"), unit("b", state="absent"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    everything, only_a = status_changes(w, None), status_changes(w, ["a"])
    assert await anext(everything) == unit("a")
    assert await anext(only_a) == unit("a")
    systemd.set(unit("b"))
    signals.emit("b")
    assert await anext(everything) == unit("b")
    systemd.set(unit("a", pid=99))
    signals.emit("a")
    assert await anext(only_a) == unit("a", pid=99)  # b's arrival was not news to it
    await everything.aclose()
    await only_a.aclose()


async def test_a_name_that_is_not_installed_ends_the_stream_before_any_status() -> None:
    w = watcher(FakeSystemd(unit("a"), unit("b", state="absent")), FakeSignals())
    events = [event async for event in status_changes(w, ["a", "b"])]
    assert len(events) == 1
    assert isinstance(events[0], ServiceNotFound)
    assert events[0].name == "b"
    assert not w.running


async def test_a_failed_read_is_an_event_and_the_stream_goes_on() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    events = status_changes(w, ["a"])
    assert await anext(events) == unit("a")
    systemd.fail_next = SystemdUnavailable("the manager went away")
    signals.emit("a")
    failure = await anext(events)
    assert isinstance(failure, SystemdUnavailable)
    systemd.set(unit("a", pid=2))
    signals.emit("a")
    assert await anext(events) == unit("a", pid=2)
    await events.aclose()


async def test_signals_the_gate_refuses_cause_no_read() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals, accept=lambda name: name != "a")
    events = status_changes(w, ["a"])
    await anext(events)
    reads = systemd.reads
    signals.emit("a")
    await asyncio.sleep(0)
    assert systemd.reads == reads
    w.refresh()  # what an action through the API does instead
    systemd.set(unit("a", pid=3))
    assert await anext(events) == unit("a", pid=3)
    await events.aclose()


async def test_one_read_serves_every_subscriber() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    streams = [status_changes(w, ["a"]) for _ in range(50)]
    for stream in streams:
        assert await anext(stream) == unit("a")
    reads = systemd.reads
    systemd.set(unit("a", pid=4))
    signals.emit("a")
    for stream in streams:
        assert await anext(stream) == unit("a", pid=4)
    assert systemd.reads == reads + 1
    for stream in streams:
        await stream.aclose()
    assert w.watchers == 0
    assert not w.running


async def test_no_bus_means_polling_with_the_reason() -> None:
    w = watcher(FakeSystemd(unit("a")), FakeSignals(refuse=True))
    events = status_changes(w, ["a"])
    await anext(events)
    assert w.mode is Mode.POLLING
    assert "no bus here" in w.mode_detail
    await events.aclose()


async def test_a_dropped_bus_falls_back_to_polling() -> None:
    signals = FakeSignals()
    w = watcher(FakeSystemd(unit("a")), signals)
    events = status_changes(w, ["a"])
    await anext(events)
    assert w.mode is Mode.EVENTS
    signals.closed.set()
    while mode(w) is not Mode.POLLING:  # the watcher's own task notices on its next turn
        await asyncio.sleep(0)
    assert "closed" in w.mode_detail
    await events.aclose()


def test_memory_only_change_is_sent_on_a_memory_refresh() -> None:
    # The pure decision, spelled out: state changes always, memory only when refreshed.
    before = unit("a")
    assert not worth_sending(before, dataclasses.replace(before, memory_bytes=5), False, memory=False)
    assert worth_sending(before, dataclasses.replace(before, memory_bytes=5), False, memory=True)
    assert worth_sending(before, dataclasses.replace(before, main_pid=5), False, memory=False)
    assert not worth_sending(None, before, follow_new=False, memory=False)
    assert worth_sending(None, before, follow_new=True, memory=False)


async def test_an_alias_is_followed_once_under_the_units_own_name() -> None:
    mariadb = unit("mariadb")
    mysql = unit("mysql", unit_id="mariadb.service")
    systemd = FakeSystemd(mariadb, mysql, unit("nginx"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    events = status_changes(w, None)
    assert await take(events, 2) == [mariadb, unit("nginx")]
    systemd.set(dataclasses.replace(mariadb, main_pid=77))
    systemd.set(dataclasses.replace(mysql, main_pid=77))
    signals.emit("mariadb")
    assert await anext(events) == dataclasses.replace(mariadb, main_pid=77)  # and not mysql too
    await events.aclose()


# Status queries from the snapshot: `fresh` answers without a read while the bus vouches for it.


async def test_queries_share_the_first_read_then_cost_none() -> None:
    systemd = FakeSystemd(unit("a"), unit("b"))
    w = watcher(systemd, FakeSignals())
    answers = await asyncio.gather(*(w.fresh(max_age=HOUR) for _ in range(20)))
    assert all(answer == {"a": unit("a"), "b": unit("b")} for answer in answers)
    for _ in range(1000):
        assert await w.fresh(max_age=HOUR) == {"a": unit("a"), "b": unit("b")}
    assert systemd.reads == 1
    assert w.running
    assert w.watchers == 0
    await w.stop()


async def test_a_signal_sent_before_the_query_is_never_missed() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    await w.fresh(max_age=HOUR)
    for pid in range(100, 150):
        # The manager has sent the change, and it is still on its way when the query arrives.
        systemd.set(unit("a", pid=pid))
        signals.in_flight.append("a")
        answer = await w.fresh(max_age=HOUR)
        assert answer is not None
        assert answer["a"].main_pid == pid
    assert systemd.reads == 51
    await w.stop()


async def test_a_signal_the_gate_drops_still_makes_the_snapshot_stale() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals, accept=lambda name: False)  # an action of ours is in flight
    await w.fresh(max_age=HOUR)
    systemd.set(unit("a", state="activating", pid=None))
    signals.in_flight.append("a")
    answer = await w.fresh(max_age=HOUR)
    assert answer is not None
    assert answer["a"] == unit("a", state="activating", pid=None)
    await w.stop()


async def test_a_daemon_reload_makes_every_unit_stale() -> None:
    systemd = FakeSystemd(unit("a"), unit("b", state="absent"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    await w.fresh(max_age=HOUR)
    systemd.set(unit("b"))  # a package installed b's unit file
    signals.in_flight.append(None)
    answer = await w.fresh(max_age=HOUR)
    assert answer is not None
    assert answer["b"].installed
    await w.stop()


async def test_memory_is_never_older_than_its_max_age() -> None:
    systemd = FakeSystemd(unit("a"))
    w = watcher(systemd, FakeSignals())
    await w.fresh(max_age=HOUR)
    systemd.set(unit("a", memory=5))  # memory has no signal
    assert (await w.fresh(max_age=HOUR)) == {"a": unit("a")}
    answer = await w.fresh(max_age=0.0)
    assert answer == {"a": unit("a", memory=5)}
    assert systemd.reads == 2
    await w.stop()


async def test_queries_answer_after_a_read_that_began_after_them() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    await w.fresh(max_age=HOUR)
    systemd.set(unit("a", pid=7))
    signals.in_flight.append("a")
    answers = await asyncio.gather(*(w.fresh(max_age=HOUR) for _ in range(50)))
    assert all(answer == {"a": unit("a", pid=7)} for answer in answers)
    assert systemd.reads == 2  # one read for all fifty
    await w.stop()


async def test_a_lost_bus_sends_queries_to_the_wrapper_at_once() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    assert await w.fresh(max_age=HOUR) is not None
    signals.closed.set()  # before the watcher's own task has noticed
    assert await w.fresh(max_age=HOUR) is None
    await w.stop()


async def test_no_bus_means_every_query_reads_itself_and_nothing_polls() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals(refuse=True)
    w = watcher(systemd, signals)
    assert await w.fresh(max_age=HOUR) is None
    while w.running:  # a polling watcher is no use to queries: it stops
        await asyncio.sleep(0)
    reads = systemd.reads
    for _ in range(10):
        assert await w.fresh(max_age=HOUR) is None  # and is not retried before reconnect_interval
    assert systemd.reads == reads
    assert not w.running
    assert await watcher(systemd, None).fresh(max_age=HOUR) is None  # dbus_events = false


async def test_the_watcher_goes_idle_after_the_last_query() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals, idle_after=0.05)
    await w.fresh(max_age=HOUR)
    events = status_changes(w, ["a"])
    assert await anext(events) == unit("a")
    await events.aclose()
    assert w.running  # the query's lease outlives the subscriber
    while w.running:
        await asyncio.sleep(0.01)
    assert w.mode is Mode.IDLE
    assert signals.closed.is_set()
    reads = systemd.reads
    await asyncio.sleep(0.1)
    assert systemd.reads == reads


async def test_a_request_uses_the_round_trip_begun_when_it_arrived() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    await w.fresh(max_age=HOUR)  # connects

    async def request(pid: int) -> Mapping[str, UnitStatus] | None:
        systemd.set(unit("a", pid=pid))
        signals.in_flight.append("a")  # sent by systemd before the request arrived
        w.arrived()  # as the auth gate does, in the request's own context
        return await w.fresh(max_age=HOUR)

    for pid in (5, 6, 7):
        syncs = signals.syncs
        answer = await asyncio.create_task(request(pid))
        assert answer is not None
        assert answer["a"] == unit("a", pid=pid)
        assert signals.syncs == syncs + 1  # one round trip, the one begun on arrival
    await w.stop()


async def test_a_look_without_a_read_never_starts_or_reads() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    assert await w.fresh(max_age=HOUR, read=False) is None
    assert not w.running
    assert systemd.reads == 0
    await w.fresh(max_age=HOUR)  # a real query starts it
    assert await w.fresh(max_age=HOUR, read=False) == {"a": unit("a")}
    signals.in_flight.append("a")
    assert await w.fresh(max_age=HOUR, read=False) is None  # stale: that would take a read
    assert await w.fresh(max_age=0.0, read=False) is None  # too old, likewise
    assert systemd.reads == 1
    await w.stop()


async def test_a_subscriber_joining_after_unheeded_signals_starts_from_a_new_read() -> None:
    systemd = FakeSystemd(unit("a"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    await w.fresh(max_age=HOUR)  # running for queries, nobody subscribed
    systemd.set(unit("a", state="activating", pid=None))
    signals.emit("a")  # heard, not read: no subscriber, and no query since
    assert systemd.reads == 1
    events = status_changes(w, ["a"])
    assert await anext(events) == unit("a", state="activating", pid=None)
    assert systemd.reads == 2
    await events.aclose()
    await w.stop()


async def test_an_alias_learnt_from_a_read_is_listened_to_and_read_again() -> None:
    systemd = FakeSystemd(unit("mysql", unit_id="mariadb.service"))
    signals = FakeSignals()
    w = watcher(systemd, signals)
    assert await w.fresh(max_age=HOUR) == {"mysql": unit("mysql", unit_id="mariadb.service")}
    assert signals.followed == {"mariadb.service"}
    # Whatever changed before the match was in place went unheard: that read is not trusted.
    assert systemd.reads == 2
    await w.fresh(max_age=HOUR)
    assert systemd.reads == 2
    await w.stop()


class SlowToClose(FakeSignals):
    """Takes a few turns of the loop to close, and refuses to connect while it does."""

    closing = False

    async def close(self) -> None:
        self.closing = True
        for _ in range(5):
            await asyncio.sleep(0)
        self.closing = False
        await super().close()

    async def connect(self, on_change: Callable[[str | None], None]) -> None:
        if self.closing:
            raise ConnectionError("connected while the last connection was still closing")
        await super().connect(on_change)


async def test_a_new_run_waits_for_the_stopped_one_to_let_go_of_the_bus() -> None:
    signals = SlowToClose()
    w = watcher(FakeSystemd(unit("a")), signals)
    events = status_changes(w, ["a"])
    await anext(events)
    leaving = asyncio.ensure_future(events.aclose())  # the last subscriber: the watcher stops
    await asyncio.sleep(0)
    again = status_changes(w, ["a"])
    assert await anext(again) == unit("a")
    await leaving
    assert mode(w) is Mode.EVENTS  # not polling because of a refused connection
    assert signals.connects == 2
    await again.aclose()
