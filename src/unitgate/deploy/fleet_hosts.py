"""`fleet add-host`, `remove-host` and `rotate`: the plan changed, every node's config rendered
from it again and tested, the nodes running here reloaded, and then the change proven on every
server (the old key refused, the new one let in) and a removed host's keys purged from the bucket.
No other agent or hub is touched: a reload keeps every connection whose key is still allowed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitgate.deploy import nats_reload as reload
from unitgate.services.fleet import plan as plans
from unitgate.services.fleet import subjects
from unitgate.services.fleet.credentials import NKey, agent_config, new_nkey, server_files
from unitgate.services.fleet.plan import FleetPlan, PlanError, write_private
from unitgate.services.fleet.tls import dial_once, with_tls

CONFIRM_TIMEOUT = 10.0  # seconds every server has to show a reload took
_RETRY = 0.05
_UNSHOWN = {  # (what a server last answered, what it should): what is said of it
    (None, True): "did not answer",
    (None, False): "did not answer",
    (True, False): "still lets the old key in",
    (False, True): "does not let the new key in",
}


@dataclass(frozen=True, slots=True)
class Applied:
    plan: FleetPlan
    lines: tuple[str, ...]
    everywhere: bool  # every node runs here and was reloaded: the change can be proven now


def _apply(after: FleetPlan, host_files: dict[Path, str], removed: tuple[Path, ...] = ()) -> Applied:
    """Test every node's new config, then write (host files, the plan, the configs, in that
    order: the plan is what the next command renders from), then reload what runs here."""
    configs = server_files(after)
    running = {
        node: reload.running_node(after.pid_path(node), after.config_path(node)) for node in after.nodes
    }
    binary = reload.nats_server_binary(next((r for r in running.values() if r is not None), None))
    lines: list[str] = []
    if binary is None:
        lines.append("no nats-server binary here: the new configs were not tested before use")
    else:
        for text in configs.values():
            reload.test_config(binary, text, after.directory)
    for path, text in host_files.items():
        write_private(path, text)
    write_private(after.directory / plans.PLAN_FILE, after.to_json())
    for path, text in configs.items():
        write_private(path, text)
    for path in removed:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for node, process in running.items():
        config = after.config_path(node)
        if process is None:
            lines.append(
                f"{config}: no nats-server runs it here; copy it to its node and run "
                "`nats-server --signal reload` there"
            )
        else:
            reload.reload(process)
            lines.append(f"{config}: nats-server (pid {process.pid}) reloaded it")
    everywhere = all(process is not None for process in running.values())
    return Applied(after, tuple(lines), everywhere)


def add_host(directory: Path, name: str) -> tuple[Applied, NKey]:
    plan = plans.load(directory)
    plans.check_instance(name)
    if name in plan.instances:
        raise PlanError(f"{name} is already a host of this fleet (`fleet rotate {name}` gives it a new key)")
    seed_file, config = plan.directory / f"{name}.nk", plan.directory / f"{name}.toml"
    existing = [str(path) for path in (seed_file, config) if path.exists()]
    if existing:
        raise PlanError(f"refusing to overwrite {', '.join(existing)}")
    key = new_nkey()
    after = plan.with_instances({**plan.instances, name: key.public})
    return _apply(after, {seed_file: key.seed + "\n", config: agent_config(after, name)}), key


def _known(plan: FleetPlan, name: str) -> str:
    if name not in plan.instances:
        known = ", ".join(plan.instances) or "none"
        raise PlanError(f"{name} is not a host of this fleet (its hosts: {known})")
    return plan.instances[name]


def remove_host(directory: Path, name: str) -> tuple[Applied, str]:
    """The host's key leaves every node's config, its files leave the directory; the old seed is
    returned (read before it goes) so its refusal can be proven."""
    plan = plans.load(directory)
    _known(plan, name)
    seed = _read_seed(plan.directory / f"{name}.nk")
    after = plan.with_instances({n: k for n, k in plan.instances.items() if n != name})
    removed = (plan.directory / f"{name}.nk", plan.directory / f"{name}.toml")
    return _apply(after, {}, removed), seed


def rotate(directory: Path, name: str) -> tuple[Applied, str, NKey]:
    """A new key for the host; the old one is refused once the nodes reload."""
    plan = plans.load(directory)
    _known(plan, name)
    old = _read_seed(plan.directory / f"{name}.nk")
    key = new_nkey()
    after = plan.with_instances({**plan.instances, name: key.public})
    return _apply(after, {plan.directory / f"{name}.nk": key.seed + "\n"}), old, key


def _read_seed(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return ""  # gone already: the refusal is then proven by the config alone


# --- proving it on the servers, and what the hubs should forget

Connect = Callable[..., Awaitable[Any]]


async def _try(connect: Connect, plan: FleetPlan, url: str, seed: str) -> bool | None:
    """True: this key is let in; False: refused as unauthorized; None: the server did not answer."""
    try:
        nc = await dial_once(
            with_tls(connect, plan.tls.ca if plan.tls else None), [url], 2.0, nkeys_seed_str=seed
        )
    except Exception as error:
        return False if "authorization violation" in str(error).lower() else None
    await nc.close()
    return True


async def confirm(connect: Connect, plan: FleetPlan, refused: str = "", admitted: str = "") -> list[str]:
    """Each server, asked until it shows the reload took: `refused` (a seed) no longer gets in,
    `admitted` does. What a server never shows in CONFIRM_TIMEOUT is said, not hidden."""
    loop = asyncio.get_running_loop()
    problems = []
    for url in plan.servers:
        deadline = loop.time() + CONFIRM_TIMEOUT
        for seed, wanted in ((refused, False), (admitted, True)):
            if not seed:
                continue
            while (answer := await _try(connect, plan, url, seed)) is not wanted:
                if loop.time() > deadline:
                    problems.append(f"{url} {_UNSHOWN[answer, wanted]}")
                    break
                await asyncio.sleep(_RETRY)
    return problems


async def purge_host(connect: Connect, plan: FleetPlan, name: str) -> int:
    """Every key of `name` purged from the bucket, as the fleet's admin user (a hub may write no
    key): each hub's watch sees the purges and forgets the host. How many keys there were."""
    from nats.js.errors import BucketNotFoundError

    nc = await dial_once(
        with_tls(connect, plan.tls.ca if plan.tls else None),
        list(plan.servers),
        5.0,
        nkeys_seed=str(plan.directory / "admin.nk"),
        inbox_prefix=subjects.inbox_prefix(subjects.ADMIN_USER),
    )
    try:
        try:
            kv = await nc.jetstream().key_value(subjects.BUCKET)
        except BucketNotFoundError:
            return 0
        # The server picks the host's keys by subject (kv.keys' filters match substrings, so
        # "web2.>" would find nothing and "web2" would find web20's keys too).
        watcher = await kv.watch(f"{name}.>", ignore_deletes=True, meta_only=True)
        keys = []
        try:
            async for entry in watcher:
                if entry is None:  # the end of the current values
                    break
                keys.append(entry.key)
        finally:
            await watcher.stop()
        for key in keys:
            await kv.purge(key)
        return len(keys)
    finally:
        await nc.close()
