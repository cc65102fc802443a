"""Auditor verification: one command, offline, with a pinned trust root.

``verify(settings, target)`` checks every artifact a target names (a wheel, a
``name==version``, a requirements file with hashes, a pylock.toml or uv.lock,
a virtual environment, or the whole index) against the published index and
returns a Report with one named, explained Check per property:

- digest: the file's sha256 equals the index record and every attestation subject;
- signature: its Sigstore bundle verifies against the pinned trusted root and
  the identity policy (identity + OIDC issuer);
- provenance: the signed SLSA provenance comes from an allowed builder id, names
  the locked source whose sha256 matches upstream's, and records network none;
- sbom: the CycloneDX 1.6 SBOM validates, binds to the wheel, equals the signed one;
- pep740: the PEP 740 attestations (publish, provenance, SBOM) verify for the file;
- in-toto: the layout (owner key) and the fetch/build/attest links verify;
- advisories: no known advisory affects the version;
- installed (venvs): the installed files are the published wheel's files.

Nothing is fetched: the trusted root is loaded once, artifacts are verified in
a thread pool in this one process. Renderers: ``factory.verify.render``;
reproducibility and equivalence with upstream: ``rebuild_and_compare`` and
``compare_with_upstream`` (factory.verify.reproduce / .equivalence).

Its parts:

- model.py: results (Check, ArtifactReport, Report) and their JSON form;
- trust.py: the pinned trust (trusted root, owner key, identity policy) and its fingerprints;
- view.py: a read-only view of a published index directory;
- targets.py: what a TARGET names (wheel, name==version, lock files, a venv, the index);
- checks.py: the per-artifact checks;
- intoto.py: in-toto layout and link verification, in process;
- installed.py: an installed distribution against the published wheel's RECORD;
- sbom.py: fast CycloneDX 1.6 schema validation;
- render.py: Rich table, JSON and HTML reports;
- reproduce.py, equivalence.py: reproducibility and equivalence with upstream.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from factory.config import Settings
from factory.errors import FactoryError
from factory.index.check import inspect_index
from factory.index.records import IndexCorruptError, ProjectRecord, list_projects
from factory.lock import Lock, load_lock
from factory.upstream.advisories import AdvisoryDatabase
from factory.verify.checks import Auditor
from factory.verify.model import (
    ALL_CHECKS,
    CHECK_TITLES,
    FILES,
    PAGES,
    RECORDS,
    UNRECORDED,
    ArtifactReport,
    Check,
    Report,
    exit_code,
    failed,
    passed,
)
from factory.verify.render import print_report, report_json, write_html
from factory.verify.targets import Item, TargetError, resolve
from factory.verify.trust import TrustError, load_trust
from factory.verify.view import IndexView

if TYPE_CHECKING:
    from factory.verify.equivalence import Equivalence, compare_with_upstream
    from factory.verify.reproduce import Rebuild, rebuild_and_compare

# Rebuilding needs the Docker SDK, upstream comparison the HTTP client: both are
# imported only when asked for, so that `verify --all` starts fast.
_LAZY = {
    "Equivalence": "factory.verify.equivalence",
    "compare_with_upstream": "factory.verify.equivalence",
    "Rebuild": "factory.verify.reproduce",
    "rebuild_and_compare": "factory.verify.reproduce",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALL_CHECKS",
    "CHECK_TITLES",
    "ArtifactReport",
    "Check",
    "Equivalence",
    "Rebuild",
    "Report",
    "TargetError",
    "TrustError",
    "compare_with_upstream",
    "exit_code",
    "print_report",
    "rebuild_and_compare",
    "report_json",
    "run",
    "verify",
    "write_html",
]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_workers() -> int:
    # Hashing and signature checks release the GIL part of the time; more
    # threads than twice the cores only add contention.
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


# The auditor a forked worker process inherits (set just before the pool forks).
_AUDITOR: Auditor | None = None
# Below this many artifacts, starting processes costs more than it saves.
_PROCESSES_FROM = 8


def _verify_in_child(item: Item) -> ArtifactReport:
    assert _AUDITOR is not None
    return _AUDITOR.verify(item)


def _verify_all(auditor: Auditor, items: list[Item], workers: int,
                meanwhile: Callable[[], None] = lambda: None) -> Iterator[ArtifactReport]:
    """In order. Signature checks and schema validation hold the GIL, so an index is
    spread over forked processes (they inherit the loaded trust root and modules).
    ``meanwhile`` runs in this process once the workers are forked (no thread is
    running when they fork)."""
    global _AUDITOR
    forkable = "fork" in multiprocessing.get_all_start_methods()
    if workers <= 1 or len(items) < _PROCESSES_FROM or not forkable:
        meanwhile()
        yield from map(auditor.verify, items)
        return
    _AUDITOR = auditor
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = pool.map(_verify_in_child, items,
                               chunksize=max(1, len(items) // (workers * 4)))
            meanwhile()
            yield from results
    finally:
        _AUDITOR = None


def verify(
    settings: Settings,
    target: str | None = None,
    *,
    everything: bool = False,
    index_dir: Path | None = None,
    trusted_root: Path | None = None,
    owner_key: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    builder_ids: tuple[str, ...] = (),
    advisories: str | None = None,
    check_advisories: bool = True,
    ignore: tuple[str, ...] = (),
    workers: int | None = None,
    on_result: Callable[[ArtifactReport], None] | None = None,
) -> Report:
    """Verify everything ``target`` names (or the whole index with ``everything``).

    Raises TargetError (exit 2) for an unusable target or index, TrustError when
    the pinned trust cannot be loaded; every artifact problem is a failed Check.
    """
    started, clock = _now(), time.perf_counter()
    index = IndexView(index_dir or settings.index_dir)
    if not index.exists():
        raise TargetError(f"no published index at {index.root}",
                          "pass --index PATH (the directory holding records/ and files/)")
    trust = load_trust(settings, index.root, trusted_root, owner_key, identity, issuer,
                       builder_ids)
    items = resolve(index, target, everything, ignore)
    source = (advisories or settings.advisories) if check_advisories else None
    database = AdvisoryDatabase(source) if source else None
    auditor = Auditor(index, trust, database, _lock(settings))
    whole: list[Check] = []

    def check_the_index() -> None:  # while the workers verify the artifacts
        if everything:
            whole.extend(index_checks(index, _base_url(settings, index.root)))

    results = []
    for result in _verify_all(auditor, items, workers or default_workers(), check_the_index):
        if on_result is not None:
            on_result(result)
        results.append(result)
    return Report(
        target="--all" if everything else str(target),
        started=started,
        finished=_now(),
        seconds=time.perf_counter() - clock,
        trust=trust.info(index.root, source),
        artifacts=results,
        index=whole,
    )


def _base_url(settings: Settings, root: Path) -> str | None:
    """The URL the pages were rendered with: the settings' for the settings' own index;
    for another directory (an auditor's copy), read from its pages (None)."""
    try:
        same = root.resolve() == settings.index_dir.resolve()
    except OSError:
        same = False
    return settings.index_url if same else None


def index_checks(index: IndexView, base_url: str | None) -> list[Check]:
    """The index as a whole: one failed Check per problem, else one passed Check per kind.

    Files are checked for type and size here; their bytes by each artifact's checks
    (the wheel and every sidecar beside it against the record in `digest`, the
    .metadata against the wheel in `metadata`, the rest by their signatures).
    """
    def load(project: str) -> ProjectRecord | None:
        record = index.record(project)
        if record is None and project in index.corrupt:
            raise IndexCorruptError(index.corrupt[project])
        return record

    findings = inspect_index(index.root, base_url, deep=False, wheels=False, load=load)
    projects = len(list_projects(index.layout)) if index.exists() else 0
    checks: list[Check] = []
    for name in (RECORDS, PAGES, FILES, UNRECORDED):
        found = [f for f in findings if f.area == name]
        checks += [failed(name, str(f)) for f in found] or [passed(name, _INDEX_PASSED[name]
                                                                   .format(projects))]
    return checks


_INDEX_PASSED = {
    RECORDS: "all {} project records load, every path inside the index",
    PAGES: "every page of the {} projects is what the records render",
    FILES: "every recorded file is a regular file of the recorded size and sha256, with its "
           "sidecars",
    UNRECORDED: "no file in a served area that no record names",
}


def run(
    settings: Settings,
    target: str | None = None,
    *,
    everything: bool = False,
    rebuild: str | None = None,
    upstream: str | None = None,
    json_output: bool = False,
    html: Path | None = None,
    verbose: bool = False,
    console: Console | None = None,
    **options: Any,
) -> int:
    """What `factory verify` does: verify, print (table or JSON), write HTML; the exit code.

    ``options`` are verify()'s keyword options (index_dir, trusted_root, identity...).
    """
    console = console or Console()
    modes = [bool(target) or everything, bool(rebuild), bool(upstream)]
    if sum(modes) != 1:
        raise TargetError("give exactly one of: TARGET, --all, --rebuild NAME==VERSION, "
                          "--upstream NAME==VERSION")
    if rebuild or upstream:
        return _run_comparison(settings, rebuild, upstream, json_output, console,
                               options.get("index_dir"))
    report = _with_progress(settings, target, everything, console, json_output, options)
    if html is not None:
        write_html(report, html)
    if json_output:
        console.file.write(report_json(report))
    else:
        print_report(report, console, verbose)
        if html is not None:
            console.print(f"report written to {html}", highlight=False)
    return exit_code(report)


def _with_progress(settings: Settings, target: str | None, everything: bool, console: Console,
                   quiet: bool, options: dict[str, Any]) -> Report:
    if quiet or not console.is_terminal:
        return verify(settings, target, everything=everything, **options)
    with Progress(SpinnerColumn(), TextColumn("verifying"), MofNCompleteColumn(),
                  TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("", total=None)
        return verify(settings, target, everything=everything, **options,
                      on_result=lambda a: bar.update(task, advance=1, description=a.label))


def _run_comparison(settings: Settings, rebuild: str | None, upstream: str | None,
                    json_output: bool, console: Console, index_dir: Path | None) -> int:
    results: list[Rebuild] | list[Equivalence]
    if rebuild:
        from factory.verify.reproduce import rebuild_and_compare

        results = rebuild_and_compare(settings, rebuild, index_dir=index_dir)
        good = all(r.reproducible for r in results)
    else:
        from factory.verify.equivalence import compare_with_upstream

        results = compare_with_upstream(settings, str(upstream), index_dir=index_dir)
        good = all(r.equivalent for r in results)
    if json_output:
        console.file.write(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    else:
        for result in results:
            console.print(f"{result.filename}: {result.message}", highlight=False,
                          style="green" if good else "red")
            for difference in result.differences:
                console.print(f"  {difference}", highlight=False)
    return 0 if good else 1


def _lock(settings: Settings) -> Lock | None:
    """The project's recipes.lock, when there is one to compare sources with."""
    if not settings.lock_path.is_file():
        return None
    try:
        return load_lock(settings)
    except FactoryError:
        return None  # a broken lock is `factory lock`'s problem; the index record still binds
