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

import json
from typing import Any

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
)

PREFIX = "/api/v1"
MAX_BODY = 128 * 1024
MAX_LISTS_AT_ONCE = 4  # check-list calls running at once (each up to a second); others wait
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


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

    def __init__(self, advisor: Advisor) -> None:
        self.advisor = advisor
        # Lists answered at once: a flood of them never takes the thread pool the index's
        # file hashing shares (Starlette's, 40 threads), nor every core.
        self.lists = CapacityLimiter(MAX_LISTS_AT_ONCE)

    async def _answer(self, request: Request, call: Any, threaded: bool = False) -> Response:
        """``call(params)`` answered as JSON; ``threaded``: off the event loop (a list of
        500 typos matched against 10,000 names takes about a second)."""
        try:
            params = await _params(request)
            found = await to_thread.run_sync(call, params, limiter=self.lists) if threaded \
                else call(params)
            return _json(found.to_dict())
        except _Refused as exc:
            return _error(exc.status, exc.message, exc.hint)
        except RequestError as exc:
            return _error(400, exc.message, exc.hint)

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

    async def openapi(self, request: Request) -> Response:
        return _json(OPENAPI)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{PREFIX}/check", self.check, methods=["GET", "POST"]),
            Route(f"{PREFIX}/check-list", self.check_list, methods=["POST"]),
            Route(f"{PREFIX}/search", self.search, methods=["GET", "POST"]),
            Route(f"{PREFIX}/why", self.why, methods=["GET", "POST"]),
            Route(f"{PREFIX}/openapi.json", self.openapi, methods=["GET"]),
            # Last: what no route above answers (a wrong method, an unknown path) is
            # the API's JSON error, not Starlette's plain text.
            Mount(PREFIX, app=self._unanswered),
        ]

    async def _unanswered(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = Request(scope).url.path
        known = {f"{PREFIX}/{n}" for n in ("check", "check-list", "search", "why",
                                            "openapi.json")}
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
        "/.well-known/factory/answers.pub.pem (docs/policy-api.md).",
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
            "responses": {"200": _SIGNED, "400": _ERROR, "413": _ERROR, "415": _ERROR}}},
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
        f"{PREFIX}/openapi.json": {"get": {
            "summary": "This description", "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {}}}}}},
    },
    "components": {"schemas": {
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
