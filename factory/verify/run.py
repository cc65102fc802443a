"""One verification run: resolve the target, verify each artifact (over forked workers
for a whole index), check the index as a whole, and return the Report.

``factory.verify`` (the package) re-exports what is public here; see its docstring.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from factory._internal.plugins import plugins_off
from factory.config import Settings
from factory.errors import FactoryError
from factory.index.records import Layout
from factory.lock import Lock, load_lock
from factory.upstream.advisories import open_advisories
from factory.upstream.transport import shown
from factory.verify.checks import CHECK_TITLES, CHECKS, Auditor
from factory.verify.early import Early
from factory.verify.model import INDEX_CHECKS, ArtifactReport, Check, Report, failed, skipped
from factory.verify.targets import Item, resolve
from factory.verify.trust import Trust
from factory.verify.view import IndexView
from factory.verify.wholeindex import index_checks, open_index, vex_check

if TYPE_CHECKING:
    from factory.verify.remote import RemoteIndex


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
# The most artifacts a worker is sent at a time (_chunk).
_CHUNK_MOST = 4


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
    # The forked workers' collector leaves the inherited objects alone; not when the
    # caller froze objects of its own (a pre-forking server, say): unfreeze below would
    # give them back to the collector, and the workers' speed is not worth the caller's.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = pool.map(_verify_in_child, items, chunksize=_chunk(len(items), workers))
            meanwhile()
            answered = 0
            try:
                for result in results:
                    answered += 1
                    yield result
            except BrokenProcessPool:  # a worker killed (out of memory?) or crashed
                yield from (_unanswered(item) for item in items[answered:])
    finally:
        _AUDITOR = None
        if freeze:
            gc.unfreeze()


def _chunk(items: int, workers: int) -> int:
    """Artifacts sent to a worker at a time: a few (a round trip per chunk costs far less
    than the 20 ms or more of checks per wheel), never a share of the whole index: in
    chunks of a quarter of each worker's share (1,250 of 10,000 wheels on two cores),
    the run's end waited on one worker's last chunk while the others had nothing left,
    a wait that grew with the index."""
    return max(1, min(_CHUNK_MOST, items // (workers * 8)))


def _unanswered(item: Item) -> ArtifactReport:
    """An artifact whose worker died before answering: failed, never passed (which of the
    unanswered ones killed it is not known)."""
    return ArtifactReport(
        label=item.label, filename=item.filename, project=item.project,
        version=item.version, sha256=None,
        checks=[failed(CHECKS[0].name, "not verified: a verifier process died while "
                       "checking this or a nearby artifact (killed, out of memory?); "
                       "--workers 1 checks them one by one")])


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
    early: Early | None = None,
) -> Report:
    """Verify everything ``target`` names (or the whole index with ``everything``).

    ``advisories``: the OSV source to check versions against (None: not checked; an
    archive URL is fetched into ``advisories_cache``, and an unreachable source is a
    skip saying so); ``requested``: checks left out on request (name -> why);
    ``lock``: a recipes.lock that must agree on each source's digest; ``ignore``: names
    of a venv's distributions to skip; ``on_result``: called with each artifact's report;
    ``early``: the child started for this index before the verifier's imports
    (factory.verify.early; ``factory.verify.verify`` starts it): its pre-checks and index
    checks are used, and what it did not answer is done here.
    Raises TargetError (exit 2) for an unusable target; every artifact problem is a
    failed Check.
    """
    plugins_off()  # (factory._internal.plugins: the caller may not have come through verify)
    started, clock = _now(), time.perf_counter()
    items = resolve(index, target, everything, ignore)
    requested = dict(requested or {})
    database, problem = open_advisories(advisories, advisories_cache or _cache(advisories))
    auditor = Auditor(index, trust, database, lock, requested.get("advisories", problem))
    if early is not None and early.root != _resolved(index.root):
        early = None  # started for another index (or directory): not this run's
    if early is not None:
        auditor.facts = early.facts()  # the child stops its pre-checks here
    whole: list[Check] = []

    def check_the_index() -> None:  # while the workers verify the artifacts
        if everything and index.local:
            checked = early.index_checks() if early is not None else None
            whole.extend(checked if checked is not None else index_checks(index))
            key = trust.answers_key_path
            whole.append(vex_check(index, key, key is None or not _served(
                key, Layout(index.root).trust)))
        elif everything:  # records, pages and stray files are the directory's, not served
            whole.extend(skipped(name, f"{index.base_url} is verified by URL: the index "
                                 "directory is not served") for name in INDEX_CHECKS)

    info = trust.info(index.root if index.local else str(index.base_url),
                      shown(advisories) if advisories else None)  # no user:password@
    info.served = [what for what, path in (("trusted root", trust.trusted_root_path),
                                           ("owner key", trust.owner_key_path),
                                           ("answers key", trust.answers_key_path))
                   if path is not None and _served(path, Layout(index.root).trust)
                   and (what != "answers key" or everything)]
    info.from_index = bool(info.served)
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


def _served(path: Path, trust_dir: Path) -> bool:
    """Whether ``path`` is the index's own: named under its trust/ (a link there to a file
    elsewhere is still what the index serves) or resolving into it."""
    if Path(os.path.abspath(path)).is_relative_to(os.path.abspath(trust_dir)):
        return True
    try:
        return path.resolve().is_relative_to(trust_dir.resolve())
    except (OSError, RuntimeError):
        return False


def _resolved(root: Path) -> Path | None:
    try:
        return root.resolve()
    except (OSError, RuntimeError):
        return None


def _advisories_cache(settings: Settings) -> Path | None:
    """The state's advisory cache, when there is a state: an auditor verifying an index
    by URL from a directory of their own gets the user's cache (None: audit's default),
    not a .factory/ made in that directory."""
    return settings.state_dir / "advisories" if settings.state_dir.is_dir() else None


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
    answers_key: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    builder_ids: tuple[str, ...] = (),
    advisories: str | None = None,
    check_advisories: bool = True,
    ignore: tuple[str, ...] = (),
    workers: int | None = None,
    on_result: Callable[[ArtifactReport], None] | None = None,
    early: Early | None = None,
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
                           owner_key=owner_key, answers_key=answers_key,
                           identity=identity, issuer=issuer,
                           builder_ids=builder_ids)
        return audit(index, trust, target, everything=everything, ignore=ignore,
                     advisories=(advisories or settings.advisories) if check_advisories
                     else None, lock=local_lock(settings), workers=workers,
                     on_result=on_result, advisories_cache=_advisories_cache(settings),
                     early=early if everything and index.local else None,
                     requested={} if check_advisories else {
                         "advisories": "not checked on request (--no-advisories)"})

    if not str(index_dir or "").startswith(("http://", "https://")):  # remote.is_url
        return run(open_index(settings, Path(index_dir) if index_dir else None))
    from factory.export import index_root  # (the Simple API URL pip takes is accepted)
    from factory.verify.remote import RemoteIndex  # and its HTTP client: only for a URL

    url = index_root(str(index_dir), "--index")
    with tempfile.TemporaryDirectory(prefix="factory-verify-url-") as work:
        remote = RemoteIndex(url, Path(work))
        try:
            _reach(remote, url)
            return run(remote)
        finally:
            remote.close()


def _reach(remote: RemoteIndex, url: str) -> None:
    """The index's trust files fetched (what pinned trust falls back to); RemoteIndexError
    (exit 2: the index cannot be used, nothing about an artifact is known) when the URL
    cannot be read or serves no factory index there."""
    from factory.verify.remote import RemoteIndexError

    try:
        found = remote.fetch_trust()
    except RemoteIndexError:
        raise
    except FactoryError as exc:
        raise RemoteIndexError(f"the index at {shown(url)} cannot be read: {exc.message}",
                               "check the URL and that the index is being served") from None
    if not found:
        raise RemoteIndexError(f"{shown(url)} serves no /.well-known/factory/ trust files: "
                               "not a factory index")
