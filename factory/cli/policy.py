"""Commands of the platform team's policy: recipes, lock, fetch, status."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from factory.cli import _app
from factory.cli._app import (
    JsonOpt,
    _key,
    app,
    cell,
    emit_json,
    plain,
    settings,
)
from factory.errors import FactoryError

if TYPE_CHECKING:
    from factory.approve import AddReport

recipes_app = typer.Typer(help="Inspect the approved components (recipes/*.toml).",
                          no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")


@recipes_app.command("check")
def recipes_check(as_json: JsonOpt = False) -> None:
    """Validate every recipe; report every error with its file and field."""
    from factory.recipes import check_recipes  # imported by the commands that use it

    recipes, errors = check_recipes(settings())
    if as_json:
        emit_json({"recipes": sorted(recipes), "errors": [e.message for e in errors]})
    else:
        for error in errors:
            plain(f"error: {error.message}")
        if not errors:
            _app.out.print(f"{len(recipes)} recipes OK")
    if errors:
        raise typer.Exit(1)


@recipes_app.command("list")
def recipes_list(as_json: JsonOpt = False) -> None:
    """List the approved components and their policy."""
    from factory.recipes import check_recipes

    recipes, _ = check_recipes(settings())
    if as_json:
        emit_json([{"name": r.key, "kind": r.kind, "versions": str(r.versions),
                    "track": r.track, "licenses": list(r.licenses)} for r in recipes.values()])
        return
    from rich.table import Table

    table = Table("name", "kind", "versions", "track", "licences")
    for r in recipes.values():
        table.add_row(*map(cell, (r.key, r.kind, str(r.versions), r.track,
                                  ", ".join(r.licenses))))
    _app.out.print(table)


@app.command()
def add(
    names: Annotated[list[str] | None, typer.Argument(
        metavar="NAME[SPEC]...", help='Projects to approve, e.g. "flask>=3,<4" cffi.')] = None,
    catalogues: Annotated[list[Path] | None, typer.Option(
        "--from", metavar="FILE", help="Also every [[project]] of a catalogue file (e.g. "
        "catalogues/top-pypi.toml), with what its [[reviewed]] tables allow; repeatable.")]
    = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be added; "
                                          "write nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Approve projects and everything they need: write a recipe for each project of
    their runtime and build closure not approved yet (within the site license policy),
    then lock once. Exit 1 when anything needs a human."""
    from factory.approve import add as add_projects
    from factory.approve import read_catalogue

    items, reviewed = list(names or ()), {}
    for path in catalogues or ():
        catalogue = read_catalogue(path)
        items += catalogue.items
        reviewed.update(catalogue.reviewed)
    with _app.err.status("walking upstream ..."):
        report = add_projects(settings(), items, dry_run=dry_run, reviewed=reviewed)
    if as_json:
        emit_json(_add_json(report, dry_run))
    else:
        _print_add(report, dry_run)
    if not report.ok:
        raise typer.Exit(1)


def _add_json(report: AddReport, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "added": [{"name": p.key, "version": p.version, "versions": p.versions,
                   "kind": p.kind, "licenses": list(p.licenses), "why": p.reasons[0],
                   "skipped": [s.__dict__ for s in p.skipped]} for p in report.added],
        "needs_human": [{"name": n.key, "problem": n.problem, "hint": n.hint,
                         "needed_by": list(n.needed_by)} for n in report.needs_human],
        "held_back": [{"name": p.key, "waits_for": cause} for p, cause in report.held_back],
        "approved_already": report.approved_already,
        "written": [str(p) for p in report.written],
        "locked": report.locked,
        "lock_problems": [{"name": p.name, "problem": p.message, "hint": p.hint}
                          for p in report.lock_problems],
    }


def _print_add(report: AddReport, dry_run: bool) -> None:
    verb = "would add" if dry_run else "added"
    for p in report.added:
        passed = f"; passed over {', '.join(s.version for s in p.skipped)}" if p.skipped else ""
        plain(f"  {verb} {p.key} {p.version} ({p.kind}, {p.license}): {p.reasons[0]}{passed}",
              _app.out)
    for p, cause in report.held_back:
        plain(f"  held back {p.key} {p.version}: needs {cause}, which needs a human", _app.out)
    for need in report.needs_human:
        by = f" (needed by {', '.join(need.needed_by)})" if need.needed_by else ""
        plain(f"error: {need.key}: {need.problem}{by} (hint: {need.hint})")
    for problem in report.lock_problems:
        plain(problem.error(problem.describe(), problem.hint).diagnostics())
    locked = f"; locked {report.locked} sdists" if report.locked is not None else ""
    _app.out.print(f"{len(report.added)} recipe(s) {verb}, {len(report.needs_human)} need a "
                   f"human, {len(report.held_back)} held back{locked}", highlight=False)


# -- lock and fetch ----------------------------------------------------------------

@app.command()
def lock(
    update: Annotated[bool, typer.Option("--update", help="Move pins as far as policy allows.")]
    = False,
    check: Annotated[bool, typer.Option("--check", help="Offline: fail when recipes.lock does "
                                        "not match the recipes.")] = False,
    names: Annotated[list[str] | None, typer.Argument(help="With --update: only these.")] = None,
    accept: Annotated[list[str] | None, typer.Option(
        "--accept-change", metavar="NAME", help="Accept NAME's upstream alarm (a pinned file "
        "re-uploaded or moved): re-pin it to what upstream serves now.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Resolve the recipes against upstream and write recipes.lock. Exit 1 when upstream
    changed a pinned file (an alarm: the old pin is kept)."""
    from factory.lock import alarm_error, check_stage, lock_report

    if check:
        problems = check_stage(settings())
        if as_json:
            emit_json({"ok": not problems, "problems": problems})
        for problem in problems if not as_json else []:
            plain(f"mismatch: {problem}")
        if problems:
            raise typer.Exit(1)
        if not as_json:
            _app.out.print("recipes.lock matches the recipes")
        return
    target: bool | set[str] = set(map(_key, names)) if (update and names) else update
    with _app.err.status("resolving against upstream ...") as status:
        report = lock_report(
            settings(), target, on_fetch=lambda f: status.update(f"reading {f} ..."),
            accept=set(map(_key, accept or ())))
    lock_, changes = report.lock, report.changes
    if as_json:
        emit_json({"components": len(lock_.components),
                   "changes": [c.__dict__ for c in changes],
                   "alarms": [a.__dict__ for a in report.alarms],
                   "problems": [{"name": p.name, "problem": p.message, "hint": p.hint,
                                 "held_back": list(p.waiting)} for p in report.problems],
                   "advisories_not_checked": report.advisories_problem})
    else:
        for change in changes:
            plain(f"  {change.describe()}", _app.out)
        for alarm in report.alarms:  # upstream text: printed plain, controls escaped
            plain(f"  ALARM {alarm.describe()}")
        kept = f"; {len(report.alarms)} pin(s) kept under upstream alarm" if report.alarms \
            else "" if changes else "; nothing moved"
        _app.out.print(f"locked {len(lock_.components)} sdists "
                  f"({sum(c.is_primary for c in lock_.components)} approved components){kept}")
    for unlocked in report.problems if not as_json else []:  # each one line, with its hint
        plain(unlocked.error(unlocked.describe(), unlocked.hint).diagnostics())
    if report.advisories_problem and not as_json:  # locked, but not checked: said loudly
        plain(f"warning: advisories NOT CHECKED while locking: {report.advisories_problem} "
              "(the watch cycle checks what is published once the source answers)")
    if report.alarms:
        raise alarm_error(report.alarms)
    if report.problems:
        raise typer.Exit(1)


@app.command()
def fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Only these components.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download every locked sdist into the cache, verifying size and sha256."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from factory.fetch import fetch_stage

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  console=_app.err, transient=True, disable=as_json) as progress:
        tasks: dict[str, Any] = {}

        def report(filename: str, done: int, total: int | None) -> None:
            if filename not in tasks:
                tasks[filename] = progress.add_task(filename, total=total)
            progress.update(tasks[filename], completed=done)

        failed: dict[str, str] = {}
        fetched = fetch_stage(settings(), set(map(_key, names)) if names else None,
                                       report, failed)
    if as_json:
        emit_json([{"name": f.component.name, "version": f.component.version,
                    "path": str(f.path), "sha256": f.component.sdist.sha256} for f in fetched])
    else:
        for item in fetched:
            _app.out.print(f"  {item.component.sdist.filename}  "
                      f"sha256:{item.component.sdist.sha256[:16]}…", highlight=False)
        _app.out.print(f"fetched and verified {len(fetched)} sdists")
    _refused_at_fetch(failed)


def _refused_at_fetch(failed: dict[str, str]) -> None:
    """One line per component refused at fetch (the others went on), then fail."""
    for component, reason in sorted(failed.items()):
        plain(f"  refused {component}: {reason}")
    if failed:
        raise FactoryError(f"{len(failed)} component(s) refused at fetch; the others were fetched",
                           "each line above says why; `factory status` shows upstream alarms")


# -- build ------------------------------------------------------------------------



@app.command()
def status(
    offline: Annotated[bool, typer.Option(help="Do not ask upstream.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Each component: allowed range, newest upstream, locked, published, advisories."""
    from factory.watch import component_status

    rows = component_status(settings(), offline)
    if as_json:
        emit_json([r.to_dict() for r in rows])
        return
    from rich.table import Table

    table = Table("component", "kind", "allowed", "upstream", "locked", "published",
                  "advisories", "waiting")
    for r in rows:
        behind = r.published != r.locked
        table.add_row(*map(cell, (r.name, r.kind, r.allowed, r.newest_upstream or "?",
                                  r.locked or "-")),
                      cell(r.published or "-", "yellow" if behind else ""),
                      cell(", ".join(r.advisories)
                           or ("NOT CHECKED" if r.advisories_problem else "none"),
                           "yellow" if r.advisories_problem else ""),  # ids from the OSV source
                      cell(f"{r.waiting_days:g} d" if r.waiting_days is not None else ""))
    _app.out.print(table)
    for r in rows:  # upstream text: printed plain, controls escaped
        if r.alarm:
            plain(f"ALARM {r.name} {r.alarm} (pin kept; `factory lock --accept-change "
                  f"{r.name}` if legitimate)")
        if r.refused:
            plain(f"REFUSED {r.name} {r.refused}")
        if r.equivalence_alarm:
            plain(f"ALARM {r.name} no longer equivalent to upstream: {r.equivalence_alarm}")
    problem = rows[0].advisories_problem if rows else None
    if problem:
        plain(f"advisories checked against a {problem}" if problem.startswith("stale")
              else f"advisories NOT CHECKED: {problem}")


@app.command()
def why(
    requirement: Annotated[str, typer.Argument(
        metavar="NAME[==VERSION]", help="A project name, optionally with one version.")],
    offline: Annotated[bool, typer.Option(
        help="Do not ask upstream whether the name exists there.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Why NAME (==VERSION) is or is not installable from the index, and what instead:
    the answer `factory serve` gives in its 404. Exit 0 when served, 1 otherwise."""
    from factory.watch import ask_upstream, why_knowledge
    from factory.why import DID_YOU_MEAN, NOT_APPROVED, answer, parse_request, with_upstream

    try:
        name, version = parse_request(requirement)
    except ValueError as exc:  # one plain line (Rich's usage box would quote it in a frame)
        plain(f"error: NAME[==VERSION]: {exc}")
        raise typer.Exit(2) from None
    found = answer(why_knowledge(settings(), name), name, version)
    if not offline and found.verdict in (NOT_APPROVED, DID_YOU_MEAN):
        found = with_upstream(found, ask_upstream(settings(), name))
    if as_json:
        emit_json(found.to_dict())
    else:  # the name as asked and reasons from disk: printed plain, controls escaped
        plain(found.message(), _app.out)
    if not found.installable:
        raise typer.Exit(1)
