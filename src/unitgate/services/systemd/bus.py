"""systemd's D-Bus signals about the allowlisted units: when to look, never what to report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from unitgate.services.systemd.bus_sync import MANAGER_PATH, SYSTEMD, BusUnavailable, Pings, RoundTrips
from unitgate.services.systemd.units import Scope, unit_for

log = logging.getLogger(__name__)

UNIT_PATH_PREFIX = "/org/freedesktop/systemd1/unit/"
_CONNECT_TIMEOUT = 5.0
# Manager signals after which any unit may read differently: a daemon-reload, unit files changed.
_MANAGER_SIGNALS = ("Reloading", "UnitFilesChanged")


def escape_object_path_part(text: str) -> str:
    """sd_bus_path_encode(): letters and digits stay, every other byte becomes _XX (a leading
    digit too), so "nginx.service" becomes "nginx_2eservice"."""
    if not text:
        return "_"
    out = []
    for index, byte in enumerate(text.encode("utf-8")):
        char = chr(byte)
        if (char.isascii() and char.isalpha()) or (char.isdigit() and index > 0):
            out.append(char)
        else:
            out.append(f"_{byte:02x}")
    return "".join(out)


def unit_object_path(unit: str) -> str:
    return UNIT_PATH_PREFIX + escape_object_path_part(unit)


def bus_address(scope: Scope, environ: Mapping[str, str]) -> str | None:
    """Where the bus is: the user bus of `environ` for user scope; None means the system bus."""
    if scope is Scope.SYSTEM:
        return environ.get("DBUS_SYSTEM_BUS_ADDRESS") or None
    if environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return environ["DBUS_SESSION_BUS_ADDRESS"]
    runtime_dir = environ.get("XDG_RUNTIME_DIR")
    return f"unix:path={runtime_dir}/bus" if runtime_dir else None


def _properties_rule(path: str) -> str:
    return (
        f"type='signal',sender='{SYSTEMD}',interface='org.freedesktop.DBus.Properties',"
        f"member='PropertiesChanged',path='{path}'"
    )


class SystemdSignals:
    """One bus connection that tells `on_change(name)` when an allowlisted unit's properties
    change. systemd only emits these once some client has called Manager.Subscribe(), and the
    subscription dies with the connection: every `connect` subscribes anew."""

    def __init__(self, scope: Scope, address: str | None, names: Iterable[str]) -> None:
        self.scope = scope
        self.address = address
        # Object path -> the allowlisted names it answers for. systemd signals a unit on its own
        # path only: an alias (mysql.service of mariadb.service) is learnt from reads.
        self._paths: dict[str, set[str]] = {unit_object_path(unit_for(name)): {name} for name in names}
        self._bus: MessageBus | None = None
        self._pings: Pings | None = None
        self._round_trips = RoundTrips(self._ping)

    @property
    def describe(self) -> str:
        return self.address or "the system bus"

    async def connect(self, on_change: Callable[[str | None], None]) -> None:
        if self.scope is Scope.USER and self.address is None:
            raise BusUnavailable("no user bus address (XDG_RUNTIME_DIR is not set)")
        bus = MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM)
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                await bus.connect()
                rules = [_properties_rule(path) for path in self._paths]
                rules += [
                    f"type='signal',sender='{SYSTEMD}',interface='{SYSTEMD}.Manager',member='{member}'"
                    for member in _MANAGER_SIGNALS
                ]
                for rule in rules:
                    await self._add_match(bus, rule)
                bus.add_message_handler(lambda message: self._dispatch(message, on_change))
                await self._subscribe(bus)
        except (OSError, TimeoutError, DBusError, EOFError, ValueError) as error:
            _abandon(bus)
            raise BusUnavailable(f"cannot use {self.describe}: {error or type(error).__name__}") from None
        except BaseException:  # cancelled mid-way (the watcher stopped): the socket is not left open
            _abandon(bus)
            raise
        self._bus = bus
        self._pings = Pings(bus)

    async def _subscribe(self, bus: MessageBus) -> None:
        try:
            await self._call(bus, SYSTEMD, MANAGER_PATH, f"{SYSTEMD}.Manager", "Subscribe", "", [])
        except DBusError as error:
            if not error.type.endswith("AlreadySubscribed"):
                raise

    @staticmethod
    async def _call(
        bus: MessageBus,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str,
        body: list[object],
    ) -> None:
        reply = await bus.call(
            Message(
                destination=destination,
                path=path,
                interface=interface,
                member=member,
                signature=signature,
                body=body,
            )
        )
        if reply is not None and reply.message_type is MessageType.ERROR:
            raise DBusError(reply.error_name or "org.freedesktop.DBus.Error.Failed", str(reply.body))

    def _dispatch(self, message: Message, on_change: Callable[[str | None], None]) -> None:
        if message.message_type is not MessageType.SIGNAL:
            return
        if message.member == "PropertiesChanged":
            for name in self._paths.get(message.path or "", ()):
                on_change(name)
        elif message.member in _MANAGER_SIGNALS and message.path == MANAGER_PATH:
            on_change(None)

    async def follow_units(self, units: Mapping[str, str]) -> bool:
        """Listen on the path of each name's unit as systemd reported it (`Id`), where that is
        not the name's own; True when a path was added, since a change there may have gone
        unheard before."""
        added = False
        for name, unit in units.items():
            path = unit_object_path(unit)
            names = self._paths.setdefault(path, set())
            if not names:
                added = True
                if self._bus is not None:
                    with contextlib.suppress(DBusError, OSError, EOFError):  # the bus may be going
                        await self._add_match(self._bus, _properties_rule(path))
            names.add(name)
        return added

    @classmethod
    async def _add_match(cls, bus: MessageBus, rule: str) -> None:
        await cls._call(
            bus,
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            "s",
            [rule],
        )

    def begin_sync(self) -> asyncio.Future[None]:
        """A round trip to systemd that begins now (or right after the one out, shared): when it
        ends, every signal systemd sent before this call has been dispatched. Await it through
        asyncio.shield: other callers share it."""
        return self._round_trips.begin()

    def _ping(self) -> asyncio.Future[None]:
        if self._pings is None:
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(BusUnavailable("not connected"))
            return failed
        return self._pings.send()

    async def wait_closed(self) -> None:
        if self._bus is not None:
            with contextlib.suppress(Exception):
                # Shielded: cancelling this wait must not cancel the bus's own disconnect future,
                # which every other waiter (close() among them) awaits too.
                await asyncio.shield(self._bus.wait_for_disconnect())  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        self._pings = None
        if bus is not None:
            bus.disconnect()
            with contextlib.suppress(Exception):
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


def _abandon(bus: MessageBus) -> None:
    """Give up a connection however far it got. dbus_fast's disconnect only shuts the socket down
    and leaves closing it to its reader, which a connection stopped before its handshake ended
    never had: the socket is closed here then, or it would linger until collected."""
    bus.disconnect()
    sock = getattr(bus, "_sock", None)
    if not bus.connected and sock is not None:
        sock.close()
