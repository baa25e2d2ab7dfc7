"""Third-party browser files without a CDN: the exact npm files strawberry's GraphiQL page names,
and graphql-ws for the dashboard, each checked against its integrity hash (the page's own, or
one pinned here), and served by unitgate itself."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

CDN = "https://unpkg.com/"
URL_PREFIX = "/graphiql-assets/"
DEFAULT_DIR = Path(__file__).parents[1] / "static" / "graphiql"

_ASSET = re.compile(
    r'(?:src|href)="(?P<url>https://unpkg\.com/(?P<package>(?:@[^/"]+/)?[^@/"]+)@(?P<version>[^/"]+)/(?P<path>[^"]+))"'
    r'\s+integrity="(?P<integrity>sha(?:256|384|512)-[A-Za-z0-9+/=]+)"'
)


@dataclass(frozen=True, slots=True)
class Asset:
    url: str
    package: str
    version: str
    path: str
    integrity: str

    @property
    def local(self) -> str:
        """Where it lives below the assets folder, and below URL_PREFIX."""
        return f"{self.package}@{self.version}/{self.path}"

    def matches(self, content: bytes) -> bool:
        algorithm, _, expected = self.integrity.partition("-")
        digest = hashlib.new(algorithm, content).digest()
        return base64.b64encode(digest).decode() == expected


def strawberry_page() -> str:
    return files("strawberry").joinpath("static", "graphiql.html").read_text(encoding="utf-8")


def page_assets(html: str) -> list[Asset]:
    """Every CDN file the page loads, with the integrity hash the page gives it."""
    return [Asset(**match.groupdict()) for match in _ASSET.finditer(html)]


# The dashboard's websocket client: graphql-ws's own browser build, at a pinned version and hash.
GRAPHQL_WS = Asset(
    url=f"{CDN}graphql-ws@6.4.2/umd/graphql-ws.min.js",
    package="graphql-ws",
    version="6.4.2",
    path="umd/graphql-ws.min.js",
    integrity="sha384-mxvR4Mzbsb6QVx/9xI2gtQikQA6m8zMDBFnu3l//4/ROsWt7y2sUGWd+/tYQqDm7",
)


def vendored_assets() -> list[Asset]:
    """Every third-party file unitgate serves: GraphiQL's, and the dashboard's."""
    return [*page_assets(strawberry_page()), GRAPHQL_WS]


def missing(directory: Path, assets: list[Asset]) -> list[Asset]:
    """Assets absent from `directory`, or present with other bytes than the page expects."""
    return [
        a
        for a in assets
        if not (directory / a.local).is_file() or not a.matches((directory / a.local).read_bytes())
    ]


def offline_page(html: str) -> str:
    """The page with every CDN address turned into unitgate's own; the integrity attributes stay,
    so the browser still checks each file."""
    for asset in page_assets(html):
        html = html.replace(asset.url, URL_PREFIX + asset.local)
    return html


# GraphiQL 3.8 writes each run's headers into its history ("graphiql:queries", and favorites)
# whatever shouldPersistHeaders says: the storage it is given drops them from those values, and
# from what an earlier page left there.
_HEADERLESS = """\
      const HISTORY_KEYS = ["graphiql:queries", "graphiql:favorites"];
      function withoutHeaders(key, value) {
        if (!HISTORY_KEYS.includes(key) || value === null) return value;
        try {
          const stored = JSON.parse(value);
          for (const item of stored.queries || []) delete item.headers;
          return JSON.stringify(stored);
        } catch {
          return JSON.stringify({ queries: [] });
        }
      }
      const headerlessStorage = {
        getItem: (key) => withoutHeaders(key, sessionStorage.getItem(key)),
        setItem: (key, value) => sessionStorage.setItem(key, withoutHeaders(key, value)),
        removeItem: (key) => sessionStorage.removeItem(key),
        get length() {
          return Object.keys(sessionStorage).filter((key) => key.startsWith("graphiql:")).length;
        },
        clear: () => Object.keys(sessionStorage)
          .filter((key) => key.startsWith("graphiql:"))
          .forEach((key) => sessionStorage.removeItem(key)),
      };
      ["graphiql:headers", "graphiql:tabState", ...HISTORY_KEYS].forEach((k) => localStorage.removeItem(k));
      sessionStorage.removeItem("graphiql:headers");
      HISTORY_KEYS.forEach((key) => {
        const stored = sessionStorage.getItem(key);
        if (stored !== null) sessionStorage.setItem(key, withoutHeaders(key, stored));
      });
"""


def session_only(html: str) -> str:
    """The page with the headers (a token) kept in no storage at all, only in the page's memory:
    a shared browser must not keep an operator's token. Its tabs and history live in
    sessionStorage, gone with the tab, without headers; what older pages stored is removed."""
    persist = "shouldPersistHeaders: true,"
    script = "<script>\n"
    if persist not in html or html.count(script) != 1:
        raise ValueError("strawberry's GraphiQL page has changed: check session_only() against it")
    html = html.replace(persist, "shouldPersistHeaders: false,\n          storage: headerlessStorage,")
    return html.replace(script, script + _HEADERLESS)
