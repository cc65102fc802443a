"""The MCP server for AI coding assistants (`factory mcp`), on the official MCP SDK.

Four read-only tools, each a thin call of ``factory.advice``: ``check_requirement``,
``check_requirements``, ``search_catalogue``, ``explain_refusal``; and, when the server
is given the factory's settings, two of the intake queue (``factory.intake``):
``request_component`` (queue a request for a project not approved yet, with why) and
``request_status`` (poll it). Every result is
``{"answer": ..., "envelope": ...}``: the answer as JSON, and the DSSE envelope of
the in-toto statement the factory's ``answers`` key signed over it (verify it with
/.well-known/factory/answers.pub.pem, docs/policy-api.md). Input is bounded
(``factory.advice`` limits; an HTTP body of at most 2 MiB); input over a bound is
one tool error of one line.

    server = build_server(advisor)
    run_stdio(server)                              # stdio, each message bounded
    server.run("streamable-http", host="127.0.0.1", port=8765)
"""

from __future__ import annotations

import io
import os
import sys
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

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
from factory.errors import FactoryError, one_line
from factory.intake import MAX_REASON, IntakeError, status, submit

if TYPE_CHECKING:
    from factory.config import Settings

MAX_HTTP_BODY = 2 * 1024 * 1024
MAX_STDIO_LINE = MAX_HTTP_BODY  # bytes of one JSON-RPC message over stdio
NAME = "artifact-factory"
INSTRUCTIONS = (
    "The organisation's Python package policy. Before adding or installing a Python "
    "dependency, check it here: only components this factory approved and serves may be "
    "installed (from its index, never from public PyPI). A refusal says why and what to "
    "use instead (did-you-mean for typos and look-alike names). Every answer is signed "
    "by the factory (envelope: DSSE, in-toto statement)."
)
_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                             open_world_hint=False)


def _answer(call: Any, *args: Any) -> dict[str, Any]:
    try:
        return call(*args).to_dict()  # type: ignore[no-any-return]
    except (RequestError, IntakeError) as exc:  # one bounded line for the model to read
        raise ToolError(f"{exc.message} ({exc.hint})") from None
    except FactoryError as exc:  # the factory's state cannot be read (no recipes...)
        raise ToolError(one_line(f"the factory cannot answer now: {exc.message} (hint: "
                                 f"{exc.hint})", 500)) from None


def build_server(advisor: Advisor, settings: Settings | None = None,
                 origin: str = "mcp") -> MCPServer:
    """The MCP server answering with ``advisor``; with ``settings``, it also takes
    requests (queued in that ledger, from ``origin``)."""
    server: MCPServer = MCPServer(NAME, title="Artifact factory policy",
                                  instructions=INSTRUCTIONS, version=__version__,
                                  log_level="WARNING")

    @server.tool(annotations=_READ_ONLY, description=(
        "May this Python requirement be installed from the organisation's index? Give "
        "NAME, NAME==VERSION or a PEP 508 line (at most "
        f"{MAX_REQUIREMENT} characters). Answers the verdict (served, not-approved, "
        "did-you-mean, version-blocked, approved-not-published, quarantined, malformed), "
        "the reason, and what to use instead; signed by the factory."))
    def check_requirement(requirement: str) -> dict[str, Any]:
        return _answer(advisor.check, requirement)

    @server.tool(annotations=_READ_ONLY, description=(
        "Check a whole requirements list (the text of a requirements.txt, or a list of "
        f"lines; at most {MAX_LINES} lines and {MAX_BYTES // 1024} KiB): each requirement "
        "is answered on its own, with its line number; malformed and option lines are "
        "answered as malformed. One signed statement covers every line."))
    def check_requirements(requirements: str | list[str]) -> dict[str, Any]:
        return _answer(advisor.check_list, requirements)

    @server.tool(annotations=_READ_ONLY, description=(
        "Search the approved catalogue: components whose name holds the query or is "
        f"close to it (typos, look-alike characters). Query at most {MAX_QUERY} "
        f"characters; limit 1 to {MAX_RESULTS} (default {DEFAULT_RESULTS}). An empty query "
        "lists the catalogue."))
    def search_catalogue(query: str, limit: int = DEFAULT_RESULTS) -> dict[str, Any]:
        return _answer(advisor.search, query, limit)

    @server.tool(annotations=_READ_ONLY, description=(
        "Explain why a requirement is refused and what to use instead: the answer of "
        "check_requirement, and for a name this index does not know, whether the upstream "
        "index knows it (unknown-upstream: likely a hallucinated name)."))
    def explain_refusal(requirement: str) -> dict[str, Any]:
        return _answer(advisor.explain, requirement)

    if settings is not None:
        _intake_tools(server, advisor, settings, origin)
    return server


_ASKS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                        open_world_hint=False)


def _intake_tools(server: MCPServer, advisor: Advisor, settings: Settings,
                  origin: str) -> None:
    @server.tool(annotations=_ASKS, description=(
        "Ask the platform team to approve a Python project the index does not serve yet "
        "(NAME or NAME<range>), saying why it is needed (at most "
        f"{MAX_REASON} characters). The request is queued (or approved by policy where the "
        "site allows it) and answered with a token: poll request_status with it. Check "
        "the name first (check_requirement): a project already served is not queued, and "
        "a name close to an approved one waits for a human. Signed by the factory."))
    def request_component(requirement: str, reason: str,
                          requester: str | None = None) -> dict[str, Any]:
        def call() -> Any:
            done = submit(settings, advisor.knowledge(), requirement, requester, reason,
                          origin)
            return advisor.attest(canonical(requirement), done.to_dict())
        return _answer(call)

    @server.tool(annotations=_READ_ONLY, description=(
        "Where a request made with request_component stands: pending (a human decides), "
        "approved, building, installable (with the version served), denied (with why) or "
        "failed (with why). Signed by the factory."))
    def request_status(token: str) -> dict[str, Any]:
        def call() -> Any:
            ticket = status(settings, token)
            return advisor.attest(f"request:{ticket.token}", ticket.to_dict())
        return _answer(call)


class BoundedLines(io.RawIOBase):
    """The bytes of ``fd`` with every line cut at ``limit`` bytes: the rest of a longer
    line is read and dropped and a NUL put in its place, so what is left of it is no
    JSON-RPC message (a cut inside trailing blanks would leave a whole one; NUL is
    refused in and after any JSON value, and the SDK drops it as a parse error) and
    memory never holds more than ``limit`` of it."""

    def __init__(self, fd: int, limit: int) -> None:
        super().__init__()
        self.fd, self.limit, self.run = fd, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            data = os.read(self.fd, len(buffer))
            if not data:
                return 0
            kept = self._cut(data)
            if kept:
                buffer[:len(kept)] = kept
                return len(kept)

    def _cut(self, data: bytes) -> bytes:
        kept = bytearray()
        parts = data.split(b"\n")
        for i, part in enumerate(parts):
            kept += part[:max(self.limit - self.run, 0)]
            if self.run <= self.limit < self.run + len(part):
                kept += b"\0"  # once per line, where it first goes over
            self.run += len(part)
            if i < len(parts) - 1:
                kept += b"\n"
                self.run = 0
        return bytes(kept)


def run_stdio(server: MCPServer, limit: int = MAX_STDIO_LINE) -> None:
    """Serve ``server`` over stdin/stdout with each message bounded at ``limit`` bytes.
    The SDK reads whole lines of any length; it reads ``sys.stdin`` as given when that
    is not fd 0, so the wire is read through ``BoundedLines`` from a private copy of
    fd 0, and fd 0 points at the null device meanwhile (nothing else reads the wire)."""
    wire = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BufferedReader(BoundedLines(wire, limit)),
                                 encoding="utf-8", errors="replace")
    try:
        server.run()
    finally:
        sys.stdin = saved
        os.dup2(wire, 0)
        os.close(wire)
