"""Equivalence with upstream: is our pure-Python wheel the same as upstream's?

A pure-Python wheel built from the same sdist should hold the same files with
the same bytes; only the zip container differs (timestamps, member order,
compression) and the order of RECORD lines. ``compare_wheels`` ignores exactly
those. The verdict (``equivalent``, ``divergent``, ``no-upstream-wheel``) is an
in-toto statement signed through Sigstore, written next to our wheel as
``<wheel>.equivalence.json`` (a Sigstore DSSE bundle): at publish time for every
pure wheel (``Comparer``, factory.publish; an unreachable upstream leaves none and
the run says so), and by ``factory verify --upstream``. A divergent statement says
per file why (``explain``) and whether the backend version matched upstream's (the
lock's ``upstream_backend``). ``factory verify`` checks the statement whatever its
verdict; ``read_statement`` gives its predicate to pages, unverified.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import errno
import hashlib
import json
import os
import stat
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from factory import __version__
from factory._internal.atomic import sha256_file, write_text
from factory._internal.zipcount import too_large
from factory.attest.types import EQUIVALENCE_PREDICATE_TYPE, STATEMENT_TYPE
from factory.config import Settings
from factory.errors import FactoryError, UpstreamError, VerificationError
from factory.lock.backend import MAX_WHEEL_FILE, Backend
from factory.upstream.listing import UpstreamFile
from factory.verify.targets import PIN, TargetError
from factory.verify.view import IndexView, Published, same_version

if TYPE_CHECKING:  # the HTTP client only when comparing (verify reads the constants)
    from factory.sign import Signer
    from factory.upstream.client import Upstream

PREDICATE_TYPE = EQUIVALENCE_PREDICATE_TYPE
SUFFIX = ".equivalence.json"
SIDECAR_KIND = "equivalence"  # its kind among a wheel's recorded sidecars
COMPARISON = ("identical file contents; zip timestamps, member order and compression and "
              "the order of RECORD lines ignored")
EQUIVALENT, DIVERGENT, NO_UPSTREAM_WHEEL = "equivalent", "divergent", "no-upstream-wheel"
VERDICTS = (EQUIVALENT, DIVERGENT, NO_UPSTREAM_WHEEL)
MAX_STATEMENT = 1 << 20  # a statement file read back (a Sigstore bundle)
MAX_EXPLAINED = 200  # per-file reasons kept in a statement
MAX_HEADER_NAMES = 40
MAX_UNPACKED = 512 << 20  # bytes a compared wheel may unpack to (each side)
MAX_MEMBERS = 100_000
# METADATA and RECORD are parsed (headers, a set of lines) only up to these sizes: deflate
# makes 512 MiB of "A: b" lines from a wheel of half a MiB (19 MiB took 23 s and 1.2 GiB).
MAX_PARSED_METADATA = 1 << 20
MAX_PARSED_RECORD = 32 << 20


@dataclass
class Equivalence:
    filename: str
    sha256: str
    equivalent: bool
    message: str
    upstream_filename: str | None = None
    upstream_url: str | None = None
    upstream_sha256: str | None = None
    files_compared: int = 0
    differences: list[str] = field(default_factory=list)
    statement: str | None = None  # path of the signed statement, when one was written
    verdict: str = NO_UPSTREAM_WHEEL
    alarm: str | None = None  # equivalent before, divergent now
    files: list[dict[str, str]] = field(default_factory=list)  # per file: file, why, detail
    backend: dict[str, Any] = field(default_factory=dict)  # upstream's and ours, matched, why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_pure(filename: str) -> bool:
    try:
        tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return False
    return all(t.abi == "none" and t.platform == "any" for t in tags)


def _members(archive: zipfile.ZipFile) -> dict[str, bytes]:
    """Every file of ``archive``, at most MAX_MEMBERS of them and MAX_UNPACKED bytes in
    all as read (not as the headers claim): upstream's wheel may be a zip bomb. A member
    is kept as its bytes only when it is a top-level dist-info WHEEL, METADATA or RECORD
    within the size it is parsed at; any other is kept as its digest (``_DIGEST``), so
    memory stays a few MiB however much a wheel inflates to."""
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if len(infos) > MAX_MEMBERS:
        raise VerificationError(f"{archive.filename}: more than {MAX_MEMBERS} members")
    out, left = {}, MAX_UNPACKED
    for info in infos:
        keep = _kept_size(info.filename)
        digest, head, size = hashlib.sha256(), bytearray(), 0
        with archive.open(info) as member:
            while block := member.read(min(1 << 20, left + 1 - size)):
                size += len(block)
                if size > left:
                    raise VerificationError(f"{archive.filename}: more than "
                                            f"{MAX_UNPACKED >> 20} MiB unpacked; not compared")
                digest.update(block)
                if len(head) <= keep:
                    head += block
        left -= size
        out[info.filename] = bytes(head) if size <= keep else _DIGEST + digest.digest()
    return out


_DIGEST = b"\0sha256:"  # a member kept as its digest: equal values are equal files


def _digest_only(ours: bytes, theirs: bytes, limit: int) -> bool:
    """Whether either side was too large to keep or to parse (kept as its digest)."""
    return (max(len(ours), len(theirs)) > limit or ours.startswith(_DIGEST)
            or theirs.startswith(_DIGEST))


def _kept_size(name: str) -> int:
    """How much of a member is kept as bytes (-1: none, its digest only)."""
    if name.count("/") != 1 or ".dist-info/" not in name:
        return -1
    if name.endswith("/RECORD"):
        return MAX_PARSED_RECORD
    return MAX_PARSED_METADATA if name.endswith(("/WHEEL", "/METADATA")) else -1


def _regular(path: Path) -> BinaryIO:
    """``path`` opened for reading when it is a regular file: a FIFO planted in the index
    tree or the cache would block a publish or the watch cycle for ever (opened without
    blocking, then refused), a device would be read without end."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return os.fdopen(fd, "rb")


def _unpacked(path: Path) -> dict[str, bytes]:
    """``_members`` of the wheel at ``path``; a file that is not a readable zip (a bad
    CRC, an encrypted or unsupported member, a truncated archive: upstream chose its
    bytes) is a VerificationError in one line, never zipfile's own exception."""
    try:
        with _regular(path) as handle:
            why = too_large(handle, MAX_MEMBERS)
            if why is not None:
                raise VerificationError(f"{path.name}: {why}; not compared")
            with zipfile.ZipFile(handle) as archive:
                return _members(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, RuntimeError,
            EOFError, NotImplementedError) as exc:
        raise VerificationError(f"{path.name}: not a readable wheel "
                                f"({clip_name(str(exc), 200)}); not compared") from None


def _same_record(ours: bytes, theirs: bytes) -> bool:
    """Whether two RECORD files list the same entries (their order ignored); one larger
    than MAX_PARSED_RECORD is the same only byte for byte (a RECORD of distinct lines
    inflated from a small upstream wheel would fill memory as a set)."""
    if ours == theirs:
        return True
    if _digest_only(ours, theirs, MAX_PARSED_RECORD):
        return False
    return _record_lines(ours) == _record_lines(theirs)


def _record_lines(data: bytes) -> set[str]:
    return {line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()}


def compare_wheels(ours: Path, theirs: Path) -> tuple[int, list[str]]:
    """(files compared, differences); no differences means the same files and bytes."""
    left, right = _unpacked(ours), _unpacked(theirs)
    differences = [f"{name}: only in ours" for name in sorted(set(left) - set(right))]
    differences += [f"{name}: only upstream" for name in sorted(set(right) - set(left))]
    for name in sorted(set(left) & set(right)):
        if name.endswith(".dist-info/RECORD") and name.count("/") == 1:
            if not _same_record(left[name], right[name]):
                differences.append(f"{name}: different entries")
        elif left[name] != right[name]:
            differences.append(f"{name}: different bytes")
    return len(set(left) | set(right)), differences


def _generator(data: bytes) -> str | None:
    from factory.lock.backend import read_generator

    return read_generator(data)


def _headers(data: bytes) -> tuple[list[tuple[str, str]], str]:
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
    items = [(k.lower(), str(v)) for k, v in message.items()]
    body = message.get_payload()
    return items, body if isinstance(body, str) else ""


def _metadata_names(ours: bytes, theirs: bytes) -> str:
    """The core-metadata fields whose values differ (names only), and the body."""
    if _digest_only(ours, theirs, MAX_PARSED_METADATA):  # millions of headers: hours, GiBs
        return (f"larger than {MAX_PARSED_METADATA >> 20} MiB: its fields were not compared")
    (left, left_body), (right, right_body) = _headers(ours), _headers(theirs)
    names = sorted({k for k, _ in set(left) ^ set(right)}
                   | {k for k in {k for k, _ in left} | {k for k, _ in right}
                      if [v for n, v in left if n == k] != [v for n, v in right if n == k]})
    parts = [", ".join(clip_name(n) for n in names[:MAX_HEADER_NAMES])
             + (f" (+{len(names) - MAX_HEADER_NAMES} more)" if len(names) > MAX_HEADER_NAMES
                else "")] if names else []
    if left_body != right_body:
        parts.append("the description body")
    return "fields that differ: " + ("; ".join(parts) or "their order or spelling")


def clip_name(text: str, limit: int = 60) -> str:
    """Upstream-controlled text (a member or field name) as printable, bounded text."""
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


def explain(ours: Path, theirs: Path) -> list[dict[str, str]]:
    """Per file, why the two wheels differ: only in ours, only upstream, different bytes
    (for WHEEL the two Generator values, for METADATA the differing field names), and
    for RECORD, whether it only follows the other differences."""
    left, right = _unpacked(ours), _unpacked(theirs)
    out = [{"file": clip_name(n, 300), "why": "only in ours"}
           for n in sorted(set(left) - set(right))]
    out += [{"file": clip_name(n, 300), "why": "only upstream"}
            for n in sorted(set(right) - set(left))]
    record = None
    for name in sorted(set(left) & set(right)):
        top_level = name.count("/") == 1 and ".dist-info/" in name
        if top_level and name.endswith(".dist-info/RECORD"):
            if not _same_record(left[name], right[name]):
                record = name
            continue
        if left[name] == right[name]:
            continue
        item = {"file": clip_name(name, 300), "why": "different bytes"}
        if top_level and name.endswith(".dist-info/WHEEL"):
            item["detail"] = (f"Generator: ours {_generator(left[name])!r}, upstream "
                              f"{_generator(right[name])!r}")
        elif top_level and name.endswith(".dist-info/METADATA"):
            item["detail"] = _metadata_names(left[name], right[name])
        out.append(item)
    if record is not None:
        follows = bool(out)
        out.append({"file": clip_name(record, 300), "why": "different entries",
                    "detail": "follows the other differences (their hashes and sizes)"
                    if follows else "entries differ while every file is the same"})
    return sorted(out, key=lambda item: item["file"])[:MAX_EXPLAINED]


def _upstream_wheel(listing_files: tuple[UpstreamFile, ...], ours: str,
                    version: str) -> UpstreamFile | None:
    candidates = [f for f in listing_files if f.filename.endswith(".whl") and is_pure(f.filename)
                  and f.version is not None and same_version(str(f.version), version)]
    same_name = [f for f in candidates if f.filename == ours]
    best = same_name or candidates
    return best[0] if best else None


def compare_with_upstream(settings: Settings, spec: str, *, index_dir: Path | None = None,
                          sign: bool = True, out_dir: Path | None = None) -> list[Equivalence]:
    """Compare each published pure-Python wheel of ``spec`` (name==version) with upstream's
    wheel of that version as upstream lists it now. A wheel whose record names no
    statement gets one (signed, beside it or in ``out_dir``); one whose record names one
    keeps it (its digest is recorded) and only the ledger hears the new verdict. A wheel
    that was equivalent before and diverges now is an alarm (``Equivalence.alarm``)."""
    match = PIN.match(spec)
    if not match:
        raise TargetError(f"{spec!r} is not NAME==VERSION")
    name, version = match.groups()
    index = IndexView(index_dir or settings.index_dir)
    published = index.by_version(name, version)
    if not published:
        raise TargetError(f"the index publishes no file of {name}=={version}")
    results = []
    from factory.upstream.client import open_upstream

    backend = _locked_backend(settings, name, version)
    with open_upstream(settings) as upstream:
        listing = upstream.project(str(canonicalize_name(name)))
        for item in published:
            result = _compare_one(settings, upstream, listing.files, item, version)
            if is_pure(item.filename):
                result.backend = backend_summary(backend, item.path, result)
            results.append(result)
    pure = [r for r in results if is_pure(r.filename)]
    for result in pure:
        result.alarm = remember(settings, str(canonicalize_name(name)), version, result)
    recorded = {p.filename for p in published if p.entry.sidecars.get(SIDECAR_KIND)}
    unrecorded = [r for r in pure if r.filename not in recorded or out_dir is not None]
    if sign and unrecorded:
        _record(settings, unrecorded, published, out_dir)
    return results


def _compare_one(settings: Settings, upstream: Upstream, files: tuple[UpstreamFile, ...],
                 item: Published, version: str) -> Equivalence:
    result = Equivalence(item.filename, item.entry.sha256, False, "")
    if not is_pure(item.filename):
        result.message = "not a pure-Python wheel: equivalence is not defined for it"
        return result
    found = _upstream_wheel(files, item.filename, version)
    if found is None:
        result.message = f"upstream publishes no pure-Python wheel of {item.project} {version}"
        return result
    if not found.sha256:
        raise UpstreamError(f"upstream lists {found.filename} without a sha256",
                            "an upstream file without a digest cannot be compared safely")
    with tempfile.TemporaryDirectory(prefix="factory-upstream-") as work:
        theirs = upstream.download(found.url, Path(work) / found.filename, sha256=found.sha256,
                                   size=found.size)
        compare(result, item.path, theirs, found.filename, found.url, found.sha256)
    return result


def compare(result: Equivalence, ours: Path, theirs: Path, filename: str, url: str,
            sha256: str) -> Equivalence:
    """Fill ``result`` from comparing ``ours`` with upstream's wheel ``theirs``."""
    result.upstream_filename, result.upstream_url, result.upstream_sha256 = filename, url, sha256
    result.files_compared, result.differences = compare_wheels(ours, theirs)
    result.equivalent = not result.differences
    result.verdict = EQUIVALENT if result.equivalent else DIVERGENT
    result.files = explain(ours, theirs) if result.differences else []
    result.message = (f"same {result.files_compared} files as upstream's {filename}"
                      if result.equivalent else
                      f"{len(result.differences)} difference(s) from upstream's {filename}")
    return result


def _locked_backend(settings: Settings, name: str, version: str) -> Backend | None:
    from factory.lock import load_lock

    try:
        row = load_lock(settings).get(name, version)
    except FactoryError:
        return None
    return row.backend if row is not None else None


def _wheel_generator(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist()
                           if n.count("/") == 1 and n.endswith(".dist-info/WHEEL"))
            if not names:
                return None
            with archive.open(names[0]) as member:
                return _generator(member.read(MAX_WHEEL_FILE + 1))
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError):
        return None


def backend_summary(backend: Backend | None, ours: Path, result: Equivalence) -> dict[str, Any]:
    """Upstream's generator and ours, whether they match, and the lock's reason."""
    upstream_generator = backend.generator if backend is not None else None
    wheel = next((f["detail"] for f in result.files
                  if f["file"].endswith(".dist-info/WHEEL") and "detail" in f), None)
    ours_generator = _wheel_generator(ours)
    summary: dict[str, Any] = {
        "ours": ours_generator, "upstream": upstream_generator,
        "matched": (upstream_generator is not None and ours_generator == upstream_generator)
        or (result.verdict == EQUIVALENT),
        "reason": backend.reason if backend is not None else
        "the lock read no upstream wheel for this version",
    }
    if backend is not None and backend.pin:
        summary["pinned"] = backend.pin
    if wheel is not None and upstream_generator is None:
        summary["upstream"] = wheel
    return summary


def statement(result: Equivalence) -> dict[str, Any]:
    """The in-toto statement of ``result``; its predicate's fields, plainly:
    verdict (equivalent | divergent | no-upstream-wheel), upstream (filename, url,
    digest; null without an upstream wheel), comparison, filesCompared, differences
    (per file: file, why, detail), backend (ours, upstream, matched, reason, pinned),
    message, verifiedOn, verifier."""
    upstream = ({"filename": result.upstream_filename, "url": result.upstream_url,
                 "digest": {"sha256": result.upstream_sha256}}
                if result.upstream_filename else None)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": result.filename, "digest": {"sha256": result.sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "verdict": result.verdict,
            "upstream": upstream,
            "comparison": COMPARISON,
            "filesCompared": result.files_compared,
            "differences": result.files,
            "backend": result.backend,
            "message": result.message,
            "verifiedOn": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "verifier": {"artifact-factory": __version__},
        },
    }


def write_statement(signer: Signer, result: Equivalence, target: Path) -> Path:
    """Sign ``statement(result)`` and write the bundle to ``target``."""
    bundle = signer.sign_statement(statement(result))
    write_text(target, json.dumps(json.loads(bundle), sort_keys=True) + "\n")
    result.statement = str(target)
    return target


def _record(settings: Settings, results: list[Equivalence], published: list[Published],
            out_dir: Path | None) -> None:
    paths = {p.filename: p.path for p in published}
    from factory.sign import open_signer  # and Sigstore: only to sign (the pages read this)

    with open_signer(settings) as signer:
        for result in results:
            wheel = paths[result.filename]
            if sha256_file(wheel) != result.sha256:
                raise VerificationError(f"{wheel} changed while it was being compared")
            write_statement(signer, result, (out_dir or wheel.parent) / (result.filename + SUFFIX))


def read_statement(path: Path) -> dict[str, Any] | None:
    """The in-toto statement inside the equivalence bundle at ``path`` (subject and
    predicate, see ``statement``), NOT verified (``factory verify`` checks the
    signature); None when it is missing, larger than MAX_STATEMENT or not one."""
    try:  # in the index tree: never a FIFO or a device (the watch cycle reads it)
        with _regular(path) as handle:
            data = handle.read(MAX_STATEMENT + 1)
    except OSError:
        return None
    if len(data) > MAX_STATEMENT:
        return None
    try:
        bundle = json.loads(data)
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"], validate=True)
        found = json.loads(payload)
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(found, dict) or found.get("predicateType") != PREDICATE_TYPE \
            or not isinstance(found.get("predicate"), dict):
        return None
    return found


def verdict_of(predicate: dict[str, Any]) -> str:
    """A statement's verdict; the first statements (written only on a match) had none."""
    verdict = predicate.get("verdict", EQUIVALENT)
    return verdict if verdict in VERDICTS else "unknown"


# -- the ledger: each verdict, and the alarm when an equivalent release diverges -----------

def remember(settings: Settings, component: str, version: str, result: Equivalence,
             run_id: str | None = None) -> str | None:
    """Record ``result``'s verdict in the ledger; an alarm (recorded, and returned as one
    line) when the last verdict for this release was equivalent and this one is not."""
    from factory import ledger

    before = ledger.last_equivalence(settings, component, version)
    line = f"{result.verdict}: {result.filename}: {result.message}"[:1000]
    ledger.record_decision(settings, component, ledger.EQUIVALENCE, line, version=version,
                           run_id=run_id)
    if before is None or not before.startswith(EQUIVALENT + ":") \
            or result.verdict != DIVERGENT:
        return None
    files = ", ".join(f"{f['file']} ({f['why']})" for f in result.files[:5])
    alarm = (f"{component} {version} was equivalent to upstream's wheel and now diverges: "
             f"{files or result.message}")[:1000]
    ledger.record_decision(settings, component, ledger.EQUIVALENCE_ALARM, alarm,
                           version=version, run_id=run_id)
    return alarm


# -- at publish time ------------------------------------------------------------------------

class Comparer:
    """The publish run's comparisons: each pure wheel with upstream's wheel the lock
    pinned for its version (``upstream_backend.wheel``: read from the content-addressed
    cache, downloaded there bounded by its size and sha256 when missing). Never raises
    for upstream: an unreachable upstream leaves no statement and a line in ``notes``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.notes: list[str] = []  # for the run's output
        self.alarms: list[str] = []
        self.verdicts: dict[str, str] = {}  # wheel file name -> verdict
        self._upstream: Upstream | None = None
        self._lock: Any = None

    def close(self) -> None:
        if self._upstream is not None:
            self._upstream.close()

    def __enter__(self) -> Comparer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def row_backend(self, component: str, version: str) -> tuple[bool, Backend | None]:
        from factory.lock import Lock, load_lock

        if self._lock is None:
            try:
                self._lock = load_lock(self.settings)
            except FactoryError:
                self._lock = Lock()
        row = self._lock.get(component, version)
        return row is not None, (row.backend if row is not None else None)

    def _upstream_wheel(self, pin: dict[str, Any]) -> Path:
        from factory.upstream import cache

        path = cache.cache_path(self.settings, pin["sha256"], pin["filename"])
        if path.is_file() and sha256_file(path) == pin["sha256"]:
            return path
        if self._upstream is None:
            from factory.upstream.client import open_upstream

            self._upstream = open_upstream(self.settings)
        return self._upstream.download(pin["url"], path, sha256=pin["sha256"], size=pin["size"])

    def write(self, signer: Signer, component: str, version: str, wheel: Path,
              sha256: str, target: Path, run_id: str | None = None) -> Equivalence | None:
        """Compare ``wheel`` (pure) with upstream's and write the signed statement to
        ``target``; None (and a note) when there is nothing to say or upstream is not
        reachable."""
        target.unlink(missing_ok=True)  # never publish a statement of an earlier attempt
        if not is_pure(wheel.name):
            return None
        try:
            return self._write(signer, component, version, wheel, sha256, target, run_id)
        except Exception as exc:  # noqa: BLE001  never blocks publishing: said instead
            target.unlink(missing_ok=True)
            why = exc.message if isinstance(exc, FactoryError) else type(exc).__name__
            self.notes.append(f"no equivalence statement for {wheel.name}: {why}")
            return None

    def _write(self, signer: Signer, component: str, version: str, wheel: Path,
               sha256: str, target: Path, run_id: str | None) -> Equivalence | None:
        result = self.compare(component, version, wheel, sha256)
        if result is None:
            return None
        write_statement(signer, result, target)
        self.verdicts[wheel.name] = result.verdict
        try:
            alarm = remember(self.settings, component, version, result, run_id)
        except Exception as exc:  # noqa: BLE001  the statement stands; the ledger is said
            self.notes.append(f"equivalence of {wheel.name} not recorded in the ledger: "
                              f"{type(exc).__name__}")
            alarm = None
        if alarm is not None:
            result.alarm = alarm
            self.alarms.append(alarm)
        return result

    def compare(self, component: str, version: str, wheel: Path,
                sha256: str) -> Equivalence | None:
        """``wheel`` against upstream's wheel the lock pinned for its version; None when
        the lock has no row for it, or (with a note) when upstream's cannot be read."""
        locked, backend = self.row_backend(component, version)
        result = Equivalence(wheel.name, sha256, False, "")
        if backend is not None and backend.wheel is not None:
            try:
                theirs = self._upstream_wheel(backend.wheel)
            except FactoryError as exc:
                self.notes.append(f"no equivalence statement for {wheel.name}: upstream's "
                                  f"{backend.wheel['filename']} could not be read "
                                  f"({exc.message})")
                return None
            try:
                compare(result, wheel, theirs, backend.wheel["filename"], backend.wheel["url"],
                        backend.wheel["sha256"])
            except VerificationError as exc:  # upstream's bytes: said, never raised out
                self.notes.append(f"no equivalence statement for {wheel.name}: "
                                  f"{exc.message}")
                return None
        elif not locked:  # nothing known of upstream's wheel (no lock): nothing to say
            return None
        else:
            result.message = (f"upstream published no pure-Python wheel of {component} "
                              f"{version} when it was locked")
        result.backend = backend_summary(backend, wheel, result)
        return result

    def summary(self) -> str:
        """One line: the verdicts of this run's pure wheels ("" when it gave none)."""
        if not self.verdicts:
            return ""
        counts = {v: sum(1 for x in self.verdicts.values() if x == v) for v in VERDICTS}
        return ", ".join(f"{counts[v]} {v}" for v in VERDICTS)


@dataclass
class Rate:
    """How many pure wheels are equivalent to upstream's, and why the others are not."""

    equivalent: int = 0
    pure: int = 0
    others: dict[str, str] = field(default_factory=dict)  # wheel -> verdict and why

    def line(self) -> str:
        share = f" ({100 * self.equivalent / self.pure:.1f} %)" if self.pure else ""
        rest = "; ".join(f"{name}: {why}" for name, why in sorted(self.others.items()))
        return f"{self.equivalent}/{self.pure} equivalent{share}" + (f"; {rest}" if rest else "")


def rate(settings: Settings, wheels: list[Path]) -> Rate:
    """The equivalence of ``wheels`` (their pure ones, whose lock rows ``settings`` reads)
    with upstream's wheels the lock pins; nothing is signed or recorded."""
    found = Rate()
    with Comparer(settings) as comparer:
        for wheel in sorted(wheels, key=lambda p: p.name):
            if not is_pure(wheel.name):
                continue
            name, version, *_ = parse_wheel_filename(wheel.name)
            noted = len(comparer.notes)
            result = comparer.compare(str(name), str(version), wheel, sha256_file(wheel))
            found.pure += 1
            if result is None:
                found.others[wheel.name] = (comparer.notes[-1] if len(comparer.notes) > noted
                                            else "no lock row: not compared")
            elif result.verdict == EQUIVALENT:
                found.equivalent += 1
            else:
                files = ", ".join(f"{f['file'].rsplit('/', 1)[-1]} {f['why']}"
                                  for f in result.files[:3])
                why = result.backend.get("reason", "")
                found.others[wheel.name] = f"{result.verdict} ({files or result.message}; {why})"
    return found


def recheck(settings: Settings, index_dir: Path | None = None,
            run_id: str | None = None) -> tuple[list[str], list[str]]:
    """(notes, alarms): each published pure wheel whose statement was equivalent and
    names another upstream wheel than the lock pins now (upstream replaced its wheel)
    is compared again, the verdict recorded in the ledger; an equivalent release that
    diverges now is an alarm. The recorded statement stays (its digest is recorded):
    the ledger, the run's output and `factory status` carry the new verdict."""
    view = IndexView(index_dir or settings.index_dir)
    with Comparer(settings) as comparer:
        for item in view.all() if view.exists() else []:
            stored = item.entry.sidecars.get(SIDECAR_KIND)
            if not stored or item.entry.yanked or not is_pure(item.filename):
                continue
            _, backend = comparer.row_backend(item.project, item.entry.version)
            if backend is None or backend.wheel is None:
                continue  # nothing to compare with: the statement is not read
            found = read_statement(view.root / stored[0].path)
            predicate = found["predicate"] if found else {}
            said = (predicate.get("upstream") or {}).get("digest", {}).get("sha256")
            if verdict_of(predicate) != EQUIVALENT or backend.wheel["sha256"] == said:
                continue
            result = comparer.compare(item.project, item.entry.version, item.path,
                                      item.entry.sha256)
            if result is None:
                continue
            alarm = remember(settings, item.project, item.entry.version, result, run_id)
            if alarm is not None:
                comparer.alarms.append(alarm)
        return comparer.notes, comparer.alarms
