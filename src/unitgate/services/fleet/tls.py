"""How an agent or a hub trusts its NATS servers: the fleet's CA alone, names checked."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def client_context(ca_file: str | None) -> ssl.SSLContext | None:
    """A context that trusts `ca_file` and nothing else (not the system's store: a certificate
    any public CA made for the name is not the fleet's server), with the host name checked.
    None leaves nats-py to its default, the system's store, for tls:// URLs only."""
    if ca_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _not_the_eof_remark(record: logging.LogRecord) -> bool:
    return record.msg != _EOF_REMARK


# nats-py upgrades a plain stream with start_tls, so asyncio's stream protocol keeps answering
# eof_received as for plain TCP, and asyncio says so at every close of a TLS connection: a line
# no operator can act on, dropped here and nowhere else.
_EOF_REMARK = "returning true from eof_received() has no effect when using ssl"


def with_tls(connect: Callable[..., Awaitable[T]], ca_file: str | None) -> Callable[..., Awaitable[T]]:
    """`connect` (nats.connect) that dials with the fleet's CA: the one place agents, hubs and
    the fleet commands get their TLS from."""
    asyncio_log = logging.getLogger("asyncio")
    if _not_the_eof_remark not in asyncio_log.filters:
        asyncio_log.addFilter(_not_the_eof_remark)
    context = client_context(ca_file)
    return connect if context is None else functools.partial(connect, tls=context)


async def dial_once(
    connect: Callable[..., Awaitable[T]], servers: list[str], timeout: float, **options: Any
) -> T:
    """One connection that gives up: each server tried once, the whole within `timeout`.
    (nats-py takes max_reconnect_attempts=0 for "for ever", even on a first connect.)"""

    async def quiet(error: Exception) -> None:
        return None

    options.setdefault("error_cb", quiet)
    attempt = connect(
        servers, allow_reconnect=False, max_reconnect_attempts=1, connect_timeout=timeout, **options
    )
    return await asyncio.wait_for(attempt, timeout * (len(servers) + 1))
