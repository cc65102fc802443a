"""Commands that answer developers and their AI assistants: `factory mcp`, and the
intake queue (`factory request`, `factory requests ...`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from factory.cli import _app
from factory.cli._app import JsonOpt, app, cell, emit_json, plain, settings

if TYPE_CHECKING:
    from factory.intake import Ticket


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
    from factory.assistants import MAX_HTTP_BODY, build_server, run_stdio
    from factory.attest.keys import load_signer
    from factory.watch import ask_upstream, why_knowledge

    s = settings()
    # The recipes, lock, index records and ledger: read again at most every 2 s.
    advisor = Advisor(fresh_for(2.0, lambda: why_knowledge(s, "")), load_signer(s, "answers"),
                      verifier_id(s.index_url),
                      upstream=None if offline else (lambda name: ask_upstream(s, name)))
    server = build_server(advisor, s, f"mcp:{_me()}")
    if not http:
        run_stdio(server)  # stdout is the protocol: nothing else is printed there
        return
    _app.err.print(f"MCP over streamable HTTP at http://127.0.0.1:{port}/mcp", highlight=False)
    server.run("streamable-http", host="127.0.0.1", port=port,
               max_request_body_size=MAX_HTTP_BODY)


# -- intake: requests for components not approved yet -----------------------------------
requests_app = typer.Typer(help="Requests for components not approved yet (the intake queue).",
                           no_args_is_help=True)
app.add_typer(requests_app, name="requests")


def _me() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid {os.getuid()}"


def _print_ticket(ticket: Ticket, as_json: bool) -> None:
    if as_json:
        emit_json(ticket.to_dict())
    else:
        plain(ticket.message(), _app.out)


@app.command()
def request(
    requirement: Annotated[str, typer.Argument(metavar="NAME[RANGE]",
                                               help='The project asked for, e.g. "attrs>=23".')],
    reason: Annotated[str, typer.Option(help="Why it is needed (kept with the request).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Ask the platform team for a component the index does not serve yet. Prints the
    request's token; `factory requests show TOKEN` tells where it stands."""
    from factory.intake import submit
    from factory.watch import why_knowledge

    s = settings()
    me = _me()
    submitted = submit(s, why_knowledge(s, ""), requirement, me, reason, f"cli:{me}")
    if as_json:
        emit_json(submitted.to_dict())
    else:
        plain(submitted.message(), _app.out)


@requests_app.command("list")
def requests_list(
    state: Annotated[list[str] | None, typer.Option(
        help="Only requests in this state (repeatable): pending, approved, building, "
        "installable, denied, failed.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The requests, oldest first: who asked, why, and where each stands."""
    from factory.intake import STATES, IntakeError, listing

    wanted = tuple(state or ())
    unknown = [w for w in wanted if w not in STATES]
    if unknown:
        raise IntakeError(f"no such state {unknown[0]!r}", f"one of {', '.join(STATES)}")
    tickets = listing(settings(), wanted)
    if as_json:
        emit_json([t.to_dict() for t in tickets])
        return
    from rich.table import Table

    table = Table("token", "asked", "state", "requester", "reason", "detail")
    for t in tickets:
        table.add_row(*map(cell, (t.token, t.asked, t.state, f"{t.requester} ({t.origin})"
                                  + (f" +{t.votes - 1}" if t.votes > 1 else ""),
                                  t.reason, t.detail)))
    _app.out.print(table)
    _app.out.print(f"{len(tickets)} request(s)", highlight=False)


@requests_app.command("show")
def requests_show(token: str, as_json: JsonOpt = False) -> None:
    """Where one request stands."""
    from factory.intake import status

    _print_ticket(status(settings(), token), as_json)


@requests_app.command("approve")
def requests_approve(
    token: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "",
    build: Annotated[bool, typer.Option(help="Add, build and publish it now (else the next "
                                        "`factory requests process` does).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Approve a request: `factory add` of what it asked, then build and publish it."""
    from factory.intake import decide, status
    from factory.intake_policy import process
    from factory.watch import why_knowledge

    s = settings()
    ticket = decide(s, token, True, _me(), reason)
    if build:
        with _app.err.status(f"adding, building and publishing {ticket.asked} ..."):
            process(s, lambda: why_knowledge(s, ""), auto_approve=False)
        ticket = status(s, token)
    _print_ticket(ticket, as_json)
    if ticket.state == "failed":
        raise typer.Exit(1)


@requests_app.command("deny")
def requests_deny(
    token: str,
    reason: Annotated[str, typer.Option(help="Why (the requester sees it).")],
    as_json: JsonOpt = False,
) -> None:
    """Deny a request, saying why; asking again for that project gets this answer."""
    from factory.intake import decide

    _print_ticket(decide(settings(), token, False, _me(), reason), as_json)


@requests_app.command("process")
def requests_process(
    every: Annotated[float | None, typer.Option(
        "--every", metavar="SECONDS", help="Keep processing, this often.", min=1.0)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide pending requests by policy (when [intake] auto_approve is on) and fulfil
    every approved one (add, build, publish). Exit 1 when one failed."""
    import time

    from factory.intake import FAILED
    from factory.intake_policy import process
    from factory.watch import why_knowledge

    s = settings()
    while True:
        done = process(s, lambda: why_knowledge(s, ""))
        if as_json:
            emit_json({"approved": [t.to_dict() for t in done.approved],
                       "denied": [t.to_dict() for t in done.denied],
                       "left": [t.to_dict() for t in done.left],
                       "fulfilled": [t.to_dict() for t in done.fulfilled]})
        else:
            for ticket in done.approved + done.denied + done.fulfilled:
                plain(ticket.message(), _app.out)
            _app.out.print(done.summary(), highlight=False)
        if every is None:
            break
        time.sleep(every)
    if any(t.state == FAILED for t in done.fulfilled):
        raise typer.Exit(1)
