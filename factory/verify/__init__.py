"""Auditor verification: one command, offline, with a pinned trust root.

``audit(index, trust, target)`` checks every artifact a target names (a wheel,
a ``name==version``, a requirements file with hashes, a pylock.toml or
uv.lock, a virtual environment, or the whole index) against the published
index and returns a Report with one named, explained Check per property:

- digest: the file's sha256 equals the index record and every attestation subject;
- metadata: the served .metadata (PEP 658) is the wheel's own METADATA;
- signature: its Sigstore bundle verifies against the pinned trusted root and
  the identity policy (identity + OIDC issuer);
- provenance: the signed SLSA provenance comes from an allowed builder id, names
  the locked source whose sha256 matches upstream's, and records network none;
- sbom: the CycloneDX 1.6 SBOM validates, binds to the wheel, equals the signed one;
- pep740: the PEP 740 attestations (publish, provenance, SBOM) verify for the file;
- in-toto: the layout (owner key) and the fetch/build/attest links verify;
- advisories: no known advisory affects the version;
- installed (venvs): the installed files are the published wheel's files.

The caller builds what is trusted and where (``open_index``, ``Trust.load``)
and prints the Report (``factory.verify.render``); nothing here prints. The
CLI (factory.cli.verify) does both; ``verify(settings, target)`` does the same
from the settings without printing. Nothing is fetched: the trusted root is
loaded once, and a whole index is spread over forked processes that inherit it.
Reproducibility and equivalence with upstream: ``rebuild_and_compare`` and
``compare_with_upstream`` (factory.verify.reproduce / .equivalence).

Its parts:

- model.py: results (Check, ArtifactReport, Report) and their JSON form;
- trust.py: the pinned trust (trusted root, owner key, identity policy) and its fingerprints;
- view.py: a read-only view of a published index directory;
- targets.py: what a TARGET names (wheel, name==version, lock files, a venv, the index);
- evidence.py: one wheel's digest and sidecars, read once;
- checks.py: the per-artifact checks, one row each;
- intoto.py: in-toto layout and link verification, in process;
- installed.py: an installed distribution against the published wheel's RECORD;
- sbom.py: fast CycloneDX 1.6 schema validation;
- render.py: Rich table, JSON and HTML reports;
- reproduce.py, equivalence.py: reproducibility and equivalence with upstream.
"""

from __future__ import annotations

import gc
import importlib
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.config import Settings
from factory.errors import FactoryError
from factory.index.check import inspect_index
from factory.index.records import IndexCorruptError, Layout, ProjectRecord, list_projects
from factory.lock import Lock, load_lock
from factory.upstream.advisories import open_advisories
from factory.upstream.transport import shown
from factory.verify.checks import ALL_CHECKS, CHECK_TITLES, Auditor
from factory.verify.model import (
    FILES,
    INDEX_CHECKS,
    PAGES,
    RECORDS,
    UNRECORDED,
    ArtifactReport,
    Check,
    Report,
    exit_code,
    failed,
    passed,
    skipped,
)
from factory.verify.render import report_json, write_html
from factory.verify.targets import Item, TargetError, resolve
from factory.verify.trust import Trust, TrustError
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
    "IndexView",
    "Rebuild",
    "Report",
    "TargetError",
    "Trust",
    "TrustError",
    "audit",
    "compare_with_upstream",
    "exit_code",
    "local_lock",
    "open_index",
    "rebuild_and_compare",
    "report_json",
    "verify",
    "write_html",
]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_workers() -> int:
    # One forked process per core the process may use (up to 8): each worker is CPU-bound
    # (signatures, schema validation hold the GIL) and warms its own caches (the SBOM
    # validator's memo, factory.verify.sbom), so more workers than cores only repeat that.
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


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
    auditor.prepare()  # what every worker would load for itself, loaded once here
    gc.freeze()  # the forked workers' collector leaves the inherited objects alone
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = pool.map(_verify_in_child, items,
                               chunksize=max(1, len(items) // (workers * 4)))
            meanwhile()
            yield from results
    finally:
        _AUDITOR = None
        gc.unfreeze()


def open_index(settings: Settings, index_dir: Path | None = None) -> IndexView:
    """The published index to verify against: ``index_dir`` (an auditor's copy) or the
    settings' own, whose pages were rendered with the settings' URL. TargetError if none.
    (An index URL: ``verify`` fetches it, factory.verify.remote.)"""
    root = index_dir or settings.index_dir
    try:
        same = root.resolve() == settings.index_dir.resolve()
    except OSError:
        same = False
    index = IndexView(root, settings.index_url if same else None)
    if not index.exists():
        raise TargetError(f"no published index at {index.root}",
                          "pass --index PATH (the directory holding records/ and files/)")
    return index


def local_lock(settings: Settings) -> Lock | None:
    """The project's recipes.lock, when there is one to compare sources with."""
    if not settings.lock_path.is_file():
        return None
    try:
        return load_lock(settings)
    except FactoryError:
        return None  # a broken lock is `factory lock`'s problem; the index record still binds


def audit(
    index: IndexView,
    trust: Trust,
    target: str | None = None,
    *,
    everything: bool = False,
    ignore: tuple[str, ...] = (),
    advisories: str | None = None,
    lock: Lock | None = None,
    workers: int | None = None,
    on_result: Callable[[ArtifactReport], None] | None = None,
    advisories_cache: Path | None = None,
    requested: dict[str, str] | None = None,
) -> Report:
    """Verify everything ``target`` names (or the whole index with ``everything``).

    ``advisories``: the OSV source to check versions against (None: not checked; an
    archive URL is fetched into ``advisories_cache``, and an unreachable source is a
    skip saying so); ``requested``: checks left out on request (name -> why);
    ``lock``: a recipes.lock that must agree on each source's digest; ``ignore``: names
    of a venv's distributions to skip; ``on_result``: called with each artifact's report.
    Raises TargetError (exit 2) for an unusable target; every artifact problem is a
    failed Check.
    """
    started, clock = _now(), time.perf_counter()
    items = resolve(index, target, everything, ignore)
    requested = dict(requested or {})
    database, problem = open_advisories(advisories, advisories_cache or _cache(advisories))
    auditor = Auditor(index, trust, database, lock, requested.get("advisories", problem))
    whole: list[Check] = []

    def check_the_index() -> None:  # while the workers verify the artifacts
        if everything and index.local:
            whole.extend(index_checks(index))
        elif everything:  # records, pages and stray files are the directory's, not served
            whole.extend(skipped(name, f"{index.base_url} is verified by URL: the index "
                                 "directory is not served") for name in INDEX_CHECKS)

    info = trust.info(index.root if index.local else str(index.base_url),
                      shown(advisories) if advisories else None)  # no user:password@
    served = Layout(index.root).trust.resolve()
    info.from_index = any(path.resolve().is_relative_to(served)
                          for path in (trust.trusted_root_path, trust.owner_key_path))
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
        trust=info,
        artifacts=results,
        titles=CHECK_TITLES,
        index=whole,
        requested=requested,
    )


def _cache(source: str | None) -> Path:
    from factory.upstream.advisories import default_cache

    return default_cache(source or "")


def verify(
    settings: Settings,
    target: str | None = None,
    *,
    everything: bool = False,
    index_dir: Path | str | None = None,
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
    """What `factory verify` checks, from the settings, without printing: the index, the
    trust and the advisory source are the settings' unless named.

    ``index_dir`` may be the index's URL (http/https): what the checks need is fetched
    into a temporary directory first (factory.verify.remote), then checked the same way.

    Raises TargetError (exit 2) for an unusable target or index, TrustError when
    the pinned trust cannot be loaded; every artifact problem is a failed Check.
    """
    def run(index: IndexView) -> Report:
        trust = Trust.load(settings, index.root, trusted_root=trusted_root,
                           owner_key=owner_key, identity=identity, issuer=issuer,
                           builder_ids=builder_ids)
        return audit(index, trust, target, everything=everything, ignore=ignore,
                     advisories=(advisories or settings.advisories) if check_advisories
                     else None, lock=local_lock(settings), workers=workers,
                     on_result=on_result, advisories_cache=settings.state_dir / "advisories",
                     requested={} if check_advisories else {
                         "advisories": "not checked on request (--no-advisories)"})

    if not str(index_dir or "").startswith(("http://", "https://")):  # remote.is_url
        return run(open_index(settings, Path(index_dir) if index_dir else None))
    from factory.verify.remote import RemoteIndex  # and its HTTP client: only for a URL

    with tempfile.TemporaryDirectory(prefix="factory-verify-url-") as work:
        remote = RemoteIndex(str(index_dir), Path(work))
        try:
            remote.fetch_trust()
            return run(remote)
        finally:
            remote.close()


def index_checks(index: IndexView) -> list[Check]:
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

    findings = inspect_index(index.root, index.base_url, deep=False, wheels=False, load=load)
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
