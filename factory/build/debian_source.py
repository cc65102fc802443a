"""Debian source packages, verified: the upstream tarball a signed archive names.

The factory builds its own tools (patchelf now; CPython's interpreters next) from
the unmodified upstream tarballs Debian's archive carries, ``<name>_<upstream
version>.orig.tar.*``. The mirror is not trusted: a tarball is used only when its
sha256 is named by the suite's ``main/source/Sources.xz`` whose sha256 and size
the suite's ``InRelease`` pins, and that InRelease has a good signature from the
Debian archive keyring (``factory.build.debian.verify_release``: gpgv). Anything
the mirror sends is bounded (sizes, deadlines) and parsed defensively: a file
name or directory in a Sources stanza that could leave the pool is refused.

The tarball is kept by digest under ``<state>/debian-source/`` with a small note
of what it is (suite, package, version); a rerun finds it there and asks the
mirror nothing (offline builds work once it was fetched).

    tarball = fetch_orig(settings, SourcePin("patchelf", "0.18.0-1.4", "trixie"))
    tarball.path, tarball.sha256, tarball.upstream_version
"""

from __future__ import annotations

import json
import lzma
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from factory._internal.atomic import sha256_file, write_json
from factory.build import debian
from factory.config import Settings
from factory.errors import FactoryError, one_line
from factory.upstream.client import Upstream
from factory.upstream.transport import Deadline, HostPolicy, Transport

SOURCES = "main/source/Sources.xz"
MAX_SOURCES = 64 << 20  # compressed bytes of Sources.xz (trixie's: 10.5 MB)
MAX_SOURCES_INFLATED = 512 << 20  # decompressed (trixie's: 57 MB)
MAX_STANZA = 1 << 20  # bytes of one package's stanza
MAX_ORIG = 512 << 20  # bytes of one orig tarball (CPython's: about 20 MB)
MAX_NOTE = 4096  # bytes of a kept note
MAX_SIGNATURE = 64 << 10  # bytes of upstream's detached OpenPGP signature (CPython's: 833)
_SUITE = re.compile(r"[a-z][a-z0-9-]{1,40}")
# Debian policy 5.6.12: [epoch:]upstream[-revision]; no "/" and no "..".
_VERSION = re.compile(r"(?:[0-9]{1,9}:)?[0-9][A-Za-z0-9.+~-]{0,99}")
_FILENAME = re.compile(r"[a-z0-9][a-z0-9+.-]{1,99}_[0-9][A-Za-z0-9.+~-]{0,99}"
                       r"\.orig\.tar\.(?:gz|xz|bz2)")
_DIRECTORY = re.compile(r"pool/main/(?:lib)?[a-z0-9]/[a-z0-9][a-z0-9+.-]{1,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.~_-]{0,254}")  # a file in the pool: no "/"

class SourceUnavailable(FactoryError):
    """A Debian source tarball could not be had, or the mirror sent what Debian did not sign."""

    default_hint = ("check that the Debian mirror is reachable (FACTORY_DEBIAN_MIRROR) "
                    "and serves the pinned suite, then build again")

@dataclass(frozen=True)
class SourcePin:
    """A Debian source package at one version, in the suite that carries it."""

    package: str
    version: str  # Debian's version, revision included: 0.18.0-1.4
    suite: str

    @property
    def upstream_version(self) -> str:
        """The upstream release: no epoch, no Debian revision (0.18.0)."""
        version = self.version.partition(":")[2] or self.version
        return version.rpartition("-")[0] if "-" in version else version

    def check(self) -> None:
        if not (debian._PACKAGE.fullmatch(self.package) and _VERSION.fullmatch(self.version)
                and _SUITE.fullmatch(self.suite) and ".." not in self.version):
            raise SourceUnavailable(f"{one_line(repr(self), 160)} is not a Debian source "
                                    "package, version and suite")

@dataclass(frozen=True)
class SourceTarball:
    """A verified upstream tarball and where it came from."""

    path: Path
    filename: str
    sha256: str
    size: int
    package: str
    version: str
    suite: str
    upstream_version: str
    # Upstream's detached OpenPGP signature of the tarball (``<filename>.asc``), when the
    # stanza lists one and it was asked for (``fetch_orig(..., signature=True)``); its
    # bytes are the ones the same signed stanza names. Checking it is the caller's.
    signature: Path | None = field(default=None, compare=False)

    def describe(self) -> dict[str, object]:
        """What a record says of it (no local path)."""
        return {k: v for k, v in asdict(self).items() if k not in ("path", "signature")}

    def stage(self, work: Path) -> Path:
        """A copy of the tarball alone in ``work/source`` (readable by the build user),
        the directory a build container mounts."""
        source = work / "source"
        source.mkdir()
        shutil.copyfile(self.path, source / self.filename)
        # The copy is what the build reads: checked again, since the kept file may have
        # been swapped after kept_orig hashed it (the state is writable by the factory).
        if sha256_file(source / self.filename) != self.sha256:
            raise SourceUnavailable(f"the kept {self.filename} changed after it was checked",
                                    "remove it from the state's debian-source directory")
        source.chmod(0o755)
        (source / self.filename).chmod(0o644)
        return source

def directory(settings: Settings) -> Path:
    return settings.state_dir / "debian-source"

def fetch_orig(settings: Settings, pin: SourcePin, *,
               verify: debian.Verifier | None = None, mirror: str | None = None,
               signature: bool = False) -> SourceTarball:
    """The orig tarball of ``pin``: kept, or fetched through the signed chain and kept.

    With ``signature``, upstream's ``.asc`` that the stanza lists beside the tarball is
    fetched (and kept) too, checked against the stanza's sha256 like the tarball; a
    stanza that lists none gives ``signature=None``."""
    kept = kept_orig(settings, pin, signature=signature)
    if kept is not None:
        return kept
    if not debian.mirror_allowed():
        raise SourceUnavailable(f"{pin.package} {pin.version} is not kept and asking the "
                                f"Debian mirror is off ({debian.SWITCH}=off)",
                                f"unset {debian.SWITCH} once to fetch it")
    base = (mirror or debian.MIRROR).rstrip("/")
    try:
        release = _release(settings, base, pin.suite, verify or debian.verify_release)
        sha, size = _pin_of(release, pin.suite)
        index = _sources(settings, base, pin.suite, sha, size)
        folder, filename, orig_sha, orig_size = find_orig(index, pin)
        asc = find_signature(index, pin, filename) if signature else None
        where = directory(settings) / orig_sha
        with Upstream(base, retries=1, timeout=settings.http_timeout) as upstream:
            path = upstream.download(f"{base}/{folder}/{filename}", where / filename,
                                     sha256=orig_sha, size=orig_size)
            signed = None if asc is None else upstream.download(
                f"{base}/{folder}/{asc[1]}", where / asc[1], sha256=asc[2], size=asc[3])
    except (OSError, httpx.HTTPError) as exc:
        raise SourceUnavailable(f"{pin.package} {pin.version}: {type(exc).__name__}: "
                                f"{one_line(str(exc), 200)}") from None
    except debian.LookupUnavailable as exc:
        raise SourceUnavailable(exc.message, exc.hint) from None
    found = SourceTarball(path, filename, orig_sha, orig_size, pin.package, pin.version,
                          pin.suite, pin.upstream_version, signed)
    note: dict[str, object] = found.describe()
    if signature:  # a former note's signature entry is kept when this fetch did not ask
        note["signature"] = None if asc is None else {"filename": asc[1], "sha256": asc[2],
                                                      "size": asc[3]}
    elif (former := _read_note(_note(settings, pin))) is not None and "signature" in former:
        note["signature"] = former["signature"]
    write_json(_note(settings, pin), note)
    return found

def _note(settings: Settings, pin: SourcePin) -> Path:
    return directory(settings) / pin.suite / f"{pin.package}_{pin.version.replace(':', '%')}.json"

def _read_note(note: Path) -> dict[str, object] | None:
    try:
        if not note.is_file() or note.is_symlink() or note.stat().st_size > MAX_NOTE:
            return None
        data = json.loads(note.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def kept_orig(settings: Settings, pin: SourcePin, *,
              signature: bool = False) -> SourceTarball | None:
    """The tarball a former fetch kept, when its note and bytes still agree (the mirror
    is not asked). With ``signature``, only when that fetch also looked for upstream's
    signature (and kept it, if the stanza listed one)."""
    pin.check()
    data = _read_note(_note(settings, pin))
    if data is None:
        return None
    filename, sha, size = data.get("filename"), data.get("sha256"), data.get("size")
    if not (isinstance(filename, str) and _FILENAME.fullmatch(filename)
            and isinstance(sha, str) and _SHA256.fullmatch(sha)
            and isinstance(size, int) and not isinstance(size, bool)
            and (data.get("package"), data.get("version"), data.get("suite"))
            == (pin.package, pin.version, pin.suite)):
        return None
    path = directory(settings) / sha / filename
    if not _intact(path, sha, size):
        return None
    signed = None
    if signature:
        if "signature" not in data:
            return None  # fetched without looking for one
        entry = data["signature"]
        if entry is not None:
            if not isinstance(entry, dict) or entry.get("filename") != f"{filename}.asc":
                return None
            asc_sha, asc_size = entry.get("sha256"), entry.get("size")
            if not (isinstance(asc_sha, str) and _SHA256.fullmatch(asc_sha)
                    and isinstance(asc_size, int) and not isinstance(asc_size, bool)):
                return None
            signed = path.with_name(f"{filename}.asc")
            if not _intact(signed, asc_sha, asc_size):
                return None
    return SourceTarball(path, filename, sha, size, pin.package, pin.version, pin.suite,
                         pin.upstream_version, signed)


def _intact(path: Path, sha: str, size: int) -> bool:
    return (path.is_file() and not path.is_symlink() and path.stat().st_size == size
            and sha256_file(path) == sha)

def _release(settings: Settings, base: str, suite: str, verify: debian.Verifier) -> bytes:
    """The signed text of the suite's InRelease (bounded, within a deadline)."""
    url = f"{base}/dists/{suite}/InRelease"
    transport = Transport(retries=1, timeout=settings.http_timeout, backoff=0.5)
    try:
        with Deadline(debian.RELEASE_DEADLINE, url) as deadline:
            status, body, _ = transport.request(
                "GET", url, deadline, headers={"Accept-Encoding": "identity"},
                allowed=HostPolicy(base).listing,
                consume=lambda r: debian._read_release(r, deadline))
    finally:
        transport.close()
    if status != 200:
        raise SourceUnavailable(f"{url} answered HTTP {status}")
    if len(body) > debian.MAX_RELEASE:
        raise SourceUnavailable(f"{url} is larger than {debian.MAX_RELEASE} bytes; refused")
    return verify(body)

def _pin_of(release: bytes, suite: str) -> tuple[str, int]:
    """The sha256 and size the signed Release names for the suite's Sources.xz."""
    pins = debian.release_pins(release, suite, [SOURCES], MAX_SOURCES, SourceUnavailable)
    if SOURCES not in pins:
        raise SourceUnavailable(f"the mirror's Release for {suite} names no {SOURCES}")
    return pins[SOURCES]

def _sources(settings: Settings, base: str, suite: str, sha: str, size: int) -> bytes:
    """The decompressed Sources index the Release pins (kept by digest; bounded)."""
    target = directory(settings) / suite / "Sources.xz"
    if not (target.is_file() and not target.is_symlink() and target.stat().st_size == size
            and sha256_file(target) == sha):
        with Upstream(base, retries=1, timeout=settings.http_timeout) as upstream:
            upstream.download(f"{base}/dists/{suite}/{SOURCES}", target, sha256=sha, size=size)
    inflate = lzma.LZMADecompressor()
    try:
        text = inflate.decompress(target.read_bytes(), max_length=MAX_SOURCES_INFLATED + 1)
    except lzma.LZMAError:
        raise SourceUnavailable(f"{SOURCES} of {suite} is not a readable xz file") from None
    if len(text) > MAX_SOURCES_INFLATED:
        raise SourceUnavailable(f"{SOURCES} of {suite} decompresses to more than "
                                f"{MAX_SOURCES_INFLATED} bytes; refused")
    return text

def _stanzas(index: bytes, package: str) -> Iterator[bytes]:
    """The stanzas whose first field names ``package`` (found without parsing the rest)."""
    mark = f"Package: {package}\n".encode()
    at = 0 if index.startswith(mark) else index.find(b"\n\n" + mark)
    while at >= 0:
        start = at if index.startswith(mark, at) else at + 2
        end = index.find(b"\n\n", start)
        end = len(index) if end < 0 else end
        yield index[start:end]
        at = index.find(b"\n\n" + mark, end)

def _stanza(index: bytes, pin: SourcePin) -> tuple[str, list[tuple[str, str, str]]]:
    """(directory, [(sha256, size, name)]) of ``pin``'s stanza in a Sources index: every
    file name checked to stay in its directory."""
    for raw in _stanzas(index, pin.package):
        if len(raw) > MAX_STANZA:
            raise SourceUnavailable(f"the Sources stanza of {pin.package} is over "
                                    f"{MAX_STANZA} bytes; refused")
        stanza = _parse_stanza(raw.decode("utf-8", "replace"))
        if stanza.get("Version") != pin.version:
            continue
        folder = stanza.get("Directory", "")
        if not _DIRECTORY.fullmatch(folder) or not folder.endswith(f"/{pin.package}"):
            raise SourceUnavailable(f"the Sources stanza of {pin.package} {pin.version} names "
                                    f"the directory {one_line(repr(folder), 120)}; refused")
        files = []
        for line in stanza.get("Checksums-Sha256", "").splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            sha, size, name = parts
            if not _NAME.fullmatch(name) or ".." in name:
                raise SourceUnavailable(f"the Sources stanza of {pin.package} {pin.version} "
                                        f"names the file {one_line(repr(name), 120)}; refused")
            files.append((sha, size, name))
        return folder, files
    raise SourceUnavailable(f"the Debian suite {pin.suite} has no source package "
                            f"{pin.package} {pin.version}",
                            "pin the version the suite carries, or point FACTORY_DEBIAN_MIRROR "
                            "at a snapshot that has it (https://snapshot.debian.org)")


def find_orig(index: bytes, pin: SourcePin) -> tuple[str, str, str, int]:
    """(directory, file name, sha256, size) of ``pin``'s orig tarball in a Sources index."""
    folder, files = _stanza(index, pin)
    origs = []
    for sha, size, name in files:
        if ".orig.tar." not in name or name.endswith(".asc"):
            continue
        if not (_FILENAME.fullmatch(name) and _SHA256.fullmatch(sha) and size.isdigit()
                and len(size) <= 12 and name.startswith(f"{pin.package}_")):
            raise SourceUnavailable(f"the Sources stanza of {pin.package} {pin.version} "
                                    f"names the file {one_line(repr(name), 120)}; refused")
        if int(size) > MAX_ORIG:
            raise SourceUnavailable(f"{name} is {size} bytes, more than the {MAX_ORIG} "
                                    "accepted")
        origs.append((folder, name, sha, int(size)))
    if len(origs) != 1:
        raise SourceUnavailable(f"the Sources stanza of {pin.package} {pin.version} names "
                                f"{len(origs)} orig tarballs, not one")
    return origs[0]


def find_signature(index: bytes, pin: SourcePin,
                   orig: str) -> tuple[str, str, str, int] | None:
    """(directory, file name, sha256, size) of upstream's signature of the orig tarball
    ``orig`` (``<orig>.asc``) in ``pin``'s stanza, or None when the stanza lists none."""
    folder, files = _stanza(index, pin)
    found = [(sha, size) for sha, size, name in files if name == f"{orig}.asc"]
    if not found:
        return None
    if len(found) > 1:
        raise SourceUnavailable(f"the Sources stanza of {pin.package} {pin.version} lists "
                                f"{orig}.asc {len(found)} times")
    sha, size = found[0]
    if not (_SHA256.fullmatch(sha) and size.isdigit() and len(size) <= 12):
        raise SourceUnavailable(f"the Sources stanza of {pin.package} {pin.version} has a "
                                f"malformed line for {orig}.asc")
    if int(size) > MAX_SIGNATURE:
        raise SourceUnavailable(f"{orig}.asc is {size} bytes, more than the {MAX_SIGNATURE} "
                                "accepted")
    return folder, f"{orig}.asc", sha, int(size)


def _parse_stanza(text: str) -> dict[str, str]:
    """A deb822 stanza: field -> value (continuation lines joined by newlines)."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields
