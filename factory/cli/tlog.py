"""`factory log publish|verify|monitor`: the embedded transparency log, published and watched."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from factory.cli import _app
from factory.cli._app import JsonOpt, app, emit_json, plain, settings

if TYPE_CHECKING:
    from factory.config import Settings
    from factory.sign.monitor import LogSource, Signature, TrustedRoot

log_app = typer.Typer(help="The embedded transparency log: publish it, verify it, watch "
                      "who signs.", no_args_is_help=True)
app.add_typer(log_app, name="log")

IndexOpt = Annotated[str | None, typer.Option(
    "--index", help="The index: its URL (http(s)://...) or its directory. Default: this "
    "factory's index directory.")]
RootOpt = Annotated[Path | None, typer.Option(
    "--trusted-root", help="The Sigstore trusted root whose log key signs the checkpoints. "
    "Default: keys/trusted_root.json of this factory, else the index's own copy.")]


def _open(index: str | None, trusted_root: Path | None,
          ) -> tuple[Settings, LogSource, TrustedRoot, str]:
    from factory.sign.monitor import given_root, open_source, trusted_root_from

    s = settings()
    given = given_root(trusted_root) if trusted_root is not None else None  # before the log
    source = open_source(index if index is not None else s.index_dir)
    root, where = given or trusted_root_from(None, source, s.public_keys_dir /
                                             "trusted_root.json")
    return s, source, root, where


@log_app.command("publish")
def log_publish() -> None:
    """Publish the embedded log's entries and a signed checkpoint under the index's /log/.

    Signing does this by itself at the end of every signing session; this is for an
    index directory restored or moved."""
    from factory.sign.sign import publish_log

    s = settings()
    size = publish_log(s)
    _app.out.print(f"published the log ({size} entries) in {s.index_dir / 'log'}",
                   highlight=False)


@log_app.command("verify")
def log_verify(
    index: IndexOpt = None,
    from_: Annotated[Path | None, typer.Option(
        "--from", help="An earlier checkpoint (a file) the log must extend. Default: the one "
        "kept from the last run against this index.")] = None,
    trusted_root: RootOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the published log: the checkpoint's signature, every entry against its root,
    and that it extends the checkpoint seen before (a log that rewrote history fails)."""
    from factory.sign.monitor import given_checkpoint, verify_log

    # a regular file, bounded (not a FIFO, not /dev/zero), a checkpoint: before the log
    older = given_checkpoint(from_) if from_ is not None else None
    s, source, root, where = _open(index, trusted_root)
    result = verify_log(source, root, s.state_dir, older)
    log = result.log
    if as_json:
        emit_json({"origin": log.origin, "size": log.size, "root": log.checkpoint.root.hex(),
                   "trusted_root": where,
                   "previous_size": result.previous.size if result.previous else None,
                   "kept": str(result.kept) if result.kept else None})
        return
    plain(f"OK: {log.location}: log {log.origin!r}, {log.size} entries, checkpoint signed "
          f"by the log key of {where}", _app.out)
    if result.previous is not None:
        plain(f"  consistent with the earlier checkpoint of {result.previous.size} entries",
              _app.out)
    else:
        plain("  no earlier checkpoint to compare with (first run): kept this one", _app.out)


@log_app.command("monitor")
def log_monitor(
    identity: Annotated[str | None, typer.Option(
        "--identity", help="List the entries this identity (certificate SAN) signed. "
        "Default: every entry.")] = None,
    issuer: Annotated[str | None, typer.Option(
        "--issuer", help="Only entries whose OIDC issuer is this.")] = None,
    expect: Annotated[list[str] | None, typer.Option(
        "--expect", help="An identity allowed to sign (repeatable): any entry signed by "
        "another is flagged and the exit code is 1.")] = None,
    index: IndexOpt = None,
    trusted_root: RootOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List who signed what in the published log, newest first: time, log index, digest,
    identity. Exit 1 when an entry names an identity outside --expect, or a certificate
    no CA of the trusted root issued."""
    from factory.sign.monitor import monitor, verify_log

    s, source, root, _where = _open(index, trusted_root)
    log = verify_log(source, root, s.state_dir).log
    watch = monitor(log, identity, issuer, expect or ())
    if as_json:
        emit_json({"origin": log.origin, "size": log.size,
                   "entries": [_row(e) for e in watch.listed],
                   "unexpected": [_row(e) for e in watch.unexpected]})
    else:
        for e in watch.listed:
            plain(_line(e), _app.out)
        plain(f"{len(watch.listed)} of {log.size} entries"
              + (f" signed by {identity}" if identity else ""), _app.err)
        if (identity or issuer) and not watch.listed and watch.seen:
            plain("  identities in the log (an identity is compared exactly): "
                  + ", ".join(sorted(watch.seen)[:5])
                  + (f" and {len(watch.seen) - 5} more" if len(watch.seen) > 5 else ""),
                  _app.err)
        for e in watch.unexpected:
            plain("UNEXPECTED " + _line(e) + ("" if e.trusted_ca else
                                              " (certificate not from the trusted CA)"),
                  _app.err)
    if watch.alarm:
        raise typer.Exit(1)


def _row(e: Signature) -> dict[str, Any]:
    return {"time": e.when, "index": e.index, "kind": e.kind, "digest": e.digest,
            "identity": e.identity, "issuer": e.issuer, "trusted_ca": e.trusted_ca}


def _line(e: Signature) -> str:
    return f"{e.when}  {e.index:>7}  {e.kind:12}  {e.digest}  {e.identity}"
