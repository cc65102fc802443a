"""Equivalence with upstream: is our pure-Python wheel the same as upstream's?

A pure-Python wheel built from the same sdist should hold the same files with
the same bytes; only the zip container differs (timestamps, member order,
compression) and the order of RECORD lines. ``compare_wheels`` ignores exactly
those. A match is recorded as an in-toto statement signed through Sigstore
(``open_signer``), written next to our wheel as ``<wheel>.equivalence.json``
(a Sigstore DSSE bundle), which ``factory verify`` then checks as well.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from factory import __version__
from factory._internal.atomic import sha256_file, write_text
from factory.config import Settings
from factory.errors import UpstreamError, VerificationError
from factory.sign import open_signer
from factory.sign.bundles import STATEMENT_TYPE
from factory.upstream.listing import UpstreamFile
from factory.verify.targets import PIN, TargetError
from factory.verify.view import IndexView, Published, same_version

if TYPE_CHECKING:  # the HTTP client only when comparing (verify reads the constants)
    from factory.upstream.client import Upstream

PREDICATE_TYPE = "https://factory.invalid/attestations/upstream-equivalence/v1"
SUFFIX = ".equivalence.json"
COMPARISON = ("identical file contents; zip timestamps, member order and compression and "
              "the order of RECORD lines ignored")


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_pure(filename: str) -> bool:
    try:
        tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return False
    return all(t.abi == "none" and t.platform == "any" for t in tags)


def _members(archive: zipfile.ZipFile) -> dict[str, bytes]:
    return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}


def _record_lines(data: bytes) -> set[str]:
    return {line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()}


def compare_wheels(ours: Path, theirs: Path) -> tuple[int, list[str]]:
    """(files compared, differences); no differences means the same files and bytes."""
    with zipfile.ZipFile(ours) as a, zipfile.ZipFile(theirs) as b:
        left, right = _members(a), _members(b)
    differences = [f"{name}: only in ours" for name in sorted(set(left) - set(right))]
    differences += [f"{name}: only upstream" for name in sorted(set(right) - set(left))]
    for name in sorted(set(left) & set(right)):
        if name.endswith(".dist-info/RECORD") and name.count("/") == 1:
            if _record_lines(left[name]) != _record_lines(right[name]):
                differences.append(f"{name}: different entries")
        elif left[name] != right[name]:
            differences.append(f"{name}: different bytes")
    return len(set(left) | set(right)), differences


def _upstream_wheel(listing_files: tuple[UpstreamFile, ...], ours: str,
                    version: str) -> UpstreamFile | None:
    candidates = [f for f in listing_files if f.filename.endswith(".whl") and is_pure(f.filename)
                  and f.version is not None and same_version(str(f.version), version)]
    same_name = [f for f in candidates if f.filename == ours]
    best = same_name or candidates
    return best[0] if best else None


def compare_with_upstream(settings: Settings, spec: str, *, index_dir: Path | None = None,
                          sign: bool = True, out_dir: Path | None = None) -> list[Equivalence]:
    """Compare each published pure-Python wheel of ``spec`` (name==version) with upstream's."""
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

    with open_upstream(settings) as upstream:
        listing = upstream.project(str(canonicalize_name(name)))
        for item in published:
            results.append(_compare_one(settings, upstream, listing.files, item, version))
    if sign and any(r.equivalent for r in results):
        _record(settings, [r for r in results if r.equivalent], published, out_dir)
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
    result.upstream_filename, result.upstream_url = found.filename, found.url
    result.upstream_sha256 = found.sha256
    with tempfile.TemporaryDirectory(prefix="factory-upstream-") as work:
        theirs = upstream.download(found.url, Path(work) / found.filename, sha256=found.sha256,
                                   size=found.size)
        result.files_compared, result.differences = compare_wheels(item.path, theirs)
    result.equivalent = not result.differences
    result.message = (f"same {result.files_compared} files as upstream's {found.filename}"
                      if result.equivalent else
                      f"{len(result.differences)} difference(s) from upstream's {found.filename}")
    return result


def statement(result: Equivalence) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": result.filename, "digest": {"sha256": result.sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "upstream": {"filename": result.upstream_filename, "url": result.upstream_url,
                         "digest": {"sha256": result.upstream_sha256}},
            "comparison": COMPARISON,
            "filesCompared": result.files_compared,
            "verifiedOn": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "verifier": {"artifact-factory": __version__},
        },
    }


def _record(settings: Settings, results: list[Equivalence], published: list[Published],
            out_dir: Path | None) -> None:
    paths = {p.filename: p.path for p in published}
    with open_signer(settings) as signer:
        for result in results:
            wheel = paths[result.filename]
            if sha256_file(wheel) != result.sha256:
                raise VerificationError(f"{wheel} changed while it was being compared")
            bundle = signer.sign_statement(statement(result))
            target = (out_dir or wheel.parent) / (result.filename + SUFFIX)
            write_text(target, json.dumps(json.loads(bundle), sort_keys=True) + "\n")
            result.statement = str(target)
