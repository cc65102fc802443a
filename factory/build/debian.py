"""Which Debian package provides a file: the builder suite's Contents index.

A native build that fails for a missing header, library, pkg-config module or
tool should name the Debian package to add to its recipe. Debian publishes, per
suite and architecture, a Contents index listing every file of every package
(``dists/<suite>/main/Contents-<arch>.gz``, and ``Contents-all.gz`` for the
architecture-independent packages). The factory reads it from the mirror its
builder image comes from (``factory.build.image``: SUITE, MIRROR).

The mirror is not trusted. What is kept of it is bound to Debian's signature:
``InRelease`` is checked with ``gpgv`` against the Debian archive keyring (the
one ``debootstrap`` checks the image's packages with), and each Contents file
must have the size and sha256 that the verified Release names. The Contents text
is then parsed defensively (bounded lines and totals, package names in Debian's
charset, paths in a conservative charset with no ``.``/``..`` segment) and only
what a build can miss is kept, in a small SQLite file
(``<state>/debian/<suite>-<arch>/lookup.sqlite``): headers under
``usr/include``, libraries in the linker's directories, pkg-config modules,
programs in ``bin`` directories, and CMake package configuration files.

The download (about 45 MB for bookworm) happens once; after that the mirror is
asked at most once a day, with a conditional request for ``InRelease`` only,
and a Contents file is fetched again only when the signed Release names other
bytes for it. Nothing of the mirror is ever executed. ``FACTORY_DEBIAN_LOOKUP=off``
keeps the factory from asking the mirror at all (a lookup already kept is used).

    found = lookup(settings)           # LookupUnavailable when it cannot be had
    found.providers("header", "ffi.h")  # ["libffi-dev"]
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Protocol

import httpx

from factory._internal.atomic import sha256_file, write_bytes, write_json
from factory.build.image import MIRROR, SUITE
from factory.config import Settings
from factory.errors import FactoryError, one_line
from factory.upstream.client import Upstream
from factory.upstream.transport import Deadline, HostPolicy, Transport

ARCH = "amd64"
TRIPLET = "x86_64-linux-gnu"
# The arch file lists arch-specific packages only; headers of arch-independent
# ones (pybind11-dev, libeigen3-dev ...) are in the "all" file, when the suite has one.
CONTENTS = (f"main/Contents-{ARCH}.gz", "main/Contents-all.gz")
REQUIRED = CONTENTS[0]
KEYRING = Path(os.environ.get("FACTORY_DEBIAN_KEYRING",
                              "/usr/share/keyrings/debian-archive-keyring.gpg"))
SCHEMA = "1"
SWITCH = "FACTORY_DEBIAN_LOOKUP"
FRESH_SECONDS = 24 * 3600  # a checked index is used this long without asking the mirror
RETRY_SECONDS = 600  # after a failed refresh, builds failing meanwhile do not wait again
RELEASE_DEADLINE = 60.0  # seconds for InRelease, retries and redirects included
MAX_RELEASE = 4 << 20  # bytes of InRelease (bookworm's: 150 KB)
MAX_CONTENTS = 256 << 20  # compressed bytes of one Contents file (bookworm's largest: 34 MB)
MAX_INFLATED = 4 << 30  # decompressed bytes of one (bookworm's largest: 520 MB)
MAX_LINE = 4096  # bytes of one Contents line (bookworm's longest: 329)
MAX_ROWS = 4_000_000  # files kept in all (bookworm: about 350,000)
MAX_PACKAGES = 64  # packages one line may name
KINDS = ("header", "library", "pkgconfig", "tool", "cmake")

# Debian policy 5.6.1: lower case letters, digits, + - . ; at least two, a letter or digit first.
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]{1,99}")
_SECTION = re.compile(r"[a-z0-9][a-z0-9+._-]{0,49}")
# Segments of a kept path: no ".", "..", hidden names, spaces, controls or non-ASCII.
_SEGMENT = r"[A-Za-z0-9_+@,=~-][A-Za-z0-9_.+@,=~-]{0,254}"
_PATH = re.compile(f"{_SEGMENT}(?:/{_SEGMENT})*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PRINTABLE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?")  # ASCII; tabs inside
_ETAG = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,1023}")
_LIB_DIRS = frozenset({f"usr/lib/{TRIPLET}", f"lib/{TRIPLET}", "usr/lib", "lib",
                       "usr/lib64", "lib64"})
_LIBRARY = re.compile(r"lib[A-Za-z0-9_+@,=~.-]+\.(?:a|so(?:\.[0-9][A-Za-z0-9.]*)?)")
_PC_DIRS = frozenset({f"usr/lib/{TRIPLET}/pkgconfig", "usr/lib/pkgconfig", "usr/share/pkgconfig"})
_BIN_DIRS = frozenset({"usr/bin", "bin", "usr/sbin", "sbin"})
_CMAKE = re.compile(r"(.+?)-?config\.cmake", re.IGNORECASE)
# The first look at the text: the lines that may hold a kept file (``_classify`` has
# the last word). Most of the 7 million are documentation, data and Python modules.
_CANDIDATE = re.compile(
    rb"\n((?:usr/include/"
    rb"|(?:usr/)?(?:s?bin|lib|lib64|lib/" + TRIPLET.encode() + rb")/[^/\s]+[ \t]"
    rb"|(?:usr/lib/" + TRIPLET.encode() + rb"|usr/lib|usr/share)/pkgconfig/[^/\s]+[ \t]"
    rb")[^\n]*)")
_CMAKE_MARK = b"onfig.cmake"  # found with bytes.find: rare, and the regex would be slow
BLOCK = 4 << 20  # decompressed bytes read at a time

_REFRESH = threading.Lock()  # builds fail in threads: one of them refreshes, the rest wait
_FAILED: dict[Path, tuple[float, str]] = {}  # directory -> (when, why) of the last failure


class LookupUnavailable(FactoryError):
    """The Contents index could not be had (mirror down, bad signature, damaged file)."""

    default_hint = (f"check that the Debian mirror {MIRROR} is reachable "
                    "(FACTORY_DEBIAN_MIRROR), then build again")


@dataclass(frozen=True)
class Provider:
    """One package that ships a file: its name and whether it is in Debian's main area."""

    name: str
    main: bool = True


@dataclass(frozen=True)
class Entry:
    """A file the index keeps: its kind, the key it is found by, its path, its packages.

    ``path`` is relative to ``usr/include`` for headers, else to the root."""

    kind: str
    key: str
    path: str
    packages: tuple[Provider, ...]


# -- parsing a Contents file ---------------------------------------------------------------

class Readable(Protocol):
    """A binary stream of the decompressed text (a gzip file, BytesIO)."""

    def read(self, size: int = -1, /) -> bytes: ...


def parse_contents(stream: Readable, max_inflated: int = MAX_INFLATED) -> Iterator[Entry]:
    """The kept entries of a Contents file.

    The text is read in blocks; a regular expression picks the lines that may hold
    a kept file (a few hundred thousand of seven million) and only those are
    parsed. A line longer than MAX_LINE is skipped whole; a line that is not
    ``PATH  [[AREA/]SECTION/]PACKAGE[,...]`` with a path and names as Debian makes
    them is skipped. More than ``max_inflated`` bytes in all is a
    ``LookupUnavailable`` (a decompression bomb, or not a Contents file).
    """
    total, carry, skipping = 0, b"", False
    while block := stream.read(BLOCK):
        total += len(block)
        if total > max_inflated:
            raise LookupUnavailable(f"a Contents file decompresses to more than "
                                    f"{max_inflated} bytes; refused")
        if skipping:  # the rest of an overlong line, up to its end
            end = block.find(b"\n")
            if end < 0:
                continue
            block, skipping = block[end + 1:], False
        text = carry + block
        cut = text.rfind(b"\n") + 1
        text, carry = text[:cut], text[cut:]
        if len(carry) > MAX_LINE:
            carry, skipping = b"", True
        yield from _entries(text)
    if not skipping:
        yield from _entries(carry)


def _entries(text: bytes) -> Iterator[Entry]:
    # The leading newline lets the search jump from line to line (a literal prefix).
    lines = [found.group(1) for found in _CANDIDATE.finditer(b"\n" + text)]
    lines += _cmake_lines(text)
    for line in lines:
        if len(line) <= MAX_LINE and (entry := parse_line(line)) is not None:
            yield entry


def _cmake_lines(text: bytes) -> Iterator[bytes]:
    """The lines naming a CMake package configuration file (``...Config.cmake``)."""
    at = text.find(_CMAKE_MARK)
    while at >= 0:
        start, end = text.rfind(b"\n", 0, at) + 1, text.find(b"\n", at)
        end = len(text) if end < 0 else end
        if text.startswith((b"usr/lib/", b"usr/share/"), start):
            yield text[start:end]
        at = text.find(_CMAKE_MARK, end)


def parse_line(raw: bytes) -> Entry | None:
    """One Contents line as an entry, or None when it is malformed or not kept."""
    try:
        text = raw.decode("ascii").rstrip("\n")
    except UnicodeDecodeError:
        return None  # no file a build can miss has a non-ASCII name
    if not _PRINTABLE.fullmatch(text):
        return None  # controls: the only separators are spaces and tabs
    fields = text.rsplit(None, 1)  # a path may hold spaces; the package list may not
    if len(fields) != 2:
        return None
    path, located = fields[0].rstrip(), fields[1]
    packages = _packages(located)
    if not packages or not _safe_path(path):
        return None
    kept = _classify(path)
    return Entry(kept[0], kept[1], kept[2], packages) if kept else None


def _packages(located: str) -> tuple[Provider, ...]:
    # The same package lists repeat line after line: each is parsed once.
    known = _PACKAGE_LISTS.get(located)
    if known is None:
        known = _parse_packages(located)
        if len(_PACKAGE_LISTS) >= 1 << 18:
            _PACKAGE_LISTS.clear()
        _PACKAGE_LISTS[located] = known
    return known


_PACKAGE_LISTS: dict[str, tuple[Provider, ...]] = {}


def _parse_packages(located: str) -> tuple[Provider, ...]:
    names = located.split(",")
    if len(names) > MAX_PACKAGES:
        return ()
    found = []
    for item in names:
        *where, name = item.split("/")
        if len(where) > 2 or not _PACKAGE.fullmatch(name) or not all(
                _SECTION.fullmatch(w) for w in where):
            return ()
        found.append(Provider(name, main=len(where) < 2 or where[0] == "main"))
    return tuple(found)


def _safe_path(path: str) -> bool:
    return len(path) <= 1024 and _PATH.fullmatch(path) is not None


def _classify(path: str) -> tuple[str, str, str] | None:
    """(kind, key, path) for the files a build can miss; None for the rest."""
    parent, _, name = path.rpartition("/")
    if path.startswith("usr/include/"):
        return "header", name, path.removeprefix("usr/include/")
    if parent in _LIB_DIRS and _LIBRARY.fullmatch(name):
        return "library", name, path
    if parent in _PC_DIRS and name.endswith(".pc") and len(name) > 3:
        return "pkgconfig", name.removesuffix(".pc"), path
    if parent in _BIN_DIRS:
        return "tool", name, path
    if (path.startswith(("usr/lib/", "usr/share/"))
            and ("/cmake/" in path or "/CMake/" in path)
            and (config := _CMAKE.fullmatch(name))):
        return "cmake", config.group(1).lower(), path
    return None


# -- the derived lookup ---------------------------------------------------------------------

# Compact: a file is (kind, key, directory, package), directories and packages stored
# once; the table is its own index (WITHOUT ROWID). Bookworm's: about 12 MB.
_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE packages (id INTEGER PRIMARY KEY, name TEXT NOT NULL, main INTEGER NOT NULL);
CREATE TABLE dirs (id INTEGER PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE files (kind INTEGER NOT NULL, key TEXT NOT NULL, dir INTEGER NOT NULL,
                    package INTEGER NOT NULL, PRIMARY KEY (kind, key, dir, package))
                    WITHOUT ROWID;
"""


class _Builder:
    """Rows for the lookup, with directories and packages numbered once."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.executescript(_TABLES)
        self.packages: dict[Provider, int] = {}
        self.dirs: dict[str, int] = {}
        self.batch: list[tuple[int, str, int, int]] = []
        self.rows = 0

    def add(self, entry: Entry) -> None:
        parent = entry.path.rpartition("/")[0]
        folder = self.dirs.setdefault(parent, len(self.dirs) + 1)
        kind = KINDS.index(entry.kind)
        for provider in entry.packages:
            package = self.packages.setdefault(provider, len(self.packages) + 1)
            self.batch.append((kind, entry.key, folder, package))
        if len(self.batch) >= 10_000:
            self.flush()

    def flush(self) -> None:
        self.rows += len(self.batch)
        if self.rows > MAX_ROWS:
            raise LookupUnavailable(f"the Contents index holds more than {MAX_ROWS} kept "
                                    "files; refused")
        self.db.executemany("INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?)", self.batch)
        self.batch.clear()

    def finish(self, meta: dict[str, str]) -> bytes:
        self.flush()
        self.db.executemany("INSERT INTO packages VALUES (?, ?, ?)",
                            [(i, p.name, int(p.main)) for p, i in self.packages.items()])
        self.db.executemany("INSERT INTO dirs VALUES (?, ?)",
                            [(i, d) for d, i in self.dirs.items()])
        self.db.executemany("INSERT INTO meta VALUES (?, ?)",
                            sorted({**meta, "schema": SCHEMA}.items()))
        self.db.commit()
        self.db.execute("VACUUM")
        return self.db.serialize()


def build_lookup(sources: list[Path], target: Path, meta: dict[str, str]) -> None:
    """Parse the gzipped Contents ``sources`` into the SQLite file ``target`` (atomically)."""
    builder = _Builder()
    try:
        for source in sources:
            try:
                with gzip.open(source, "rb") as stream:
                    for entry in parse_contents(stream):
                        builder.add(entry)
            except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
                raise LookupUnavailable(f"{source.name} is not a readable gzip file "
                                        f"({type(exc).__name__})") from None
        write_bytes(target, builder.finish(meta))
    finally:
        builder.db.close()


class Lookup:
    """The derived index: which packages ship a header, library, module, tool."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                  check_same_thread=False)

    def close(self) -> None:
        self.db.close()

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def files(self, kind: str, key: str) -> list[tuple[str, Provider]]:
        """(where, package) of every kept file of ``kind`` found by ``key``: ``where`` is
        the file's directory joined with the key (its path, but for pkg-config and CMake)."""
        found = self.db.execute(
            "SELECT dirs.path, packages.name, packages.main FROM files "
            "JOIN dirs ON dirs.id = files.dir JOIN packages ON packages.id = files.package "
            "WHERE files.kind = ? AND files.key = ? LIMIT 10000", (KINDS.index(kind), key))
        return [(f"{folder}/{key}" if folder else key, Provider(str(name), bool(main)))
                for folder, name, main in found]

    def providers(self, kind: str, wanted: str) -> list[str]:
        """The packages that provide ``wanted`` where it is found first, the best first.

        ``wanted`` is a header as included (``openssl/ssl.h``), a library file
        name (``libffi.so``), a pkg-config module, a program, or a CMake package
        name. Only the packages that have it in the shallowest place are named
        (usr/include or its multiarch directory before usr/include/libxml2/...);
        among them: main first, then -dev packages, then those named like what is
        wanted, then the shortest name (``make`` before ``make-guile``).
        """
        if kind not in KINDS or not wanted:
            return []
        if kind == "header":
            ranked = _header_ranks(self.files("header", PurePosixPath(wanted).name), wanted)
        else:
            key = wanted.lower() if kind == "cmake" else wanted
            # Every kept library, module and program directory is searched by default;
            # a CMake config file deeper down belongs to some other project's tree.
            ranked = [(path.count("/") if kind == "cmake" else 0, provider)
                      for path, provider in self.files(kind, key)]
        if not ranked:
            return []
        top = min(rank for rank, _ in ranked)  # deeper copies need flags nobody passes
        best: dict[str, tuple[bool, bool, bool, int, str]] = {}
        stem = PurePosixPath(wanted).stem.lower()
        for rank, provider in ranked:
            name = provider.name
            order = (not provider.main, not name.endswith("-dev"), stem not in name,
                     len(name), name)
            if rank == top:
                best[name] = min(best.get(name, order), order)
        return sorted(best, key=lambda n: best[n])


def _header_ranks(found: list[tuple[str, Provider]], wanted: str) -> list[tuple[int, Provider]]:
    """Headers whose path ends with ``wanted``, ranked by the directories in front of it
    (0: usr/include or its multiarch directory; 1: one -I directory, as libxml2/...)."""
    ranked = []
    for path, provider in found:
        if path == wanted:
            extra = ""
        elif path.endswith("/" + wanted):
            extra = path[: -len(wanted) - 1]
            extra = "" if extra == TRIPLET else extra.removeprefix(TRIPLET + "/")
        else:
            continue
        ranked.append((extra.count("/") + 1 if extra else 0, provider))
    return ranked


# -- fetching, verifying, keeping -----------------------------------------------------------

def directory(settings: Settings) -> Path:
    return settings.state_dir / "debian" / f"{SUITE}-{ARCH}"


Verifier = Callable[[bytes], bytes]


def mirror_allowed() -> bool:
    """Whether the mirror may be asked: ``FACTORY_DEBIAN_LOOKUP=off`` keeps the factory
    from it (a site whose control plane may not reach it; unit tests). A lookup already
    kept is still used."""
    return os.environ.get(SWITCH, "on").strip().lower() not in ("off", "0", "no", "false")


@dataclass(frozen=True)
class _State:
    """When the mirror was last asked, and the validators of the InRelease it sent."""

    checked: float = 0.0
    etag: str = ""
    last_modified: str = ""


def lookup(settings: Settings, *, verify: Verifier | None = None,
           now: Callable[[], float] = time.time) -> Lookup:
    """The lookup for the builder's suite, refreshed from the mirror once a day.

    A refresh that fails leaves the last good lookup in use; with none, or within
    RETRY_SECONDS of a failure, it raises ``LookupUnavailable`` at once. The
    caller closes what it gets.
    """
    where = directory(settings)
    with _REFRESH:
        state = _read_state(where)
        current = _open(where / "lookup.sqlite")
        if current is not None and (0 <= now() - state.checked < FRESH_SECONDS
                                    or not mirror_allowed()):
            return current
        if not mirror_allowed():
            raise LookupUnavailable(f"asking the Debian mirror is off ({SWITCH}=off) and no "
                                    "lookup is kept", f"unset {SWITCH} to let the factory "
                                    "fetch Debian's Contents index")
        failed = _FAILED.get(where)
        if failed is not None and 0 <= now() - failed[0] < RETRY_SECONDS:
            if current is not None:
                return current
            raise LookupUnavailable(failed[1])
        try:
            return _refresh(settings, where, state, current, verify or verify_release, now)
        except (FactoryError, OSError, sqlite3.Error, httpx.HTTPError) as exc:
            if current is not None:
                current.close()
            why = exc.message if isinstance(exc, FactoryError) else (
                f"{type(exc).__name__}: {one_line(str(exc), 200)}")
            _FAILED[where] = (now(), why)
            # The last good lookup: a failed refresh never replaces it (writes are atomic).
            kept = _open(where / "lookup.sqlite")
            if kept is not None:
                return kept
            raise LookupUnavailable(why) from None


def _refresh(settings: Settings, where: Path, state: _State, current: Lookup | None,
             verify: Verifier, now: Callable[[], float]) -> Lookup:
    release, validators = _release(settings, where, state, verify)
    pins = _pins(release)
    sources = json.dumps({name: sha for name, (sha, _) in pins.items()}, sort_keys=True)
    if current is not None and current.meta().get("sources") == sources:
        _write_state(where, replace(validators, checked=now()))
        return current
    files = [_contents(settings, where, name, sha, size) for name, (sha, size) in pins.items()]
    if current is not None:
        current.close()
    build_lookup(files, where / "lookup.sqlite", {"sources": sources, "suite": SUITE,
                                                  "arch": ARCH})
    _write_state(where, replace(validators, checked=now()))
    found = _open(where / "lookup.sqlite")
    if found is None:
        raise LookupUnavailable("the Contents lookup just written cannot be read")
    return found


def _release(settings: Settings, where: Path, state: _State,
             verify: Verifier) -> tuple[bytes, _State]:
    """The verified text of the suite's InRelease (a conditional request when we hold it),
    and the validators to send next time."""
    url = f"{MIRROR.rstrip('/')}/dists/{SUITE}/InRelease"
    kept = where / "InRelease"
    headers = {"Accept-Encoding": "identity"}
    if kept.is_file() and not kept.is_symlink():
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
    policy = HostPolicy(MIRROR)
    transport = Transport(retries=1, timeout=settings.http_timeout, backoff=0.5)
    try:
        with Deadline(RELEASE_DEADLINE, url) as deadline:
            status, body, validators = transport.request(
                "GET", url, deadline, headers=headers, allowed=policy.listing,
                consume=lambda r: _read_release(r, deadline))
    finally:
        transport.close()
    conditional = "If-None-Match" in headers or "If-Modified-Since" in headers
    if status == 304 and conditional:  # unchanged: what we kept (checked again below)
        body, validators = kept.read_bytes()[:MAX_RELEASE + 1], state
    elif status != 200:
        raise LookupUnavailable(f"{url} answered HTTP {status}")
    if len(body) > MAX_RELEASE:
        raise LookupUnavailable(f"{url} is larger than {MAX_RELEASE} bytes; refused")
    release = verify(body)
    if status == 200:
        write_bytes(kept, body)
    return release, validators


def _read_release(response: httpx.Response, deadline: Deadline) -> tuple[int, bytes, _State]:
    validators = _State(etag=_validator(response.headers.get("etag", "")),
                        last_modified=_validator(response.headers.get("last-modified", "")))
    if response.status_code != 200:
        return response.status_code, b"", validators
    body = bytearray()
    for chunk in response.iter_raw(1 << 16):
        deadline.check()
        body += chunk
        if len(body) > MAX_RELEASE:
            break
    return 200, bytes(body), validators


def verify_release(signed: bytes) -> bytes:
    """The text Debian signed in ``signed`` (an InRelease), checked with gpgv and KEYRING.

    Only the signed text is returned: lines outside the signature are never read.
    One good signature from the keyring suffices (as apt): InRelease carries
    several, and a key the keyring lacks yet must not fail the rest.
    """
    gpgv = shutil.which("gpgv")
    if gpgv is None or not KEYRING.is_file():
        raise LookupUnavailable(
            f"cannot check the mirror's InRelease signature: gpgv or the keyring {KEYRING} "
            "is missing",
            "apt-get install gpgv debian-archive-keyring, or set FACTORY_DEBIAN_KEYRING "
            "to the keyring of your mirror")
    with tempfile.TemporaryDirectory(prefix="factory-gpgv-") as home:
        signed_path, text_path = Path(home) / "InRelease", Path(home) / "Release"
        signed_path.write_bytes(signed)
        try:
            done = subprocess.run(
                [gpgv, "--status-fd", "1", "--keyring", str(KEYRING), "--output",
                 str(text_path), str(signed_path)],
                capture_output=True, timeout=60, check=False,
                env={"GNUPGHOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                     "LC_ALL": "C"})
        except subprocess.TimeoutExpired:
            raise LookupUnavailable("gpgv did not check InRelease within 60 s") from None
        status = done.stdout.decode("ascii", "replace").splitlines()
        good = any(line.startswith("[GNUPG:] GOODSIG ") for line in status)
        bad = any(line.startswith("[GNUPG:] BADSIG ") for line in status)
        if not good or bad or not text_path.is_file():
            raise LookupUnavailable(
                "the mirror's InRelease has no good signature from the Debian archive keyring",
                "the mirror serves files Debian did not sign; use another mirror "
                "(FACTORY_DEBIAN_MIRROR)")
        return text_path.read_bytes()[:MAX_RELEASE]


def release_pins(release: bytes, suite: str, names: Iterable[str], limit: int,
                 error: type[FactoryError]) -> dict[str, tuple[str, int]]:
    """The sha256 and size the signed Release of ``suite`` names for each of ``names``
    it lists (each at most ``limit`` bytes); anything else about it is ``error``."""
    text = release.decode("utf-8", "replace")
    fields = dict(_field(line) for line in text.splitlines() if line[:1].isalpha())
    if suite not in (fields.get("Codename"), fields.get("Suite")):
        raise error(f"the mirror's InRelease is for "
                    f"{one_line(repr(fields.get('Codename')), 60)}, not {suite}")
    wanted = set(names)
    pins: dict[str, tuple[str, int]] = {}
    in_sha256 = False
    for line in text.splitlines():
        if line[:1].isalpha():
            in_sha256 = line.rstrip() == "SHA256:"
            continue
        parts = line.split()
        if in_sha256 and len(parts) == 3 and parts[2] in wanted:
            sha, size, name = parts
            if not _SHA256.fullmatch(sha) or not size.isdigit() or len(size) > 12:
                raise error(f"the mirror's Release has a malformed line for {name}")
            if int(size) > limit:
                raise error(f"{name} is {size} bytes, more than the {limit} accepted")
            pins[name] = (sha, int(size))
    return pins


def _pins(release: bytes) -> dict[str, tuple[str, int]]:
    """The sha256 and size the signed Release names for each Contents file we use."""
    pins = release_pins(release, SUITE, CONTENTS, MAX_CONTENTS, LookupUnavailable)
    if REQUIRED not in pins:
        raise LookupUnavailable(f"the mirror's Release names no {REQUIRED}")
    return {name: pins[name] for name in CONTENTS if name in pins}


def _field(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key, value.strip()


def _contents(settings: Settings, where: Path, name: str, sha256: str, size: int) -> Path:
    """The Contents file, downloaded only when the one kept is not the pinned bytes."""
    target = where / name.replace("/", "-")
    if target.is_file() and not target.is_symlink() and target.stat().st_size == size \
            and sha256_file(target) == sha256:
        return target
    url = f"{MIRROR.rstrip('/')}/dists/{SUITE}/{name}"
    with Upstream(MIRROR, retries=1, timeout=settings.http_timeout) as mirror:
        return mirror.download(url, target, sha256=sha256, size=size)


def _open(path: Path) -> Lookup | None:
    """The kept lookup when it is ours and whole (else None: it is made again)."""
    if not path.is_file() or path.is_symlink():
        return None
    try:
        found = Lookup(path)
        meta = found.meta()
    except sqlite3.Error:
        return None
    if meta.get("schema") != SCHEMA or meta.get("suite") != SUITE or meta.get("arch") != ARCH:
        found.close()
        return None
    return found


def _validator(value: object) -> str:
    return value if isinstance(value, str) and _ETAG.fullmatch(value) else ""


def _read_state(where: Path) -> _State:
    """What state.json says (parsed as defensively as the network: anything odd is dropped)."""
    path = where / "state.json"
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 65536:
            return _State()
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return _State()
    if not isinstance(data, dict):
        return _State()
    checked = data.get("checked")
    if isinstance(checked, bool) or not isinstance(checked, int | float):
        checked = 0.0
    return _State(float(checked), _validator(data.get("etag")),
                  _validator(data.get("last_modified")))


def _write_state(where: Path, state: _State) -> None:
    write_json(where / "state.json", asdict(state))
