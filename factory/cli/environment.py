"""Documents of a whole environment: `factory sbom TARGET` and `factory export pylock`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from factory.cli import _app
from factory.cli._app import app, plain, settings

OutputOpt = Annotated[str | None, typer.Option(
    "--output", "-o", help="Write here (- for standard output).")]
IndexOpt = Annotated[Path | None, typer.Option(
    "--index", help="The index directory (default: the state's).")]
UrlOpt = Annotated[str | None, typer.Option(
    "--index-url", help="The URL the index is served at (default: index.url).")]


def _write(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    from factory._internal.atomic import write_text

    write_text(Path(output), text)
    _app.out.print(f"wrote {output}", highlight=False, markup=False)


def _matches(target: Path, index: Path | None):  # type: ignore[no-untyped-def]
    from factory.environment import match, read_pins
    from factory.verify.view import IndexView

    s = settings()
    _kind, pins = read_pins(target)
    return match(IndexView(index or s.index_dir, s.index_url), pins)


@app.command()
def sbom(
    target: Annotated[Path, typer.Argument(
        help="recipes.lock, a requirements file of name==version lines, or a venv.")],
    output: OutputOpt = "-",
    index: IndexOpt = None,
    index_url: UrlOpt = None,
) -> None:
    """One CycloneDX 1.6 SBOM of a whole environment: each wheel the index serves for
    it, with its sha256 and links to its provenance, SBOM and build record. Exit 1 when
    the index serves a pin no wheel (the SBOM still lists it, marked)."""
    from factory.attest.environment import environment_sbom
    from factory.attest.sbom import sbom_bytes

    matches = _matches(target, index)
    document = environment_sbom(matches, index_url or settings().index_url, target.name)
    _write(sbom_bytes(document).decode("utf-8") + "\n", output or "-")
    problems = [m.problem for m in matches if m.problem]
    for problem in problems:
        plain(f"not served: {problem}")
    if problems:
        raise typer.Exit(1)


export_app = typer.Typer(help="Lock files for installers, from what the index serves.",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("pylock")
def export_pylock(
    requirements: Annotated[Path | None, typer.Option(
        "--requirements", "-r", help="A requirements file of name==version lines "
        "(default: the approved set, recipes.lock).")] = None,
    output: OutputOpt = "pylock.toml",
    index: IndexOpt = None,
    index_url: UrlOpt = None,
) -> None:
    """A PEP 751 pylock.toml: each package's wheels on the index with their sha256, and
    attestation-identities naming the factory's signing identity."""
    from factory.export import pylock
    from factory.sign.pep740 import factory_publisher

    s = settings()
    matches = _matches(requirements or s.lock_path, index)
    _write(pylock(matches, index_url or s.index_url, factory_publisher(s)),
           output or "pylock.toml")
