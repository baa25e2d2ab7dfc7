"""Trusted documents: a request may name a document by its hash instead of sending it, and a
hardened deployment runs nothing else. The manifest is the JSON graphql-codegen's client preset
writes (`persisted-documents.json`): {"<sha256 hex, or sha256:hex>": "<document>"}."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from graphql import GraphQLFormattedError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from unitgate.view.body_limit import read_body, replay

NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
REQUIRED = "PERSISTED_QUERY_REQUIRED"
_HEX = re.compile(r"[0-9a-f]{64}")


def document_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _key(document_id: object) -> str | None:
    if not isinstance(document_id, str):
        return None
    key = document_id.removeprefix("sha256:").lower()
    return key if _HEX.fullmatch(key) else None


def load_manifest(path: Path) -> dict[str, str]:
    """The manifest, every entry's hash checked against its text; ValueError names the first that
    does not match, or what else is wrong with the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"trusted_documents {path}: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"trusted_documents {path}: expected a JSON object of hash to document")
    documents: dict[str, str] = {}
    for document_id, text in data.items():
        key = _key(document_id)
        if key is None or not isinstance(text, str):
            raise ValueError(
                f"trusted_documents {path}: entry {document_id[:80]!r} is not a sha256 and a document"
            )
        if document_hash(text) != key:
            raise ValueError(
                f"trusted_documents {path}: entry {document_id!r} does not match its document's sha256"
            )
        documents[key] = text
    return documents


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str

    def error(self) -> GraphQLFormattedError:
        return {"message": self.message, "extensions": {"code": self.code}}


@dataclass(frozen=True, slots=True)
class TrustedDocuments:
    documents: Mapping[str, str]
    only: bool = False

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any] | Refusal:
        """A request's parameters with the named document in `query`, or why it is refused.

        The id comes as `documentId` (GraphQL over HTTP) or as Apollo's
        `extensions.persistedQuery.sha256Hash`. Outside trusted-only mode a request may still
        send its own text, and an unknown id that comes with its text runs that text (after its
        hash is checked), which is how Apollo's persisted-query link registers a document.
        """
        extensions = params.get("extensions")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        document_id = params.get("documentId")
        if document_id is None and isinstance(persisted, dict):
            document_id = persisted.get("sha256Hash")
        query = params.get("query")
        rest = {k: v for k, v in params.items() if k != "documentId"}
        if document_id is None:
            if self.only and query is not None:
                return Refusal(REQUIRED, "this server runs trusted documents only: send a documentId")
            return rest
        key = _key(document_id)
        text = self.documents.get(key) if key is not None else None
        if text is not None:
            return {**rest, "query": text}
        if not self.only and isinstance(query, str) and key is not None and document_hash(query) == key:
            return rest
        return Refusal(NOT_FOUND, "PersistedQueryNotFound")


def _refuse(refusal: Refusal) -> JSONResponse:
    return JSONResponse({"errors": [refusal.error()]}, status_code=400)


class TrustedDocumentsGate:
    """ASGI: put the named document in the request, or refuse it before strawberry parses it."""

    def __init__(self, app: ASGIApp, trusted: TrustedDocuments, max_body_bytes: int) -> None:
        self.app = app
        self.trusted = trusted
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET":
            query: dict[str, Any] = dict(parse_qsl(scope["query_string"].decode("latin-1")))
            if "extensions" in query:
                with contextlib.suppress(ValueError):  # strawberry says what is wrong with it
                    query["extensions"] = json.loads(query["extensions"])
            if not ({"query", "documentId", "extensions"} & query.keys()):
                await self.app(scope, receive, send)  # the GraphiQL page, and the like
                return
            resolved = self.trusted.resolve(query)
            if isinstance(resolved, Refusal):
                await _refuse(resolved)(scope, receive, send)
                return
            encoded = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in resolved.items()}
            scope = {**scope, "query_string": urlencode(encoded).encode()}
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, self.max_body_bytes) or b""  # BodyLimit has bounded it
        if not self.trusted.only and b"documentId" not in body and b"persistedQuery" not in body:
            # The common case costs no JSON parse: a request that names no document, on a server
            # that runs free text.
            await self.app(scope, replay(body), send)
            return
        sent: object = None
        with contextlib.suppress(ValueError, RecursionError):  # malformed: strawberry answers it
            sent = json.loads(body)
        if not isinstance(sent, dict):
            await self.app(scope, replay(body), send)
            return
        resolved = self.trusted.resolve(sent)
        if isinstance(resolved, Refusal):
            await _refuse(resolved)(scope, receive, send)
            return
        await self.app(scope, replay(json.dumps(resolved).encode()), send)
