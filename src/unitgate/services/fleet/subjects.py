"""Every NATS subject and key-value name the fleet uses, in one table: the wire itself, and the
permissions `fleet init` writes from it (so the two cannot drift apart)."""

from __future__ import annotations

import re
from dataclasses import dataclass

BUCKET = "unitgate"  # the JetStream key-value bucket of every host's latest statuses
STREAM = f"KV_{BUCKET}"  # the stream JetStream keeps the bucket in
PREFIX = "unitgate"  # every subject of ours begins here
HUB_USER = "hub"
# The `fleet` commands' own user: no instance name can begin with "_", so its inboxes are no one's.
ADMIN_USER = "_admin"

# An instance name is one subject token: no dots, no wildcards, no spaces.
INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
# What a key may hold besides the escapes: JetStream allows [-/_=.A-Za-z0-9] in keys.
_KEY_SAFE = re.compile(r"[^A-Za-z0-9_.-]")

# "ping": a starting hub's roll call, answered at once (any answer, even an older agent's
# refusal of a verb it does not know, says the agent is there).
COMMANDS = ("restart", "reload", "start", "stop", "logs", "follow", "history", "ping")


def instance_problem(name: str) -> str | None:
    """Why `name` cannot name an instance (it is a subject token and a key part), or None."""
    if not INSTANCE_NAME.match(name):
        return "must be 1 to 63 letters, digits, '-' or '_', starting with a letter or digit"
    return None


def _key_part(service: str) -> str:
    """A service name as a key token: characters keys cannot hold become =XX."""
    return _KEY_SAFE.sub(lambda m: "".join(f"={b:02X}" for b in m.group().encode()), service)


def _service_from_key(part: str) -> str:
    return re.sub(r"(?:=[0-9A-F]{2})+", lambda m: bytes.fromhex(m.group().replace("=", "")).decode(), part)


# --- keys in the bucket


def host_key(instance: str) -> str:
    """What an agent says of its host: systemd's version, its scope, its allowlist."""
    return f"{instance}.host"


def status_key(instance: str, service: str) -> str:
    """One service's latest status."""
    return f"{instance}.s.{_key_part(service)}"


@dataclass(frozen=True, slots=True)
class Key:
    """A bucket key read back: whose it is, and what it holds (`service` None for the host)."""

    instance: str
    service: str | None


def parse_key(key: str) -> Key | None:
    """The key's meaning, or None for a key none of ours would write."""
    instance, _, rest = key.partition(".")
    if instance_problem(instance) is not None:
        return None
    if rest == "host":
        return Key(instance, None)
    kind, _, part = rest.partition(".")
    if kind != "s" or not part:
        return None
    try:
        return Key(instance, _service_from_key(part))
    except (ValueError, UnicodeDecodeError):
        return None


# --- subjects


def heartbeat(instance: str) -> str:
    return f"{PREFIX}.{instance}.heartbeat"


def command(instance: str, verb: str) -> str:
    """A request to one agent: an action, a log tail, a log follow."""
    if verb not in COMMANDS:
        raise ValueError(f"no command {verb!r}")
    return f"{PREFIX}.{instance}.cmd.{verb}"


def log_stream(instance: str, stream: str) -> str:
    """Where an agent sends the lines of one follow, each batch a request the hub acknowledges."""
    return f"{PREFIX}.{instance}.logs.{stream}"


def inbox_prefix(user: str) -> str:
    """Each user's replies come to inboxes of its own: no agent can read another's answers."""
    return f"_INBOX_{user}"


def kv_subject(key: str) -> str:
    return f"$KV.{BUCKET}.{key}"


# --- who may publish and subscribe to what: the permissions nats-server enforces


@dataclass(frozen=True, slots=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def agent_permissions(instance: str) -> Permissions:
    """An agent: its own keys, its own subjects, its own commands and inboxes, and nothing of
    another host's. It answers requests through `allow_responses`."""
    return Permissions(
        publish=(
            kv_subject(f"{instance}.>"),
            f"$JS.API.STREAM.INFO.{STREAM}",
            f"{PREFIX}.{instance}.>",
        ),
        subscribe=(f"{inbox_prefix(instance)}.>", f"{PREFIX}.{instance}.cmd.>"),
    )


def hub_permissions() -> Permissions:
    """A hub: the bucket (it makes and watches it), every host's commands, heartbeats and log
    streams; it publishes no status of its own."""
    return Permissions(
        publish=("$JS.API.>", "$JS.FC.>", "$JS.ACK.>", f"{PREFIX}.*.cmd.>"),
        subscribe=(f"{inbox_prefix(HUB_USER)}.>", heartbeat("*"), f"{PREFIX}.*.logs.>"),
    )


def admin_permissions() -> Permissions:
    """The `fleet` commands, run where the fleet's directory is: the JetStream API and purge
    markers in the bucket (what `remove-host` clears a host's keys with), and nothing else."""
    return Permissions(
        publish=("$JS.API.>", "$JS.FC.>", "$JS.ACK.>", kv_subject(">")),
        subscribe=(f"{inbox_prefix(ADMIN_USER)}.>",),
    )
