"""HTTP at the server's edge: what a request may be, and the plain answers.

Requests are screened before routing: an over-long path or query answers 414,
too many or too large headers 431, and a path no published URL has (a dot or
empty segment, a control character or backslash, a percent-encoded slash,
backslash or NUL) 404. The Simple API serialization is chosen by q-value
(PEP 691); a file's content type comes from its name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from factory.index import pages
from factory.index.records import Sidecars, StoredFile

log = logging.getLogger("factory.index.serve")

PAGE_CACHE = "no-cache"  # always revalidate (cheap with the ETag): yanks show at once
# What a request may carry. The longest URL the index publishes is well under 1 KiB
# (a 200-character project, a 255-byte file name and a sidecar suffix).
MAX_PATH_BYTES = 2048
MAX_QUERY_BYTES = 2048
MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024

Page = tuple[bytes, str]  # body and ETag

_SIDECAR_TYPES = {  # by sidecar kind (factory.index.records.Sidecars)
    "metadata": "text/plain; charset=utf-8",
    "provenance": "application/json",
    "sigstore": "application/vnd.dev.sigstore.bundle.v0.3+json",
    "intoto": "application/jsonl",
    "sbom": "application/vnd.cyclonedx+json",
}
_CONTENT_TYPES = [  # longest suffix first: a sidecar's before ".json"
    *((Sidecars.suffix(kind), media) for kind, media in _SIDECAR_TYPES.items()),
    (".json", "application/json"),
    (".whl", "application/octet-stream"),
    (".tar.gz", "application/gzip"),
    (".zip", "application/zip"),
    (".pem", "application/x-pem-file"),
    (".pub", "application/x-pem-file"),
    (".html", "text/html; charset=utf-8"),
]
_ACCEPTED = {
    pages.JSON_TYPE: pages.JSON_TYPE,
    "application/vnd.pypi.simple.latest+json": pages.JSON_TYPE,
    pages.HTML_TYPE: pages.HTML_TYPE,
    "application/vnd.pypi.simple.latest+html": pages.HTML_TYPE,
    "text/html": "text/html",
    "text/*": "text/html",
    "*/*": "text/html",
}
# A decoded path no published URL has: control characters, backslashes, empty
# segments ("//": an absolute path after a prefix), and "." or ".." segments.
_UNSAFE_PATH = re.compile(r"[\x00-\x1f\x7f\\]|//|/\.\.?(?:/|$)")
# Percent-encoded separators and NUL in the raw path: the decoded path would hide them.
_ENCODED_SEPARATOR = re.compile(rb"%(?:2f|5c|00)", re.IGNORECASE)


def content_type(name: str) -> str:
    for suffix, kind in _CONTENT_TYPES:
        if name.endswith(suffix):
            return kind
    return "application/octet-stream"


def media_ranges(accept: str) -> list[tuple[str, tuple[float, ...]]]:
    """Each media range of an Accept value, lower-cased, with the values of its q
    parameters in order (an unreadable one is 0)."""
    ranges = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        ranges.append((media.lower(), tuple(_quality(p[2:]) for p in params
                                            if p.startswith("q="))))
    return ranges


def _quality(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def negotiate(accept: str | None) -> str | None:
    """The Simple API serialization to answer with, or None (406)."""
    if not accept or not accept.strip():
        return "text/html"
    choices = [(qualities[-1] if qualities else 1.0, -position, media)
               for position, (media, qualities) in enumerate(media_ranges(accept))]
    for quality, _, media in sorted(choices, reverse=True):
        if quality > 0 and media in _ACCEPTED:
            return _ACCEPTED[media]
    return None


def accept_of(request: Request) -> str:
    """What the request accepts: ``?format=`` first, then its Accept header."""
    override = request.query_params.get("format")
    if override:  # an unescaped "+" in a typed URL arrives as a space
        return override.replace(" ", "+")
    return request.headers.get("accept", "")


def requested_kind(request: Request) -> str | None:
    """The serialization the request asks for (``?format=`` first, then Accept)."""
    return negotiate(accept_of(request))


class Screen:
    """ASGI middleware: refuses, before routing, requests no published URL can match.

    Oversize input is refused with its own status (414, 431), never a 500; a path
    with what could address a file outside the index (dot or empty segments, a
    backslash, a control character, a percent-encoded separator or NUL) is a 404
    whatever route it would reach.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = _screen(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _screen(scope: Scope) -> Response | None:
    path: str = scope["path"]
    raw: bytes = scope.get("raw_path") or path.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_PATH_BYTES or len(path) > MAX_PATH_BYTES:
        return _oversize(path, "request path too long", 414)
    if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
        return _oversize(path, "query string too long", 414)
    headers = scope["headers"]
    if len(headers) > MAX_HEADERS or sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES:
        return _oversize(path, "request headers too large", 431)
    if _UNSAFE_PATH.search(path) or _ENCODED_SEPARATOR.search(raw):
        log.info("refused path %r", path[:300])
        return not_found()
    return None


def _oversize(path: str, message: str, status: int) -> Response:
    """The refusal of oversize input: the policy API's JSON error under /api/ (what its
    OpenAPI description promises), plain text elsewhere."""
    if path.startswith("/api/"):
        body = json.dumps({"error": message, "hint": f"see /api/v1/openapi.json ({status})"})
        return Response(body, status_code=status, media_type="application/json",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
    return PlainTextResponse(message + "\n", status_code=status)


# -- answers --------------------------------------------------------------------------
def etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def etag_matches(request: Request, tag: str) -> bool:
    wanted = request.headers.get("if-none-match")
    if not wanted:
        return False
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    return tag in tags or "*" in tags


def page_response(request: Request, found: Page, kind: str) -> Response:
    body, tag = found
    media = kind if kind != "text/html" else "text/html; charset=utf-8"
    headers = {"ETag": tag, "Cache-Control": PAGE_CACHE, "Vary": "Accept"}
    if etag_matches(request, tag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media, headers=headers)


def not_found() -> Response:
    return PlainTextResponse("not found\n", status_code=404)


def not_acceptable() -> Response:
    accepted = ", ".join(sorted(set(_ACCEPTED.values())))
    return PlainTextResponse(f"not acceptable; this index serves {accepted}\n", status_code=406)


def refused(stored: StoredFile) -> Response:
    log.error("REFUSED %s: missing, not a regular file inside the index, or its bytes no "
              "longer match the published sha256 %s", stored.path, stored.sha256)
    return PlainTextResponse(
        "this file no longer matches its published digest; refused\n", status_code=500
    )


async def damaged(request: Request, exc: Exception) -> Response:
    log.warning("503 for %s: %s", request.scope["path"][:300], exc)
    return PlainTextResponse(
        "this part of the index is damaged on the server and is not served; the operator "
        "is told (log)\n", status_code=503)


def redirect(request: Request, path: str) -> Response:
    # Relative, and the query as the client sent it (its raw bytes; no Host header echoed).
    query = request.scope.get("query_string", b"").decode("latin-1")
    return RedirectResponse(path + (f"?{query}" if query else ""), status_code=301)
