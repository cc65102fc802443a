"""The policy API: JSON over HTTP under /api/v1/, for developers' tools and assistants.

``check`` (one requirement), ``check-list`` (a requirements list), ``search`` (the
approved catalogue) and ``why`` (explain a refusal), answered by ``factory.advice``
from what the index publishes (the same knowledge as the 404 of an unknown name),
each answer signed by the factory's ``answers`` key (a DSSE envelope over an in-toto
statement; verify with /.well-known/factory/answers.pub.pem). Described as OpenAPI
3.1 at /api/v1/openapi.json. Input is bounded: a JSON body of at most 128 KiB, the
limits of ``factory.advice``; anything over is one JSON error of one line. The
server never asks upstream (``why`` of `factory why` without --offline does).
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from anyio import CapacityLimiter, to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from factory import __version__
from factory.advice import (
    DEFAULT_RESULTS,
    MAX_BYTES,
    MAX_LINES,
    MAX_QUERY,
    MAX_REQUIREMENT,
    MAX_RESULTS,
    Advisor,
    RequestError,
    canonical,
)
from factory.errors import FactoryError
from factory.intake import (
    MAX_ASKED,
    MAX_ORIGIN,
    MAX_REASON,
    MAX_REQUESTER,
    TOKEN_BYTES,
    IntakeError,
    QueueFull,
    bounded,
    status,
    submit,
)

if TYPE_CHECKING:
    from factory.config import Settings

PREFIX = "/api/v1"
MAX_BODY = 128 * 1024
MAX_LISTS_AT_ONCE = 4  # check-list calls running at once (each up to a second); others wait
MAX_LISTS_WAITING = 32  # check-lists waiting their turn; more are refused (429) at once
MAX_WRITES_AT_ONCE = 2  # requests written to the ledger at once; others wait
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def origin_of(host: str | None) -> str:
    """The origin a request from ``host`` counts against: the address the connection
    came from (never a header a client sets; the server runs with proxy headers off),
    an IPv4 address as itself, an IPv6 one as its /64 (one network holds 2^64 of them,
    each a share of its own)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return bounded(f"api:{host or 'unknown'}", MAX_ORIGIN)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"api:{address.ipv4_mapped}"
        return f"api:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"api:{address}"


class _Refused(Exception):
    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


def _json(value: Any, status: int = 200) -> Response:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json", headers=_HEADERS)


def _error(status: int, message: str, hint: str = "") -> Response:
    return _json({"error": message, "hint": hint or "see /api/v1/openapi.json"}, status)


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object of a POST, read within MAX_BODY bytes."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise _Refused(415, "send the request as application/json")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise _Refused(413, f"the body is larger than {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _Refused(413, f"the body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    try:
        value = json.loads(b"".join(chunks))
    except (UnicodeDecodeError, ValueError, RecursionError):  # nesting too deep: not JSON
        raise _Refused(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise _Refused(400, "the body must be a JSON object")
    return value


async def _params(request: Request) -> dict[str, Any]:
    if request.method == "POST":
        return await _body(request)
    return dict(request.query_params)


def _text(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise _Refused(400, f"{key!r} is required, as text")
    return value


class PolicyApi:
    """Handlers of /api/v1/ over one advisor."""

    def __init__(self, advisor: Advisor, settings: Settings | None = None) -> None:
        self.advisor = advisor
        self.settings = settings  # the ledger requests are queued in (None: not taken)
        # Lists answered at once: a flood of them never takes the thread pool the index's
        # file hashing shares (Starlette's, 40 threads), nor every core.
        self.lists = CapacityLimiter(MAX_LISTS_AT_ONCE)
        self.writes = CapacityLimiter(MAX_WRITES_AT_ONCE)

    async def _answer(self, request: Request, call: Any, threaded: bool = False,
                      limiter: CapacityLimiter | None = None) -> Response:
        """``call(params)`` answered as JSON; ``threaded``: off the event loop (a list of
        500 typos matched against 10,000 names takes about a second); ``limiter``: off
        the event loop within that limiter (the ledger's writes)."""
        try:
            params = await _params(request) if request.method == "POST" or limiter is None \
                else {}
            limiter = limiter or (self.lists if threaded else None)
            found = await to_thread.run_sync(call, params, limiter=limiter) if limiter \
                else call(params)
            return _json(found.to_dict())
        except _Refused as exc:
            return _error(exc.status, exc.message, exc.hint)
        except RequestError as exc:
            return _error(400, exc.message, exc.hint)
        except QueueFull as exc:
            return _error(429, exc.message, exc.hint)
        except IntakeError as exc:
            return _error(404 if exc.message == "no such request" else 400, exc.message,
                          exc.hint)
        except FactoryError as exc:  # the ledger cannot be used: the operator's to fix
            return _error(503, "requests cannot be taken now", exc.hint)

    async def check(self, request: Request) -> Response:
        return await self._answer(request, lambda p: self.advisor.check(
            _text(p, "requirement")))

    async def why(self, request: Request) -> Response:
        return await self._answer(request, lambda p: self.advisor.explain(
            _text(p, "requirement")))

    async def check_list(self, request: Request) -> Response:
        def call(params: dict[str, Any]) -> Any:
            if "requirements" not in params:
                raise _Refused(400, "'requirements' is required: text or a list of strings")
            return self.advisor.check_list(params["requirements"])

        if request.method != "POST":
            return _error(405, "POST a JSON object {\"requirements\": ...}")
        if self.lists.statistics().tasks_waiting >= MAX_LISTS_WAITING:
            return _error(429, f"{MAX_LISTS_WAITING} requirements lists are waiting already",
                          "send lists one at a time, or check single requirements")
        return await self._answer(request, call, threaded=True)

    async def search(self, request: Request) -> Response:
        def call(params: dict[str, Any]) -> Any:
            limit = params.get("limit", DEFAULT_RESULTS)
            if isinstance(limit, str) and limit.isdigit() and len(limit) < 4:
                limit = int(limit)
            if not isinstance(limit, int) or isinstance(limit, bool):
                raise _Refused(400, f"limit must be a whole number, 1 to {MAX_RESULTS}")
            return self.advisor.search(_text(params, "query") if "query" in params else "",
                                       limit)

        return await self._answer(request, call)

    async def request_component(self, request: Request) -> Response:
        if request.method != "POST":
            return _error(405, "POST a JSON object {\"requirement\": ..., \"reason\": ...}")
        if self.settings is None:
            return _error(503, "this server takes no requests", "ask the platform team")
        settings = self.settings
        origin = origin_of(request.client.host if request.client else None)

        def call(params: dict[str, Any]) -> Any:
            asked = _text(params, "requirement")
            done = submit(settings, self.advisor.knowledge(), asked, params.get("requester"),
                          params.get("reason"), origin)
            return self.advisor.attest(canonical(asked), done.to_dict())

        return await self._answer(request, call, limiter=self.writes)

    async def request_status(self, request: Request) -> Response:
        if self.settings is None:
            return _error(503, "this server takes no requests", "ask the platform team")
        settings, token = self.settings, request.path_params["token"]

        def call(_params: dict[str, Any]) -> Any:
            ticket = status(settings, token)
            return self.advisor.attest(f"request:{ticket.token}", ticket.to_dict())

        return await self._answer(request, call, limiter=self.writes)

    async def openapi(self, request: Request) -> Response:
        return _json(OPENAPI)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{PREFIX}/check", self.check, methods=["GET", "POST"]),
            Route(f"{PREFIX}/check-list", self.check_list, methods=["POST"]),
            Route(f"{PREFIX}/search", self.search, methods=["GET", "POST"]),
            Route(f"{PREFIX}/why", self.why, methods=["GET", "POST"]),
            Route(f"{PREFIX}/requests", self.request_component, methods=["POST"]),
            Route(f"{PREFIX}/requests/{{token}}", self.request_status, methods=["GET"]),
            Route(f"{PREFIX}/openapi.json", self.openapi, methods=["GET"]),
            # Last: what no route above answers (a wrong method, an unknown path) is
            # the API's JSON error, not Starlette's plain text.
            Mount(PREFIX, app=self._unanswered),
        ]

    async def _unanswered(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = Request(scope).url.path
        known = {f"{PREFIX}/{n}" for n in ("check", "check-list", "search", "why",
                                            "openapi.json", "requests")}
        response = _error(405, f"{scope['method'][:20]} is not answered here") \
            if path in known else _error(404, "no such route of the policy API")
        await response(scope, receive, send)


# -- the description ---------------------------------------------------------------
_ERROR = {"description": "Refused input: one line and a hint",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_SIGNED = {"description": "The answer and its signed envelope",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Signed"}}}}
_REQUIREMENT = {"type": "string", "maxLength": MAX_REQUIREMENT,
                "description": "NAME, NAME==VERSION or a PEP 508 requirement",
                "examples": ["requests", "requests==2.32.3", "flask>=3,<4"]}


def _single(summary: str, operation: str) -> dict[str, Any]:
    errors = {"400": _ERROR, "413": _ERROR, "414": _ERROR, "415": _ERROR}
    return {
        "get": {"summary": summary, "operationId": operation,
                "parameters": [{"name": "requirement", "in": "query", "required": True,
                                "schema": _REQUIREMENT}],
                "responses": {"200": _SIGNED, **errors}},
        "post": {"summary": summary, "operationId": operation + "Post",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"type": "object", "required": ["requirement"],
                                "properties": {"requirement": _REQUIREMENT}}}}},
                 "responses": {"200": _SIGNED, **errors}},
    }


_SEARCH_PARAMS = {"query": {"type": "string", "maxLength": MAX_QUERY},
                  "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS,
                            "default": DEFAULT_RESULTS}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Artifact factory policy API", "version": __version__,
        "description": "May this Python requirement be installed from this index, and if not, "
        "why and what instead? Every answer is an in-toto Statement v1 (predicate "
        "https://in-toto.io/attestation/svr/v0.1, the answer as its extension field) "
        "signed as a DSSE envelope by the factory's answers key: verify it with "
        "/.well-known/factory/answers.pub.pem (docs/policy-api.md). Every refusal is "
        "JSON of the Error schema: besides the statuses each operation lists, a method a "
        "route does not take is a 405 and a path under /api/v1/ that is no route a 404.",
    },
    "paths": {
        f"{PREFIX}/check": _single("Check one requirement", "check"),
        f"{PREFIX}/why": _single("Explain why a requirement is refused, and what instead",
                                 "why"),
        f"{PREFIX}/check-list": {"post": {
            "summary": "Check a requirements list, each line on its own",
            "operationId": "checkList",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["requirements"],
                "properties": {"requirements": {
                    "description": f"The text of a requirements file, or its lines: at most "
                    f"{MAX_LINES} lines and {MAX_BYTES} bytes",
                    "oneOf": [{"type": "string", "maxLength": MAX_BYTES},
                              {"type": "array", "maxItems": MAX_LINES,
                               "items": {"type": "string"}}]}}}}}},
            "responses": {"200": _SIGNED, "400": _ERROR, "413": _ERROR, "415": _ERROR,
                          "429": {**_ERROR, "description": f"{MAX_LISTS_WAITING} lists are "
                                  "waiting their turn already"}}}},
        f"{PREFIX}/search": {
            "get": {"summary": "Search the approved catalogue", "operationId": "search",
                    "parameters": [{"name": name, "in": "query", "required": False,
                                    "schema": schema}
                                   for name, schema in _SEARCH_PARAMS.items()],
                    "responses": {"200": _SIGNED, "400": _ERROR, "414": _ERROR}},
            "post": {"summary": "Search the approved catalogue", "operationId": "searchPost",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"type": "object", "properties": _SEARCH_PARAMS}}}},
                     "responses": {"200": _SIGNED, "400": _ERROR, "413": _ERROR,
                                   "415": _ERROR}}},
        f"{PREFIX}/requests": {"post": {
            "summary": "Ask for a component the index does not serve yet",
            "description": "Queued in the factory's ledger for the platform team (or "
            "approved by policy where the site allows it); answered with a token to poll. "
            "A project the index approves already is not queued: its answer is returned. "
            "Asking again for an open request adds a vote to it. The requester is who "
            "the client says it is; the origin is the client's address.",
            "operationId": "requestComponent",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["requirement"], "properties": {
                    "requirement": {"type": "string", "maxLength": MAX_ASKED,
                                    "description": "NAME or NAME<range>",
                                    "examples": ["attrs", "attrs>=23"]},
                    "reason": {"type": "string", "maxLength": MAX_REASON},
                    "requester": {"type": "string", "maxLength": MAX_REQUESTER}}}}}},
            "responses": {"200": {**_SIGNED, "description": "The answer is {queued, "
                                  "request, answer}: the request (a Request), or what "
                                  "the index says of a project it approves already"},
                          "400": _ERROR, "413": _ERROR, "415": _ERROR,
                          "429": {**_ERROR, "description": "Too many open requests, from "
                                  "this client or in all"},
                          "503": {**_ERROR, "description": "This server takes no "
                                  "requests, or its ledger cannot be used"}}}},
        f"{PREFIX}/requests/{{token}}": {"get": {
            "summary": "Where a request stands",
            "operationId": "requestStatus",
            "parameters": [{"name": "token", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern":
                                       f"^[0-9a-f]{{{TOKEN_BYTES * 2}}}$"}}],
            "responses": {"200": {**_SIGNED, "description": "The answer is a Request"},
                          "400": _ERROR, "404": {**_ERROR, "description": "No such request"},
                          "503": _ERROR}}},
        f"{PREFIX}/openapi.json": {"get": {
            "summary": "This description", "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {}}}}}},
    },
    "components": {"schemas": {
        "Request": {"type": "object", "properties": {
            "token": {"type": "string"}, "name": {"type": "string"},
            "asked": {"type": "string"},
            "state": {"enum": ["pending", "approved", "building", "installable", "denied",
                               "failed"]},
            "detail": {"type": "string"}, "requester": {"type": "string"},
            "origin": {"type": "string"}, "reason": {"type": "string"},
            "votes": {"type": "integer"}, "decided_by": {"type": ["string", "null"]},
            "version": {"type": ["string", "null"], "description": "the version served, "
                        "once installable"},
            "created": {"type": "string"}, "updated": {"type": "string"},
            "message": {"type": "string"}}},
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string"}, "hint": {"type": "string"}}},
        "Signed": {"type": "object", "required": ["answer", "envelope"], "properties": {
            "answer": {"type": "object", "description": "check, why: an answer (verdict, "
                       "reason, project, version, suggestions, instead, advisories, "
                       "message); check-list: {answers, served, refused}; search: {query, "
                       "results}"},
            "envelope": {"oneOf": [{"$ref": "#/components/schemas/Envelope"},
                                   {"type": "null"}],
                         "description": "null when the server has no answers key"}}},
        "Envelope": {"type": "object", "required": ["payload", "payloadType", "signatures"],
                     "properties": {
                         "payload": {"type": "string", "contentEncoding": "base64"},
                         "payloadType": {"const": "application/vnd.in-toto+json"},
                         "signatures": {"type": "array", "items": {"type": "object",
                                        "properties": {"keyid": {"type": "string"},
                                                       "sig": {"type": "string"}}}}}},
    }},
}
