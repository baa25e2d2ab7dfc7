"""The benchmark's HTTP client: one keep-alive connection replaying one prepared request, so that
what is timed is the server and not the client's own HTTP stack."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class ReplayClient:
    """POSTs the same GraphQL request again and again on one HTTP/1.1 connection. Each answer's
    status line is checked, and the first one's body (a GraphQL error would end the run)."""

    def __init__(self, url: str, document: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        body = json.dumps({"query": document}).encode()
        head = [
            f"POST {parts.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            "Accept: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self.request_bytes = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._checked = False

    async def __aenter__(self) -> ReplayClient:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def request(self) -> bytes:
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(self.request_bytes)
        head = await self._reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self._reader.readexactly(length)
        if not self._checked:
            answer: dict[str, Any] = json.loads(body)
            if "errors" in answer:
                raise RuntimeError(answer["errors"])
            self._checked = True
        return body
