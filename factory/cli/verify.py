"""The auditor's command: verify."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from factory.cli import _app
from factory.cli._app import (
    JsonOpt,
    app,
    settings,
)


@app.command()
def verify(
    target: Annotated[str | None, typer.Argument(
        help="A wheel file, NAME==VERSION, a requirements file with hashes, a pylock.toml or "
        "uv.lock, or a venv path.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every file of the index.")] = False,
    rebuild_spec: Annotated[str | None, typer.Option(
        "--rebuild", help="NAME==VERSION: rebuild from the recorded provenance and compare.")]
    = None,
    upstream_spec: Annotated[str | None, typer.Option(
        "--upstream", help="NAME==VERSION: compare with upstream's wheel (pure Python).")]
    = None,
    as_json: JsonOpt = False,
    html: Annotated[Path | None, typer.Option(help="Write an HTML audit report here.")] = None,
    index: Annotated[Path | None, typer.Option(help="The index directory (default: the "
                                                 "state's).")] = None,
    trusted_root: Annotated[Path | None, typer.Option(help="Pinned Sigstore trusted root.")]
    = None,
    owner_key: Annotated[Path | None, typer.Option(help="Pinned in-toto layout owner key.")]
    = None,
    identity: Annotated[str | None, typer.Option(help="Expected signer identity (SAN).")] = None,
    issuer: Annotated[str | None, typer.Option(help="Expected OIDC issuer.")] = None,
    builder_id: Annotated[list[str] | None, typer.Option(help="Allowed builder id(s).")] = None,
    advisories: Annotated[str | None, typer.Option(help="OSV source (directory, zip, URL).")]
    = None,
    no_advisories: Annotated[bool, typer.Option("--no-advisories")] = False,
    ignore: Annotated[list[str] | None, typer.Option(help="Installed names to skip (venvs).")]
    = None,
    workers: Annotated[int | None, typer.Option(help="Parallel workers.")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Every check.")] = False,
) -> None:
    """Verify artifacts offline: digests, Sigstore, SLSA provenance, SBOM, in-toto,
    advisories. Exit 0 all pass, 1 any fails, 2 usage error."""
    from factory.verify import run as run_verify

    code = run_verify(settings(), target, everything=everything, rebuild=rebuild_spec,
                      upstream=upstream_spec, json_output=as_json, html=html, verbose=verbose,
                      console=_app.out, index_dir=index, trusted_root=trusted_root,
                      owner_key=owner_key, identity=identity, issuer=issuer,
                      builder_ids=tuple(builder_id or ()), advisories=advisories,
                      check_advisories=not no_advisories, ignore=tuple(ignore or ()),
                      workers=workers)
    raise typer.Exit(code)


# -- orchestration ----------------------------------------------------------------------

