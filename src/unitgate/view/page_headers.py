"""The headers that keep unitgate's pages to themselves: a strict Content-Security-Policy (no
framing by any other page, scripts from unitgate only) on the dashboard and GraphiQL, and on every
other answer a policy that allows nothing, with nosniff."""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Every response that sets no policy of its own (JSON, text, files) gets this one.
NOTHING = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


def _sockets(host: str) -> str:
    """Not every browser counts ws: as 'self': the page's own websocket, by name."""
    return f" ws://{host} wss://{host}" if host and host.isprintable() and " " not in host else ""


def page_policy(host: str, scripts: str = "", styles: str = "", fonts: str = "") -> str:
    return (
        f"default-src 'none'; script-src 'self'{scripts}; style-src 'self'{styles}; "
        f"img-src 'self' data:; font-src 'self' data:{fonts}; connect-src 'self'{_sockets(host)}; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def page_headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }


def dashboard_headers(host: str) -> dict[str, str]:
    """The dashboard may load from and talk to unitgate's own origin only."""
    return page_headers(page_policy(host))


def inline_sources(html: str, cdn: str | None) -> tuple[str, str]:
    """CSP sources for a page's own inline scripts and styles, by hash (and for a CDN it loads
    from), so that nothing else inline runs: (script sources, style sources)."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
        hashes[kind].append(f" 'sha256-{digest}'")
    extra = f" {cdn}" if cdn else ""
    return "".join(hashes["script"]) + extra, "".join(hashes["style"]) + extra


class StrictHeaders:
    """nosniff on every HTTP answer, and the policy that allows nothing where a route set none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_strict(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", NOTHING.encode()))
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_strict)
