"""The `factory` command: thin. It parses, calls the library, and prints."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table

from factory import __version__, pipeline
from factory.config import Settings, load_settings
from factory.errors import FactoryError
from factory.recipes import check_recipes

app = typer.Typer(
    name="factory",
    help="Build approved Python components from source, sign and attest them, and serve "
    "them as a private index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
recipes_app = typer.Typer(help="Inspect the approved components (recipes/*.toml).",
                          no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class _State:
    settings: Settings | None = None
    debug = False


def settings() -> Settings:
    if _State.settings is None:
        _State.settings = load_settings()
    return _State.settings


def emit_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def _version(value: bool) -> None:
    if value:
        out.print(f"factory {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    _State.debug = debug


# -- recipes ---------------------------------------------------------------------

@recipes_app.command("check")
def recipes_check(as_json: JsonOpt = False) -> None:
    """Validate every recipe; report every error with its file and field."""
    recipes, errors = check_recipes(settings())
    if as_json:
        emit_json({"recipes": sorted(recipes), "errors": [e.message for e in errors]})
    else:
        for error in errors:
            err.print(f"[red]error:[/] {error.message}", highlight=False)
        if not errors:
            out.print(f"{len(recipes)} recipes OK")
    if errors:
        raise typer.Exit(1)


@recipes_app.command("list")
def recipes_list(as_json: JsonOpt = False) -> None:
    """List the approved components and their policy."""
    recipes, _ = check_recipes(settings())
    if as_json:
        emit_json([{"name": r.key, "kind": r.kind, "versions": str(r.versions),
                    "track": r.track, "licenses": list(r.licenses)} for r in recipes.values()])
        return
    table = Table("name", "kind", "versions", "track", "licences")
    for r in recipes.values():
        table.add_row(r.key, r.kind, str(r.versions), r.track, ", ".join(r.licenses))
    out.print(table)


# -- lock and fetch ----------------------------------------------------------------

@app.command()
def lock(
    update: Annotated[bool, typer.Option("--update", help="Move pins as far as policy allows.")]
    = False,
    check: Annotated[bool, typer.Option("--check", help="Offline: fail when recipes.lock does "
                                        "not match the recipes.")] = False,
    names: Annotated[list[str] | None, typer.Argument(help="With --update: only these.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Resolve the recipes against upstream and write recipes.lock."""
    if check:
        problems = pipeline.check_stage(settings())
        if as_json:
            emit_json({"ok": not problems, "problems": problems})
        for problem in problems if not as_json else []:
            err.print(f"[red]mismatch:[/] {problem}", highlight=False)
        if problems:
            raise typer.Exit(1)
        if not as_json:
            out.print("recipes.lock matches the recipes")
        return
    target: bool | set[str] = set(map(_key, names)) if (update and names) else update
    with err.status("resolving against upstream ...") as status:
        lock_, changes = pipeline.lock_stage(
            settings(), target, on_fetch=lambda f: status.update(f"reading {f} ..."))
    if as_json:
        emit_json({"components": len(lock_.components),
                   "changes": [c.__dict__ for c in changes]})
        return
    for change in changes:
        out.print(f"  {change.describe()}", highlight=False)
    out.print(f"locked {len(lock_.components)} sdists "
              f"({sum(c.is_primary for c in lock_.components)} approved components)"
              + ("" if changes else "; nothing moved"))


def _key(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


@app.command()
def fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Only these components.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download every locked sdist into the cache, verifying size and sha256."""
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  console=err, transient=True, disable=as_json) as progress:
        tasks: dict[str, Any] = {}

        def report(filename: str, done: int, total: int | None) -> None:
            if filename not in tasks:
                tasks[filename] = progress.add_task(filename, total=total)
            progress.update(tasks[filename], completed=done)

        fetched = pipeline.fetch_stage(settings(), set(map(_key, names)) if names else None,
                                       report)
    if as_json:
        emit_json([{"name": f.component.name, "version": f.component.version,
                    "path": str(f.path), "sha256": f.component.sdist.sha256} for f in fetched])
        return
    for item in fetched:
        out.print(f"  {item.component.sdist.filename}  sha256:{item.component.sdist.sha256[:16]}…",
                  highlight=False)
    out.print(f"fetched and verified {len(fetched)} sdists")


def main() -> None:
    """Entry point: user-caused errors print one line and exit non-zero, no traceback."""
    try:
        app()
    except FactoryError as exc:
        if _State.debug or os.environ.get("FACTORY_DEBUG"):
            raise
        err.print(exc.diagnostics(), highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
