"""The floor under the agent's memory row: the libraries an agent stands on, connected as the
agent connects (nats-py over TLS with its nkey and the bucket looked up, a dbus_fast connection
to the manager's bus) and nothing of unitgate. What the real agent holds beyond it is ours.

Run as `python -m bench.agent_floor SERVER SEED_FILE CA_FILE NAME` with the agent's environment;
it prints "ready" once connected and idles until killed."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys

import nats
from dbus_fast import BusType
from dbus_fast.aio import MessageBus


async def idle(server: str, seed: str, ca_file: str, name: str) -> None:
    # The inbox prefix and the bus's path are written out, not taken from unitgate
    # (subjects.inbox_prefix, bus.bus_address): importing them would load its modules here.
    tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    nc = await nats.connect(
        [server], nkeys_seed=seed, tls=tls, name=f"floor-{name}", inbox_prefix=f"_INBOX_{name}"
    )
    await nc.jetstream().key_value("unitgate")
    bus = MessageBus(bus_address=f"unix:path={os.environ['XDG_RUNTIME_DIR']}/bus", bus_type=BusType.SYSTEM)
    await bus.connect()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(idle(*sys.argv[1:5]))
