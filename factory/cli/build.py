"""Commands that make artifacts: builder image, keys, plan, build, publish, and the
orchestrated rebuild, watch and deploy."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from factory.cli import _app
from factory.cli._app import (
    JsonOpt,
    _key,
    app,
    emit_json,
    plain,
    settings,
)
from factory.errors import printable

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
    """Stop the embedded Prefect server of this state directory (it outlives the demo),
    and its PostgreSQL cluster with [server] database = "postgresql"."""
    from flows.server import stop_server

    current = settings()
    stopped = stop_server(current)
    what = "Prefect server" + (" and its PostgreSQL cluster"
                               if current.server_database == "postgresql" else "")
    _app.out.print(f"stopped the embedded {what}" if stopped
                   else f"no embedded {what} was running", highlight=False)


@builder_app.command("bootstrap")
def builder_bootstrap(
    packages: Annotated[str, typer.Option(help="Extra Debian packages, comma-separated.")] = "",
    interpreters: Annotated[bool, typer.Option(
        "--interpreters", help="Also build the CPython interpreters [build] interpreters "
        "names (FACTORY_BUILD_INTERPRETERS) from Debian's verified source (once per image; "
        "kept).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make the builder image offline (debootstrap + docker import), or reuse it; and
    the patchelf the repair grafts libraries with, built from Debian's verified source
    in that image (once; kept)."""
    from factory.build import patchelf, repair
    from factory.build.image import bootstrap_image
    from factory.errors import FactoryError

    extra = [p for p in packages.split(",") if p]
    current = settings()
    with _app.err.status("making the builder image (about a minute the first time) ..."):
        image = bootstrap_image(current, extra)
    tool, why = None, ""
    if repair.mode(current) == repair.TOOL:
        with _app.err.status("building patchelf from Debian's source (once per image) ..."):
            try:
                tool = patchelf.for_image(current, image)
            except FactoryError as exc:
                why = exc.message
    built, failed = _bootstrap_interpreters(current) if interpreters else ([], {})
    if as_json:
        emit_json({"tag": image.tag, "id": image.id, "origin": image.origin,
                   "patchelf": tool.describe() if tool else None,
                   **({"patchelf_error": why} if why else {}),
                   **({"interpreters": built, "interpreter_errors": failed}
                      if interpreters else {})})
        if failed:
            raise typer.Exit(1)
        return
    _app.out.print(f"{image.tag}  {image.id}  ({image.origin})", highlight=False)
    if tool is not None:
        _app.out.print(f"patchelf {tool.version}  sha256:{tool.sha256}  (from "
                       f"{tool.source['filename']}, sha256:{tool.source['sha256']})",
                       highlight=False)
    elif why:
        plain(f"warning: no patchelf built from source ({why}); wheels that need a grafted "
              "library keep their linux_* tag", _app.err)
    for entry in built:
        signature = entry["signature"]
        checked = (f"OpenPGP {signature['fingerprint']} ({signature['signed']})"
                   if signature["kind"] == "openpgp" else "no upstream OpenPGP signature")
        how = (f"built in {entry['seconds']:.0f} s" if entry["fresh"]
               else f"kept, checked in {entry['checked_seconds']:.1f} s")
        plain(f"CPython {entry['version']}  {entry['prefix']}  tree sha256:"
              f"{entry['tree_sha256']}  (from {entry['source']['filename']}, sha256:"
              f"{entry['source']['sha256']}; {checked}; {how})", _app.out)
    if interpreters and not built and not failed:
        plain("no interpreter to build: [build] interpreters names only the image's own "
              "3.11 (set it, e.g. FACTORY_BUILD_INTERPRETERS=3.11,3.13,3.14)", _app.out)
    for version, message in failed.items():
        plain(f"error: CPython {version}: {message}")
    if failed:
        raise typer.Exit(1)


def _bootstrap_interpreters(current: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Build (or find and check) each configured interpreter; what each is, or why not."""
    import time

    from factory.build import interpreters
    from factory.build.image import bootstrap_image
    from factory.errors import FactoryError

    pins = interpreters.select(current)
    built: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    if not pins:
        return built, failed
    with _app.err.status("making the interpreter build image (once) ..."):
        image = bootstrap_image(current, interpreters.BUILD_PACKAGES)
    for pin in pins:
        started = time.monotonic()
        with _app.err.status(f"CPython {pin.version}: from Debian's verified source "
                             "(about 5 minutes the first time per image) ..."):
            try:
                python = interpreters.for_build(current, image, pin)
            except FactoryError as exc:
                failed[pin.version] = exc.message
                continue
        built.append({**python.describe(), "fresh": python.fresh, "seconds": python.seconds,
                      "checked_seconds": round(time.monotonic() - started, 2),
                      "image_tag": image.tag})
    return built, failed


@app.command()
def plan(
    names: Annotated[list[str] | None, typer.Argument(help="Only these components.")] = None,
) -> None:
    """Print the build order and why each component is in it."""
    from factory.plan import make_plan

    # Names, reasons and the builds' reported requirements: text, never markup.
    the_plan = make_plan(settings(), list(map(_key, names)) if names else None)
    plain(the_plan.explain(), _app.out)
    for nid, why in the_plan.problems.items():  # one line each; the rest is planned
        plain(f"error: {nid}: {why}")
    if the_plan.problems:
        raise typer.Exit(1)


@app.command()
def build(
    names: Annotated[list[str] | None, typer.Argument(help="Only these (and the build tools "
                                                      "they still lack).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Parallel builds (default: cores).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Build from source in network-less containers, without an orchestrator."""
    from factory.build.executor import run_plan
    from factory.fetch import fetch_stage
    from factory.plan import make_plan

    s = settings()
    refused: dict[str, str] = {}
    fetch_stage(s, failed=refused)  # a refused one fails its node, not the build
    the_plan = make_plan(s, list(map(_key, names)) if names else None)
    with _app.err.status(f"building {len(the_plan.order)} components ..."):
        outcome = run_plan(s, the_plan, concurrency, refused=refused)
    records, failed = outcome.records, outcome.failed
    if as_json:
        emit_json({"built": [{"component": r.component, "version": r.version,
                              "wheel": r.wheel_filename, "sha256": r.wheel_sha256}
                             for r in records],
                   "failed": [{"component": nid, "error": why} for nid, why in failed.items()],
                   "not_built_for": [{"component": vid, "why": why}
                                     for vid, why in outcome.skipped.items()],
                   # escaped: Rich prints JSON with ensure_ascii=False, so a bidi
                   # override or a C1 control in a string would reach the terminal raw
                   "warnings": [{"component": r.component, "version": r.version,
                                 "wheel": r.wheel_filename, "warning": printable(w, "")}
                                for r in records for w in r.warnings]})
    else:
        for r in records:
            _app.out.print(f"  {r.wheel_filename}  sha256:{r.wheel_sha256[:16]}…",
                           highlight=False)
        for vid, why in outcome.skipped.items():  # an interpreter its Requires-Python excludes
            plain(f"  not built: {vid}: {why}", _app.out)
        # A build that went without its C extension (a header it lacked): built, but the
        # user is told which package the recipe needs. One line each, the build's words
        # escaped; a component's builds for several interpreters say it once.
        for warning in dict.fromkeys(w for r in records for w in r.warnings):
            plain(f"  warning: {warning}", _app.out)
        for nid, why in failed.items():  # one line each; the others were built
            plain(f"error: {nid}: {why}")
        _app.out.print(f"{len(records)} wheels built from source in {s.wheels_dir}"
                       + (f"; {len(failed)} failed" if failed else ""), highlight=False)
    if failed:
        raise typer.Exit(1)


# -- keys, sign, publish ---------------------------------------------------------------

@keys_app.command("init")
def keys_init(as_json: JsonOpt = False) -> None:
    """Create the per-role keys and the embedded authority (never overwrites)."""
    from factory.attest.keys import ROLES, key_info
    from factory.publish import ensure_keys

    s = settings()
    ensure_keys(s)
    infos = [key_info(s, role) for role in ROLES]
    if as_json:
        emit_json([{"role": i.role, "keyid": i.keyid, "spki_sha256": i.spki_sha256,
                    "public_key": str(i.public_key_path)} for i in infos])
        return
    for i in infos:
        _app.out.print(f"  {i.role:9} {i.keyid[:16]}…  {i.public_key_path}", highlight=False)
    _app.out.print(f"private keys in {s.private_keys_dir} (never commit them); "
              f"public material in {s.public_keys_dir}")


@keys_app.command("show")
def keys_show(as_json: JsonOpt = False) -> None:
    """Show the public keys' ids and fingerprints."""
    from factory.attest.keys import ROLES, key_info

    infos = [key_info(settings(), role) for role in ROLES]
    if as_json:
        emit_json([{"role": i.role, "keyid": i.keyid, "spki_sha256": i.spki_sha256}
                   for i in infos])
        return
    from rich.table import Table

    table = Table("role", "key id", "SPKI sha256")
    for i in infos:
        table.add_row(i.role, i.keyid, i.spki_sha256)
    _app.out.print(table)


@authority_app.command("serve")
def authority_serve(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8710) -> None:
    """Run the embedded authority so stock sigstore tools can sign against it."""
    from factory.sign.authority import serve_authority

    serve_authority(settings(), port)


@app.command()
def publish(as_json: JsonOpt = False) -> None:
    """Attest, sign and publish every built wheel the index does not serve yet."""
    from factory.build.record import RECORD_SUFFIX, BuildRecord
    from factory.publish import release_all

    s = settings()
    records = [BuildRecord.load(p) for p in sorted(s.wheels_dir.glob("*" + RECORD_SUFFIX))]
    with _app.err.status(f"signing and publishing up to {len(records)} wheels ..."):
        report = release_all(s, records)
    if as_json:
        emit_json({"published": [p.__dict__ for p in report.published],
                   "refused": [r.__dict__ for r in report.refused],
                   "advisories_not_checked": report.advisories_problem,
                   "tuf_not_re_signed": report.tuf_problem,
                   "equivalence": {"verdicts": report.equivalence,
                                   "notes": report.equivalence_notes,
                                   "alarms": report.equivalence_alarms}})
    else:
        for p in report.published:
            _app.out.print(f"  published {p.filename}", highlight=False)
        _app.out.print(f"{len(report.published)} published; index at {s.index_dir}",
                  highlight=False)
    if report.advisories_problem and not as_json:  # the source's own words: never markup
        plain(f"warning: advisories NOT CHECKED after publishing, the VEX feed not "
              f"rewritten: {report.advisories_problem}")
    if report.tuf_problem and not as_json:  # names files of the index tree: plain
        plain(f"warning: TUF repository NOT re-signed: {report.tuf_problem}")
    if not as_json:  # upstream text inside: printed plain (escaped, and never markup)
        if report.equivalence:
            plain(f"equivalence with upstream: {report.equivalence}", _app.out)
        for note in report.equivalence_notes:
            plain(f"warning: {note}")
        for alarm in report.equivalence_alarms:
            plain(f"ALARM {alarm}")
    report.raise_for_refusals()  # one line per refused wheel on stderr, exit non-zero




def _prefect() -> str:
    """Point at a Prefect server (PREFECT_API_URL, or the embedded one) before importing it."""
    from flows.server import ensure_server, ui_url

    with _app.err.status("connecting to the Prefect server (the embedded one starts once) ..."):
        url = ensure_server(settings())
    _app.err.print(f"Prefect UI: {ui_url(url)}", highlight=False)
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
    if as_json:  # the flow made its warnings printable; escaped again, as in `build`
        emit_json({**summary, **({"warnings": [printable(str(w), "")
                                               for w in summary["warnings"]]}
                                 if "warnings" in summary else {})})
    else:
        warnings = summary.pop("warnings", [])
        _app.out.print(", ".join(f"{k} {v}" for k, v in summary.items()), highlight=False)
        for warning in warnings:  # a build that went without its C extension
            plain(f"  warning: {warning}", _app.out)


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
                plain(f"  {line}", _app.out)
            for line in result.get("alarms", []):
                plain(f"  ALARM {line}")
            _app.out.print(f"watch cycle done: {len(result['moved'])} moved, "
                      f"{len(result['yanked'])} yanked, {len(result.get('alarms', []))} "
                      "upstream alarms", highlight=False)
        if once:
            return
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


@app.command()
def deploy(
    interval: Annotated[int, typer.Option(help="Watch every N seconds.")] = 600,
    pool: Annotated[str | None, typer.Option(
        help="Instead: create this process work pool, the factory-build deployment on it "
             "and the automation that crashes build runs whose heartbeats stop; then exit.")
    ] = None,
    source: Annotated[str | None, typer.Option(
        help="With --pool: where workers load the flow's code (a directory or git URL; "
             "default: this checkout).")] = None,
    zombie_seconds: Annotated[float, typer.Option(
        help="With --pool: seconds without a heartbeat before a build run is Crashed "
             "(workers heartbeat every 30 s).")] = 90.0,
    python: Annotated[str, typer.Option(
        help="With --pool: the workers' Python (with prefect and the factory), which "
             "runs each build.")] = "python",
) -> None:
    """Serve the rebuild and watch flows as Prefect deployments (until interrupted);
    with --pool, set up the build pool of [distributed] pool instead (docs/distributed.md)."""
    url = _prefect()
    if pool is not None:
        from flows.build import AUTOMATION, DEPLOYMENT, FLOW, deploy_build

        deployment = deploy_build(pool, source=source, zombie_seconds=zombie_seconds,
                                  python=python)
        plain(f"work pool {pool}: deployment {FLOW}/{DEPLOYMENT} ({deployment}), "
              f"automation {AUTOMATION!r} ({zombie_seconds:.0f} s)", _app.out)
        plain(f"start workers with: PREFECT_API_URL={url} PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30 "
              f"prefect worker start --pool {pool} --type process", _app.out)
        return
    from prefect import serve as serve_deployments

    from flows.deploy import deployments

    serve_deployments(*deployments(interval))  # type: ignore[arg-type]


