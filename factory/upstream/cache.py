"""The content-addressed source cache, and ``Sdist``: the one type for an upstream sdist.

An sdist is kept under ``sources/sha256/<hex>/<filename>`` only after its size
and sha256 match its pin and its own metadata names the project and version it
is filed under. What is read from a cached sdist (a root member, its metadata)
is remembered beside it: its bytes never change, so neither does the answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.parser
import functools
import json
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from factory._internal.atomic import clean_temporaries, sha256_file, write_bytes, write_json
from factory._internal.digests import file_state, sha256_of
from factory.config import Settings
from factory.errors import AlarmError, IntegrityError, LockError, printable
from factory.upstream import archive, git
from factory.upstream.archive import SdistMetadata
from factory.upstream.listing import (
    UpstreamFile,
    is_plain_file_name,
    is_project_name,
    is_sha256,
)

if TYPE_CHECKING:  # the HTTP client is imported when a fetch needs it (verify never does)
    from factory.upstream.client import Upstream

# A download a crash interrupted leaves a .tmp-* file beside its cache entry; one
# untouched this long has no live writer (the stream rewrites it as bytes arrive).
STALE_TEMPORARY_SECONDS = 3600.0


@dataclass(frozen=True)
class Sdist:
    """One upstream sdist, named and pinned: what the lock pins, a build consumes and
    the index keeps. Each of those files spells it its own way (recipes.lock leaves out
    the name and version its row already gives; a build record, the upload time; an
    index record keeps the URL as ``upstream_url``), so each serializes it itself."""

    name: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int
    upload_time: str | None = None

    @classmethod
    def from_listing(cls, file: UpstreamFile, name: str, version: str, *,
                     sha256: str | None = None, size: int | None = None) -> Sdist:
        """The pin of the listed sdist ``file``: ``sha256`` and ``size`` stand in for what
        the listing did not say (a git tag's archive, an HTML page without sizes).

        A listing entry stays its own type (``UpstreamFile``): it may be a wheel, may
        be yanked, may lack a hash or size; a pin has all of its bytes' identity."""
        digest, length = sha256 or file.sha256, size if size is not None else file.size
        if digest is None or length is None:
            raise ValueError(f"{file.filename}: a pin needs a sha256 and a size")
        return cls(name, version, file.filename, file.url, digest, length, file.upload_time)

    @property
    def from_git(self) -> bool:
        """An archive of a git tag's commit (a ``git+`` URL), not an index's file."""
        return self.url.startswith(git.PREFIX)


def cache_path(settings: Settings, sha256: str, filename: str) -> Path:
    """Where the sdist of ``sha256`` named ``filename`` is kept: always a file directly in
    ``sources/sha256/<sha256>/``. The lock and the listings are checked long before
    this; the check here holds even if they were not (defence in depth)."""
    base = settings.sources_dir / "sha256"
    if not is_sha256(sha256) or not is_plain_file_name(filename):
        raise IntegrityError(f"refusing to cache {printable(repr(filename))[:120]} under "
                             f"{printable(repr(sha256))[:80]}: not a sha256 and a plain file name",
                             "recipes.lock or the upstream listing is corrupt; run `factory lock`")
    path = base / sha256 / filename
    # a symlinked directory in the cache would carry the write elsewhere
    if not path.resolve().is_relative_to(_resolved(str(base))):
        raise IntegrityError(f"{filename}: its cache path leaves {base}",
                             f"remove the links under {base}")
    return path


@functools.lru_cache(maxsize=64)
def _resolved(base: str) -> Path:
    """The cache root as it resolved first in this process: a root replaced by a link
    later makes every path leave it (refused), never the other way round."""
    return Path(base).resolve()


def is_cached(sdist: Path) -> bool:
    """True for a file of the content-addressed cache (sha256/<hex>/<file>)."""
    return sdist.parent.parent.name == "sha256" and len(sdist.parent.name) == 64


def fetch(settings: Settings, sdist: Sdist, upstream: Upstream | None = None,
          progress: Callable[[int, int | None], None] | None = None) -> Path:
    """The pinned sdist, verified (bytes, then the project and version its own metadata
    names), from the cache or downloaded into it."""
    key = canonicalize_name(sdist.name)
    path = cache_path(settings, sdist.sha256, sdist.filename)
    if _verified_before(path, sdist, key):
        return path
    path = _fetch(settings, sdist, key, upstream, progress)
    check_identity(path, key, sdist.version, git=sdist.from_git)
    _remember_verified(path, sdist, key)
    return path


# What fetch verified (bytes and identity) is stamped beside the file with the file's
# state; while the state holds, a no-op run does not hash and parse it again.
def _stamp_path(path: Path) -> Path:
    return path.with_name(f".verified-{path.name}.json")


def _stamp(path: Path, sdist: Sdist, key: str) -> dict[str, str | None]:
    return {"sha256": sdist.sha256, "project": key, "version": sdist.version,
            "state": file_state(path)}


def _verified_before(path: Path, sdist: Sdist, key: str) -> bool:
    try:
        said = json.loads(_stamp_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    now = _stamp(path, sdist, key)
    return now["state"] is not None and said == now


def _remember_verified(path: Path, sdist: Sdist, key: str) -> None:
    stamp = _stamp(path, sdist, key)
    if stamp["state"] is None:
        return
    with contextlib.suppress(OSError):  # a read-only cache works; it is verified each time
        write_json(_stamp_path(path), stamp)


def _fetch(settings: Settings, sdist: Sdist, key: str, upstream: Upstream | None,
           progress: Callable[[int, int | None], None] | None) -> Path:
    path = cache_path(settings, sdist.sha256, sdist.filename)
    clean_temporaries(path.parent, older_than=STALE_TEMPORARY_SECONDS)
    if path.is_file():
        actual = sha256_of(path)
        if actual == sdist.sha256:
            return path
        path.unlink()  # a corrupted cache entry is replaced, never used
    try:
        if sdist.from_git:
            return git.fetch(sdist.url, key, sdist.version, path, sdist.sha256, sdist.size)
        own = upstream is None
        from factory.upstream.client import open_upstream

        client = upstream or open_upstream(settings)
        try:
            return client.download(sdist.url, path, sha256=sdist.sha256, size=sdist.size,
                                   progress=progress)
        finally:
            if own:
                client.close()
    except AlarmError as exc:  # say which pin the alarm is about, for the ledger
        raise AlarmError(exc.message, exc.hint, component=key, version=sdist.version) from None


def check_identity(sdist: Path, name: str, version: str, git: bool = False) -> None:
    """The sdist's own metadata (PKG-INFO) names ``name`` and ``version``, or LockError.

    A file filed under one project that says it is another would otherwise be
    built, attested and published as the project it was filed under. A git
    archive has no PKG-INFO: its pyproject's [project] is checked where it says.
    """
    try:
        raw = read_member(sdist, "PKG-INFO")
        if raw is None and not git:
            raise LockError(f"{sdist.name}: the sdist has no PKG-INFO to say what it is",
                            "an sdist must carry PKG-INFO; report it upstream or pin another "
                            "version")
        meta = (archive.parse_pkg_info(raw) if raw is not None
                else archive.parse_pyproject(read_member(sdist, "pyproject.toml")))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError,
            ValueError) as exc:  # what a corrupt or hostile archive raises
        raise LockError(f"{sdist.name}: not a readable sdist ({printable(str(exc))[:120]})",
                        "report it upstream or pin another version") from None
    if raw is not None:  # each exactly once, as admission requires: a second one is ambiguous
        headers = email.parser.BytesHeaderParser().parsebytes(raw)
        if any(len(headers.get_all(field) or ()) > 1 for field in ("Name", "Version")):
            raise LockError(f"{sdist.name}: its PKG-INFO has more than one Name or Version",
                            "the sdist does not say clearly what it is; report it upstream "
                            "and do not lock it")
    if meta is None:
        return
    said = f"its {'PKG-INFO' if raw is not None else 'pyproject.toml'} says"
    if (meta.name or raw is not None) and not (
            is_project_name(meta.name) and canonicalize_name(meta.name) == canonicalize_name(name)):
        raise LockError(f"{sdist.name}: {said} Name: {printable(meta.name)[:100]!r}, the lock "
                        f"has {name}", "the sdist is not the project it is filed under; "
                        "report it upstream and do not lock it")
    if meta.version or raw is not None:
        try:
            same = Version(meta.version) == Version(version)
        except InvalidVersion:
            same = False
        if not same:
            raise LockError(f"{sdist.name}: {said} Version: {printable(meta.version)[:60]!r}, "
                            f"the lock has {version}", "the sdist is not the version it is filed "
                            "under; report it upstream and pin another version")


def verify_cached(path: Path, sha256: str) -> None:
    actual = sha256_file(path)
    if actual != sha256:
        raise IntegrityError(f"{path.name}: sha256 mismatch: expected {sha256}, got {actual}")


# -- what a cached sdist says, remembered ------------------------------------------------

def read_member(sdist: Path, relative: str,
                max_bytes: int = archive.MAX_MEMBER_READ) -> bytes | None:
    """``archive.read_member``, remembered beside a cached sdist: a no-op run must not
    decompress every archive again. Any other file is read each time."""
    if not is_cached(sdist):
        return archive.read_member(sdist, relative, max_bytes)
    memo = sdist.parent / f".member-{relative}"
    if memo.is_file():
        return memo.read_bytes()
    if memo.with_suffix(".absent").is_file():
        return None
    data = archive.read_member(sdist, relative, max_bytes)
    if data is None:
        write_bytes(memo.with_suffix(".absent"), b"")
    else:
        write_bytes(memo, data)
    return data


def remembered(sdist: Path, name: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, a JSON value about a cached sdist's bytes, remembered beside it:
    its bytes never change, so neither does the answer. Any other file is asked
    each time. ``name`` says what the answer is, and changes when its form does."""
    if not is_cached(sdist):
        return compute()
    memo = sdist.parent / f".{name}.json"
    try:
        return json.loads(memo.read_text(encoding="utf-8"))["value"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = compute()
    with contextlib.suppress(OSError):
        write_json(memo, {"value": value})
    return value


def read_metadata(sdist: Path) -> SdistMetadata | None:
    """``archive.read_metadata``, remembered beside a cached sdist."""
    def parse() -> dict[str, Any] | None:
        meta = archive.read_metadata(sdist, read_member)
        return None if meta is None else dataclasses.asdict(meta)

    found = remembered(sdist, "metadata-2", parse)
    if found is None:
        return None
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                              for k, v in found.items()}
    try:
        return SdistMetadata(**fields)
    except TypeError:  # a memo of another form: read it again
        return archive.read_metadata(sdist, read_member)
