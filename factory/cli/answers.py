"""Commands that answer developers and their AI assistants: `factory mcp`."""

from __future__ import annotations

from typing import Annotated

import typer

from factory.cli import _app
from factory.cli._app import app, settings


@app.command()
def mcp(
    http: Annotated[bool, typer.Option(
        "--http", help="Serve streamable HTTP on 127.0.0.1 (at /mcp) instead of stdio.")] = False,
    port: Annotated[int, typer.Option(help="With --http: the port.", min=1, max=65535)] = 8765,
    offline: Annotated[bool, typer.Option(
        help="explain_refusal does not ask upstream whether a name exists there.")] = False,
) -> None:
    """An MCP server for AI coding assistants: check a requirement or a requirements
    list, search the approved catalogue, explain a refusal; every answer signed by the
    factory's answers key (docs/policy-api.md). stdio by default."""
    from factory.advice import Advisor, fresh_for, verifier_id
    from factory.assistants import MAX_HTTP_BODY, build_server
    from factory.attest.keys import load_signer
    from factory.watch import ask_upstream, why_knowledge

    s = settings()
    # The recipes, lock, index records and ledger: read again at most every 2 s.
    advisor = Advisor(fresh_for(2.0, lambda: why_knowledge(s, "")), load_signer(s, "answers"),
                      verifier_id(s.index_url),
                      upstream=None if offline else (lambda name: ask_upstream(s, name)))
    server = build_server(advisor)
    if not http:
        server.run()  # stdout is the protocol: nothing else is printed there
        return
    _app.err.print(f"MCP over streamable HTTP at http://127.0.0.1:{port}/mcp", highlight=False)
    server.run("streamable-http", host="127.0.0.1", port=port,
               max_request_body_size=MAX_HTTP_BODY)
