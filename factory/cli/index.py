"""Commands of the published index: serve, check, rebuild, status, yank, upload."""

from __future__ import annotations

from typing import Annotated

import typer

from factory.cli import _app
from factory.cli._app import (
    JsonOpt,
    app,
    emit_json,
    settings,
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8700).")] = None,
) -> None:
    """Serve the index (PEP 503/691/658/740), its human pages, and the policy API
    (/api/v1/, answers signed by the answers key)."""
    from factory.attest.keys import load_signer
    from factory.errors import SigningError
    from factory.index import Index
    from factory.index.serve import serve as run

    s = settings()
    host, port = host or s.serve_host, port or s.serve_port
    try:
        signer = load_signer(s, "answers")
    except SigningError as exc:
        signer = None
        _app.err.print(f"policy API answers go unsigned: {exc.message} (run `factory keys "
                       "init`, then `factory index rebuild` to serve its public key)",
                       highlight=False, markup=False)
    _app.out.print(f"serving {s.index_dir} at http://{host}:{port}/simple/", highlight=False)
    if (warning := _url_differs(s.index_url, host, port)) is not None:
        _app.err.print(warning, highlight=False, markup=False)
    run(Index.of(s), host, port, signer, s)


def _url_differs(index_url: str, host: str, port: int) -> str | None:
    """A warning when the pages name another address than the one served here (their
    links, stock commands, SBOM and VEX URLs use index.url): a user who copies a
    command from a page would reach another server, or none."""
    from urllib.parse import urlsplit

    url = urlsplit(index_url)
    if url.scheme != "http" or url.hostname is None:
        return None  # served behind a proxy (https, another name): its address is its own
    try:
        named = url.port or 80
    except ValueError:
        return None
    same_host = url.hostname == host or {url.hostname, host} <= {"127.0.0.1", "localhost"}
    if same_host and named == port:
        return None
    return (f"warning: the pages name {index_url} (index.url), not http://{host}:{port}: "
            "their links and commands lead there; set FACTORY_INDEX_URL (or [index] url "
            "in factory.toml) and run `factory index rebuild` to name this address")


index_app = typer.Typer(help="Maintain the published index.", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("check")
def index_check(
    quick: Annotated[bool, typer.Option("--quick", help="Skip re-hashing files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every served page and file against the records: pages, digests, .metadata,
    corrupt records, files no record names. Exit 0 sound, 1 any problem."""
    from rich.markup import escape

    from factory.index import Index

    problems = Index.of(settings()).check(deep=not quick)
    if as_json:
        emit_json({"ok": not problems, "problems": problems})
    else:
        for problem in problems:  # names from disk: printed as text, never as markup
            _app.err.print(f"[red]problem:[/] {escape(problem)}", highlight=False)
        if not problems:
            _app.out.print("the index is consistent")
    if problems:
        raise typer.Exit(1)


@index_app.command("rebuild")
def index_rebuild() -> None:
    """Regenerate every page from the published records, and the trust manifest."""
    from factory.errors import SigningError
    from factory.index import Index
    from factory.publish import publish_tuf, trust_files

    s = settings()
    index = Index.of(s)
    trust = trust_files(s)
    if trust:  # an index published before the manifest existed serves no trust file
        index.publish_trust(trust)
        try:
            publish_tuf(s, index, trust)
        except SigningError as exc:  # an install from before the TUF keys: say so, go on
            _app.err.print(f"TUF repository not updated: {exc.message} (run `factory keys "
                           "init`, then `factory index tuf`)", highlight=False, markup=False)
    _app.out.print(f"regenerated the pages of {index.rebuild()} projects")


@index_app.command("tuf")
def index_tuf(as_json: JsonOpt = False) -> None:
    """Update the index's TUF repository (/tuf/, for `sigstore --instance URL`): re-sign
    its timestamp (and whatever else changed or is close to expiry). Its timestamp lives
    7 days; publishing and the watch cycle re-sign it: run this daily (cron) on an index
    that may go a week with neither, or clients refuse its metadata as expired."""
    from factory.errors import FactoryError
    from factory.index import Index
    from factory.publish import publish_tuf

    s = settings()
    state = publish_tuf(s, Index.of(s))
    if state is None:
        raise FactoryError("no trust config to distribute: the index serves no TUF repository",
                           "the embedded authority's trust config is made by `factory keys "
                           "init`; an organisation's own Sigstore has its own TUF")
    if as_json:
        emit_json({"versions": state.versions, "written": state.written,
                   "expires": {k: v.isoformat() for k, v in state.expires.items()}})
        return
    for role in ("root", "targets", "snapshot", "timestamp"):
        _app.out.print(f"{role:<9} version {state.versions[role]}, expires "
                       f"{state.expires[role]:%Y-%m-%d %H:%M}Z", highlight=False)
    _app.out.print(f"wrote {len(state.written)} file(s)" if state.written
                   else "nothing to re-sign", highlight=False)


@index_app.command("status")
def index_status(
    name: Annotated[str, typer.Argument(help="Project name.")],
    state: Annotated[str, typer.Argument(help="active | archived | quarantined | deprecated")],
    reason: Annotated[str | None, typer.Option(help="Shown to users.")] = None,
) -> None:
    """Set a project's status (PEP 792); quarantined hides every file. It stands
    whatever its recipe or upstream say; setting it active hands it back to them."""
    from factory.index import Index

    Index.of(settings()).set_status(name, state, reason)
    _app.out.print(f"{name}: {state}", highlight=False)


@app.command()
def yank(
    spec: Annotated[str, typer.Argument(help="NAME==VERSION")],
    reason: Annotated[str, typer.Option(help="Why (shown to installers).")] = "",
    undo: Annotated[bool, typer.Option("--undo", help="Unyank instead.")] = False,
) -> None:
    """Yank (PEP 592) a published version, with a reason; never deletes."""
    from factory.errors import FactoryError as _Error
    from factory.index import Index

    name, sep, version = spec.partition("==")
    if not sep or not name or not version:
        raise _Error(f"{spec!r} is not NAME==VERSION", "for example: factory yank flask==3.1.0")
    index = Index.of(settings())
    files = index.unyank(name, version) if undo else index.yank(name, version, reason)
    _app.out.print(f"{'unyanked' if undo else 'yanked'} {len(files)} files of {name} {version}",
              highlight=False)


@app.command()
def upload(
    to: Annotated[str, typer.Option("--to", help="Upload URL of the registry (legacy API).")],
    username: Annotated[str | None, typer.Option(envvar="FACTORY_UPLOAD_USERNAME")] = None,
    password: Annotated[str | None, typer.Option(envvar="FACTORY_UPLOAD_PASSWORD")] = None,
    simple_url: Annotated[str | None, typer.Option(help="Its Simple API, to skip what it "
                                                   "has.")] = None,
    names: Annotated[list[str] | None, typer.Argument(help="Only these projects.")] = None,
) -> None:
    """Mirror the published wheels to an existing registry with twine."""
    from factory.index import Index
    from factory.index.upload import upload as run

    result = run(Index.of(settings()), to, username, password, projects=names,
                 simple_url=simple_url)
    for line in result.skipped:
        _app.out.print(f"  skipped {line}", highlight=False)
    _app.out.print(f"uploaded {len(result.uploaded)}, already there {len(result.present)}, "
              f"skipped {len(result.skipped)}")


# -- verification --------------------------------------------------------------------

