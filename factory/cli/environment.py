"""Documents of a whole environment: `factory sbom TARGET` and `factory export pylock`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from factory.cli import _app
from factory.cli._app import app, plain, settings
from factory.errors import FactoryError

if TYPE_CHECKING:
    from factory.environment import Pin
    from factory.verify.view import IndexView

OutputOpt = Annotated[str | None, typer.Option(
    "--output", "-o", help="Write here (- for standard output).")]
IndexOpt = Annotated[Path | None, typer.Option(
    "--index", help="The index directory (default: the state's).")]
UrlOpt = Annotated[str | None, typer.Option(
    "--index-url", help="The URL the index is served at (default: index.url).")]
# text, not a Path: a URL given by mistake is said to be one (a Path folds its "//")
DirectoryOpt = Annotated[str | None, typer.Option(
    "--index", help="The published index directory (default: the state's); not a URL.")]
IgnoreOpt = Annotated[list[str] | None, typer.Option(
    "--ignore", help="A name to leave out of the document and the exit status (say it "
    "again for more), as `factory verify --ignore`: a venv's pip, say.")]


class OutputError(FactoryError):
    """--output names no file the document can be written to: a usage error (exit 2)."""

    exit_code = 2
    default_hint = "give --output a file path, or - for standard output"


def _output(output: str) -> str:
    """``output``, refused before anything is read when it is a directory (the write
    would fail on its temporary file, and the error would blame the state directory).
    A missing parent is made, as `export pylock -o` and `verify --html` make it."""
    if output != "-" and Path(output).is_dir():
        raise OutputError(f"--output {output} is a directory")
    return output


def _published(index: str | None) -> IndexView:
    """The published index the document is made from, opened as `factory verify` opens
    it: TargetError (exit 2) when there is none there, rather than a document that says
    every pin is not served."""
    from factory.environment import TargetError
    from factory.verify.wholeindex import open_index

    if index and index.startswith(("http://", "https://")):
        raise TargetError(f"--index {index}: factory sbom reads a published index "
                          "directory, not a URL",
                          "pass --index PATH (the directory holding records/ and files/); "
                          "--index-url sets the URL the document links to")
    return open_index(settings(), Path(index) if index else None)


def _say_ignored(ignored: list[Pin], names: list[str], target: Path) -> None:
    """Each pin --ignore left out, and each name it gave that left nothing out (a typo)."""
    from packaging.utils import canonicalize_name

    for pin in ignored:
        plain(f"ignored on request (--ignore): {pin.name}=={pin.version} ({pin.origin})")
    left_out = {pin.name for pin in ignored}
    for name in names:
        if canonicalize_name(name) not in left_out:
            plain(f"--ignore {name}: nothing of that name in {target}")


def _write(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    from factory._internal.atomic import write_shared  # (to hand on: the umask's mode)

    write_shared(Path(output), text.encode("utf-8"))
    _app.out.print(f"wrote {output}", highlight=False, markup=False)


@app.command()
def sbom(
    target: Annotated[Path, typer.Argument(
        help="recipes.lock, a requirements file of name==version lines, or a venv.")],
    output: OutputOpt = "-",
    index: DirectoryOpt = None,
    index_url: UrlOpt = None,
    ignore: IgnoreOpt = None,
) -> None:
    """One CycloneDX 1.6 SBOM of a whole environment: each wheel the index serves for
    it, with its sha256 and links to its provenance, SBOM and build record. Exit 1 when
    the index serves a pin no wheel, or not the one it names (a requirement's --hash is
    another file's; a venv's distribution was installed from elsewhere): the SBOM still
    lists it, marked, without the factory's digest and links. Exit 2 when TARGET,
    --index or --output cannot be used (nothing is written)."""
    from factory.attest.environment import environment_sbom
    from factory.attest.sbom import sbom_bytes
    from factory.environment import leave_out, match, read_pins, vouched

    output = _output(output or "-")
    view = _published(index)
    pins, ignored = leave_out(read_pins(target)[1], ignore or ())
    matches = vouched(match(view, pins))
    document = environment_sbom(matches, index_url or settings().index_url, target.name)
    _write(sbom_bytes(document).decode("utf-8") + "\n", output)
    _say_ignored(ignored, ignore or [], target)
    problems = [m for m in matches if m.problem]
    for found in problems:
        plain(f"{found.status}: {found.problem}")
    if problems:
        raise typer.Exit(1)


export_app = typer.Typer(help="Lock files for installers, from what the index serves.",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("pylock")
def export_pylock(
    requirements: Annotated[Path | None, typer.Option(
        "--requirements", "-r", help="A requirements file of name==version lines, each "
        "with its marker and --hash options (default: the approved set, recipes.lock).")] = None,
    output: OutputOpt = "pylock.toml",
    index: IndexOpt = None,
    index_url: UrlOpt = None,
) -> None:
    """A PEP 751 pylock.toml: each package's wheels on the index with their sha256, and
    attestation-identities naming the factory's signing identity. An installer refuses
    two entries of one name that both apply, so of the approved set each project's
    approved row is exported and rows pinning another version of it (a build
    requirement of one component) are left out and listed. A requirement's marker
    becomes its entry's (two entries of one name need markers that never hold
    together, as far as the export can tell); its --hash options must name wheels the
    index serves. Exit 1 when the index does not serve a pin as named, or two entries
    of one name may both apply; exit 2 when the requirements file, --index-url or
    --output cannot be used. Nothing is written on an error."""
    from factory.export import index_root, pylock_of
    from factory.sign.pep740 import factory_publisher
    from factory.verify.view import IndexView

    target = _output(output or "pylock.toml")  # before anything is read
    s = settings()
    index_root(index_url or s.index_url)  # a bad one refused before anything is read
    exported = pylock_of(requirements or s.lock_path, IndexView(index or s.index_dir, s.index_url),
                         index_url or s.index_url, factory_publisher(s))
    _write(exported.text, target)
    if exported.left_out:
        plain(f"left out {len(exported.left_out)} locked row(s) that pin another version of "
              "a project the lock holds (an installer takes one entry per name):")
    for line in exported.left_out:
        plain(f"  {line}")
