"""The edge's limits as values, for the settings to make without loading the HTTP server
(`unitgate agent` serves no HTTP); edge.py applies them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_head_bytes: int = 32 * 1024  # request line and headers
    max_headers: int = 100
    head_timeout: float = 10.0  # for the whole head, from connection (or the last response)
    max_connections: int = 4096  # open at once, websockets included; then 503 at once
    max_body_bytes: int = 1 << 20  # a message's body; its trailers count against max_head_bytes
    body_timeout: float = 10.0  # for the rest of a message (body and trailers) after its head
    # Requests one connection may send ahead of their answers; a client past it does not read.
    max_pipelined: int = 16
