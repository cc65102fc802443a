"""The `factory` command: thin. It parses, calls the library, and prints."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from factory import __version__
from factory.config import Settings, load_settings
from factory.errors import FactoryError, FileSystemError, printable
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


def plain(text: str, console: Console | None = None) -> None:
    """Print a line that quotes what others wrote (upstream, builds, files on disk):
    as text, never as Rich markup, emoji or highlighting, every control escaped."""
    (console or err).print(printable(text), highlight=False, markup=False, emoji=False,
                           soft_wrap=True)


def cell(text: str, style: str = "") -> Text:
    """A table cell that quotes what others wrote: text, never markup, controls escaped
    (Rich applies markup in plain string cells and sends their escapes raw)."""
    return Text(printable(text, keep=""), style=style)


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
            plain(f"error: {error.message}")
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
        table.add_row(*map(cell, (r.key, r.kind, str(r.versions), r.track,
                                  ", ".join(r.licenses))))
    out.print(table)


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
    from factory import pipeline
    from factory.lock import alarm_error

    if check:
        problems = pipeline.check_stage(settings())
        if as_json:
            emit_json({"ok": not problems, "problems": problems})
        for problem in problems if not as_json else []:
            plain(f"mismatch: {problem}")
        if problems:
            raise typer.Exit(1)
        if not as_json:
            out.print("recipes.lock matches the recipes")
        return
    target: bool | set[str] = set(map(_key, names)) if (update and names) else update
    with err.status("resolving against upstream ...") as status:
        report = pipeline.lock_report(
            settings(), target, on_fetch=lambda f: status.update(f"reading {f} ..."),
            accept=set(map(_key, accept or ())))
    lock_, changes = report.lock, report.changes
    if as_json:
        emit_json({"components": len(lock_.components),
                   "changes": [c.__dict__ for c in changes],
                   "alarms": [a.__dict__ for a in report.alarms]})
    else:
        for change in changes:
            plain(f"  {change.describe()}", out)
        for alarm in report.alarms:  # upstream text: printed plain, controls escaped
            plain(f"  ALARM {alarm.describe()}")
        kept = f"; {len(report.alarms)} pin(s) kept under upstream alarm" if report.alarms \
            else "" if changes else "; nothing moved"
        out.print(f"locked {len(lock_.components)} sdists "
                  f"({sum(c.is_primary for c in lock_.components)} approved components){kept}")
    if report.alarms:
        raise alarm_error(report.alarms)


def _key(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


@app.command()
def fetch(
    names: Annotated[list[str] | None, typer.Argument(help="Only these components.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download every locked sdist into the cache, verifying size and sha256."""
    from factory import pipeline

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  console=err, transient=True, disable=as_json) as progress:
        tasks: dict[str, Any] = {}

        def report(filename: str, done: int, total: int | None) -> None:
            if filename not in tasks:
                tasks[filename] = progress.add_task(filename, total=total)
            progress.update(tasks[filename], completed=done)

        failed: dict[str, str] = {}
        fetched = pipeline.fetch_stage(settings(), set(map(_key, names)) if names else None,
                                       report, failed)
    if as_json:
        emit_json([{"name": f.component.name, "version": f.component.version,
                    "path": str(f.path), "sha256": f.component.sdist.sha256} for f in fetched])
    else:
        for item in fetched:
            out.print(f"  {item.component.sdist.filename}  "
                      f"sha256:{item.component.sdist.sha256[:16]}…", highlight=False)
        out.print(f"fetched and verified {len(fetched)} sdists")
    _refused_at_fetch(failed)


def _refused_at_fetch(failed: dict[str, str]) -> None:
    """One line per component refused at fetch (the others went on), then fail."""
    for component, reason in sorted(failed.items()):
        plain(f"  refused {component}: {reason}")
    if failed:
        raise FactoryError(f"{len(failed)} component(s) refused at fetch; the others were fetched",
                           "each line above says why; `factory status` shows upstream alarms")


# -- build ------------------------------------------------------------------------

builder_app = typer.Typer(help="The builder image the containers run.", no_args_is_help=True)
app.add_typer(builder_app, name="builder")
keys_app = typer.Typer(help="Signing keys and the embedded Sigstore authority.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
authority_app = typer.Typer(help="The embedded Sigstore authority (CA, log, tokens).",
                            no_args_is_help=True)
app.add_typer(authority_app, name="authority")
prefect_app = typer.Typer(help="The embedded Prefect server that the demo and the CLI start.",
                          no_args_is_help=True)
app.add_typer(prefect_app, name="prefect")


@prefect_app.command("stop")
def prefect_stop() -> None:
    """Stop the embedded Prefect server of this state directory (it outlives the demo)."""
    from flows.server import stop_server

    stopped = stop_server(settings())
    out.print("stopped the embedded Prefect server" if stopped
              else "no embedded Prefect server was running", highlight=False)


@builder_app.command("bootstrap")
def builder_bootstrap(
    packages: Annotated[str, typer.Option(help="Extra Debian packages, comma-separated.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Make the builder image offline (debootstrap + docker import), or reuse it."""
    from factory.builders.image import bootstrap_image

    extra = [p for p in packages.split(",") if p]
    with err.status("making the builder image (about a minute the first time) ..."):
        image = bootstrap_image(settings(), extra)
    if as_json:
        emit_json({"tag": image.tag, "id": image.id, "origin": image.origin})
    else:
        out.print(f"{image.tag}  {image.id}  ({image.origin})", highlight=False)


@app.command()
def plan(
    names: Annotated[list[str] | None, typer.Argument(help="Only these components.")] = None,
) -> None:
    """Print the build order and why each component is in it."""
    from factory.plan import make_plan

    # Names, reasons and the builds' reported requirements: text, never markup.
    plain(make_plan(settings(), list(map(_key, names)) if names else None).explain(), out)


@app.command()
def build(
    names: Annotated[list[str] | None, typer.Argument(help="Only these (and the build tools "
                                                      "they still lack).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Parallel builds (default: cores).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Build from source in network-less containers, without an orchestrator."""
    from factory import pipeline
    from factory.plan import execute, make_plan

    s = settings()
    refused: dict[str, str] = {}
    pipeline.fetch_stage(s, failed=refused)  # a refused one fails its node, not the build
    for component, reason in sorted(refused.items()):
        plain(f"  refused {component}: {reason}")
    the_plan = make_plan(s, list(map(_key, names)) if names else None)
    with err.status(f"building {len(the_plan.order)} components ..."):
        records = execute(s, the_plan, concurrency)
    if as_json:
        emit_json([{"component": r.component, "version": r.version, "wheel": r.wheel_filename,
                    "sha256": r.wheel_sha256} for r in records])
        return
    for r in records:
        out.print(f"  {r.wheel_filename}  sha256:{r.wheel_sha256[:16]}…", highlight=False)
    out.print(f"{len(records)} wheels built from source in {s.wheels_dir}")


# -- keys, sign, publish ---------------------------------------------------------------

@keys_app.command("init")
def keys_init(as_json: JsonOpt = False) -> None:
    """Create the per-role keys and the embedded authority (never overwrites)."""
    from factory.keys import ROLES, key_info
    from factory.release import ensure_keys

    s = settings()
    ensure_keys(s)
    infos = [key_info(s, role) for role in ROLES]
    if as_json:
        emit_json([{"role": i.role, "keyid": i.keyid, "spki_sha256": i.spki_sha256,
                    "public_key": str(i.public_key_path)} for i in infos])
        return
    for i in infos:
        out.print(f"  {i.role:9} {i.keyid[:16]}…  {i.public_key_path}", highlight=False)
    out.print(f"private keys in {s.private_keys_dir} (never commit them); "
              f"public material in {s.public_keys_dir}")


@keys_app.command("show")
def keys_show(as_json: JsonOpt = False) -> None:
    """Show the public keys' ids and fingerprints."""
    from factory.keys import ROLES, key_info

    infos = [key_info(settings(), role) for role in ROLES]
    if as_json:
        emit_json([{"role": i.role, "keyid": i.keyid, "spki_sha256": i.spki_sha256}
                   for i in infos])
        return
    table = Table("role", "key id", "SPKI sha256")
    for i in infos:
        table.add_row(i.role, i.keyid, i.spki_sha256)
    out.print(table)


@authority_app.command("serve")
def authority_serve(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8710) -> None:
    """Run the embedded authority so stock sigstore tools can sign against it."""
    from factory.signing.authority import serve_authority

    serve_authority(settings(), port)


@app.command()
def publish(as_json: JsonOpt = False) -> None:
    """Attest, sign and publish every built wheel the index does not serve yet."""
    from factory.builders.record import RECORD_SUFFIX, BuildRecord
    from factory.release import release_all

    s = settings()
    records = [BuildRecord.load(p) for p in sorted(s.wheels_dir.glob("*" + RECORD_SUFFIX))]
    with err.status(f"signing and publishing up to {len(records)} wheels ..."):
        report = release_all(s, records)
    if as_json:
        emit_json({"published": [p.__dict__ for p in report.published],
                   "refused": [r.__dict__ for r in report.refused]})
    else:
        for p in report.published:
            out.print(f"  published {p.filename}", highlight=False)
        out.print(f"{len(report.published)} published; index at {s.index_dir}",
                  highlight=False)
    report.raise_for_refusals()  # one line per refused wheel on stderr, exit non-zero


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8700).")] = None,
) -> None:
    """Serve the index (PEP 503/691/658/740) and its human pages."""
    from factory.index.serve import serve as run

    s = settings()
    out.print(f"serving {s.index_dir} at http://{host or s.serve_host}:{port or s.serve_port}/"
              "simple/", highlight=False)
    run(s, host, port)


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

    from factory.index.regen import check_index

    problems = check_index(settings(), deep=not quick)
    if as_json:
        emit_json({"ok": not problems, "problems": problems})
    else:
        for problem in problems:  # names from disk: printed as text, never as markup
            err.print(f"[red]problem:[/] {escape(problem)}", highlight=False)
        if not problems:
            out.print("the index is consistent")
    if problems:
        raise typer.Exit(1)


@index_app.command("rebuild")
def index_rebuild() -> None:
    """Regenerate every page from the published records, and the trust manifest."""
    from factory.index.publish import publish_trust
    from factory.index.regen import rebuild_all
    from factory.release import trust_files

    s = settings()
    trust = trust_files(s)
    if trust:  # an index published before the manifest existed serves no trust file
        publish_trust(s, trust)
    out.print(f"regenerated the pages of {rebuild_all(s)} projects")


@index_app.command("status")
def index_status(
    name: Annotated[str, typer.Argument(help="Project name.")],
    state: Annotated[str, typer.Argument(help="active | archived | quarantined | deprecated")],
    reason: Annotated[str | None, typer.Option(help="Shown to users.")] = None,
) -> None:
    """Set a project's status (PEP 792); quarantined hides every file."""
    from factory.index.publish import set_status

    set_status(settings(), name, state, reason)
    out.print(f"{name}: {state}", highlight=False)


@app.command()
def yank(
    spec: Annotated[str, typer.Argument(help="NAME==VERSION")],
    reason: Annotated[str, typer.Option(help="Why (shown to installers).")] = "",
    undo: Annotated[bool, typer.Option("--undo", help="Unyank instead.")] = False,
) -> None:
    """Yank (PEP 592) a published version, with a reason; never deletes."""
    from factory.errors import FactoryError as _Error
    from factory.index.publish import unyank as do_unyank
    from factory.index.publish import yank as do_yank

    name, sep, version = spec.partition("==")
    if not sep or not name or not version:
        raise _Error(f"{spec!r} is not NAME==VERSION", "for example: factory yank flask==3.1.0")
    files = (do_unyank(settings(), name, version) if undo
             else do_yank(settings(), name, version, reason))
    out.print(f"{'unyanked' if undo else 'yanked'} {len(files)} files of {name} {version}",
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
    from factory.index.upload import upload as run

    result = run(settings(), to, username, password, projects=names, simple_url=simple_url)
    for line in result.skipped:
        out.print(f"  skipped {line}", highlight=False)
    out.print(f"uploaded {len(result.uploaded)}, already there {len(result.present)}, "
              f"skipped {len(result.skipped)}")


# -- verification --------------------------------------------------------------------

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
                      console=out, index_dir=index, trusted_root=trusted_root,
                      owner_key=owner_key, identity=identity, issuer=issuer,
                      builder_ids=tuple(builder_id or ()), advisories=advisories,
                      check_advisories=not no_advisories, ignore=tuple(ignore or ()),
                      workers=workers)
    raise typer.Exit(code)


# -- orchestration ----------------------------------------------------------------------

def _prefect() -> str:
    """Point at a Prefect server (PREFECT_API_URL, or the embedded one) before importing it."""
    from flows.server import ensure_server, ui_url

    with err.status("connecting to the Prefect server (the embedded one starts once) ..."):
        url = ensure_server(settings())
    err.print(f"Prefect UI: {ui_url(url)}", highlight=False)
    return url


@app.command()
def rebuild(
    names: Annotated[list[str] | None, typer.Argument(help="Only these components.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the rebuild flow (fetch, build, attest, sign, publish) on Prefect."""
    _prefect()
    from flows.rebuild import rebuild as flow

    summary = flow(components=list(map(_key, names)) if names else None)
    if as_json:
        emit_json(summary)
    else:
        out.print(", ".join(f"{k} {v}" for k, v in summary.items()), highlight=False)


@app.command()
def watch(
    once: Annotated[bool, typer.Option("--once", help="One cycle, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between cycles.")] = 600,
    as_json: JsonOpt = False,
) -> None:
    """Poll upstream and advisories; rebuild what moved, yank what an advisory hits."""
    import time

    _prefect()
    from flows.watch import watch as flow

    while True:
        started = time.monotonic()
        result = flow()
        if as_json:
            emit_json(result)
        else:
            for line in result["moved"] + result["yanked"]:
                plain(f"  {line}", out)
            for line in result.get("alarms", []):
                plain(f"  ALARM {line}")
            out.print(f"watch cycle done: {len(result['moved'])} moved, "
                      f"{len(result['yanked'])} yanked, {len(result.get('alarms', []))} "
                      "upstream alarms", highlight=False)
        if once:
            return
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


@app.command()
def deploy(interval: Annotated[int, typer.Option(help="Watch every N seconds.")] = 600) -> None:
    """Serve the rebuild and watch flows as Prefect deployments (until interrupted)."""
    _prefect()
    from prefect import serve as serve_deployments

    from flows.deploy import deployments

    serve_deployments(*deployments(interval))  # type: ignore[arg-type]


@app.command()
def status(
    offline: Annotated[bool, typer.Option(help="Do not ask upstream.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Each component: allowed range, newest upstream, locked, published, advisories."""
    from factory.status import component_status

    rows = component_status(settings(), offline)
    if as_json:
        emit_json([r.to_dict() for r in rows])
        return
    table = Table("component", "kind", "allowed", "upstream", "locked", "published",
                  "advisories", "waiting")
    for r in rows:
        behind = r.published != r.locked
        table.add_row(*map(cell, (r.name, r.kind, r.allowed, r.newest_upstream or "?",
                                  r.locked or "-")),
                      cell(r.published or "-", "yellow" if behind else ""),
                      cell(", ".join(r.advisories) or "none"),  # ids from the OSV source
                      cell(f"{r.waiting_days:g} d" if r.waiting_days is not None else ""))
    out.print(table)
    for r in rows:  # upstream text: printed plain, controls escaped
        if r.alarm:
            plain(f"ALARM {r.name} {r.alarm} (pin kept; `factory lock --accept-change "
                  f"{r.name}` if legitimate)")
        if r.refused:
            plain(f"REFUSED {r.name} {r.refused}")


def print_error(exc: FactoryError) -> None:
    """The one place an error reaches the operator's terminal. Messages quote what
    attackers wrote (build logs, file names): printed as plain text (no Rich markup,
    emoji codes or highlighting) with every control character escaped."""
    plain(exc.diagnostics())


def main() -> None:
    """Entry point: user-caused errors print one line and exit non-zero, no traceback."""
    try:
        app()
    except FactoryError as exc:
        if _State.debug or os.environ.get("FACTORY_DEBUG"):
            raise
        print_error(exc)
        sys.exit(exc.exit_code)
    except OSError as exc:  # the machine refused a file operation: where, and why
        if _State.debug or os.environ.get("FACTORY_DEBUG"):
            raise
        error = FileSystemError.from_os_error(exc, _State.settings)
        print_error(error)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
