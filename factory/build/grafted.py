"""Checking on the host that a grafted library is the builder image's own file.

auditwheel runs in the build's container, so what lands in ``<pkg>.libs/`` is the
build's choice: its name says which Debian library it was (``repair.grafted`` maps the
name to a package), its bytes may be anything. The host checks it against the pinned
image, read from a fresh container of it (never started) through the engine's archive
API, bounded:

* the image's file is one the claimed package ships (the image's dpkg file list of
  that package names a file of the library's name);
* the 8 hex digits of the grafted name are the first 8 of that file's sha256 (what
  auditwheel puts there);
* every ELF section of the grafted file equals the image's file's, but for what
  patchelf rewrites (.dynamic, .dynstr; the ELF, program and section headers are not
  compared at all, and a symbol's section is compared by name, not by the index
  patchelf renumbers when it moves sections): the code and data are the image's.

Only then is ``verified`` added to the entry; a library that cannot be checked
(another engine, an image without the package's list, a library not ELF64) keeps the
identity its name gives, marked as inferred in the SBOM. The build never fails here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
import tarfile
import tempfile
import zipfile
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import IO, Any

from factory.build.docker import ROLE_LABEL
from factory.build.image import ImageRef
from factory.errors import one_line

# What patchelf rewrites when auditwheel sets a grafted library's soname and rpath.
REWRITTEN = frozenset({".dynamic", ".dynstr"})
MAX_LIBRARY_BYTES = 1 << 30  # as repair.MAX_GRAFTED_BYTES
MAX_LIST_BYTES = 4 << 20  # one package's dpkg file list
MAX_SECTIONS = 4096
MAX_LINKS = 8  # symbolic links followed in the image
_SHT_NOBITS = 8
_SYMBOLS = (2, 11)  # SHT_SYMTAB, SHT_DYNSYM: entries of 24 bytes in ELF64


class NotVerified(Exception):
    """Why a grafted library could not be shown to be the image's file (one line)."""


class Contradicted(NotVerified):
    """The image's file was found and compared, and the grafted one is not it."""


# -- ELF sections -------------------------------------------------------------------

def sections(handle: IO[bytes], size: int) -> list[tuple[str, int, int, str]]:
    """The sections of the ELF64 file open in ``handle`` (``size`` bytes), each as
    (name, type, flags, sha256 of its contents; its size for a NOBITS section), sorted:
    what two builds of one library must agree on. NotVerified for anything else."""
    handle.seek(0)
    ident = handle.read(64)
    if len(ident) < 64 or ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] not in (1, 2):
        raise NotVerified("not an ELF64 file")
    order = "<" if ident[5] == 1 else ">"
    shoff, = struct.unpack_from(order + "Q", ident, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", ident, 0x3A)
    if shentsize != 64 or not 0 < shnum <= MAX_SECTIONS or shstrndx >= shnum \
            or shoff + shnum * 64 > size:
        raise NotVerified("an ELF section header table out of bounds")
    handle.seek(shoff)
    table = handle.read(shnum * 64)
    headers = [struct.unpack_from(order + "IIQQQQIIQQ", table, i * 64) for i in range(shnum)]
    names = _contents(handle, size, headers[shstrndx], MAX_LIST_BYTES)
    named = []
    for header in headers:
        if header[0] >= len(names):
            raise NotVerified("an ELF section name out of bounds")
        end = names.find(b"\0", header[0])
        named.append(names[header[0]:end if end >= 0 else len(names)]
                     .decode("ascii", "replace")[:200])
    found = []
    for name, (_, kind, flags, _addr, offset, length, *_) in zip(named[1:], headers[1:],
                                                                  strict=True):
        if kind == _SHT_NOBITS:
            found.append((name, kind, flags, str(length)))
            continue
        digest = hashlib.sha256()
        if offset + length > size:
            raise NotVerified(f"ELF section {name!r} out of bounds")
        handle.seek(offset)
        left, rest = length, b""
        while left:
            block = handle.read(min(left, 1 << 20))
            if not block:
                raise NotVerified(f"ELF section {name!r} truncated")
            left -= len(block)
            if kind in _SYMBOLS:
                block, rest = _symbols(rest + block, order, named)
            digest.update(block)
        found.append((name, kind, flags, digest.hexdigest()))
    return sorted(found)


def _symbols(data: bytes, order: str, named: list[str]) -> tuple[bytes, bytes]:
    """Whole symbol entries of ``data`` with each one's section index (st_shndx) as its
    section's name: patchelf renumbers the sections when it moves some (a symbol still
    in the same section, at the same value, is the same symbol); and the partial entry
    left over."""
    whole = len(data) - len(data) % 24
    out = bytearray()
    for at in range(0, whole, 24):
        shndx, = struct.unpack_from(order + "H", data, at + 6)
        section = named[shndx] if 0 < shndx < len(named) else f"#{shndx}"
        out += data[at:at + 6] + data[at + 8:at + 24] + section.encode() + b"\0"
    return bytes(out), data[whole:]


def _contents(handle: IO[bytes], size: int, header: tuple[int, ...], limit: int) -> bytes:
    offset, length = header[4], header[5]
    if length > limit or offset + length > size:
        raise NotVerified("the ELF section name table out of bounds")
    handle.seek(offset)
    return handle.read(length)


def same_but_patched(grafted: IO[bytes], grafted_size: int, original: IO[bytes],
                     original_size: int) -> None:
    """Return if ``grafted`` holds exactly ``original``'s sections but for the ones
    patchelf rewrites; else raise NotVerified naming the first that differs."""
    ours = [s for s in sections(grafted, grafted_size) if s[0] not in REWRITTEN]
    theirs = [s for s in sections(original, original_size) if s[0] not in REWRITTEN]
    if ours != theirs:
        differ = sorted({s[0] for s in set(ours) ^ set(theirs)})
        raise NotVerified(f"ELF sections differ from the image's file: "
                          f"{', '.join(differ[:5]) or 'their number'}")


# -- the image's file -----------------------------------------------------------------

def verify(wheel: Path, image: ImageRef, entries: list[dict[str, Any]],
           client: Any) -> list[dict[str, Any]]:
    """``entries`` (``repair.grafted``'s), each named after a package with
    ``verified`` (the image's file and its sha256) added when the host showed the
    grafted file to be that file patched, else ``not_verified`` (why)."""
    named = [e for e in entries if "package" in e]
    if not named:
        return entries
    done: list[dict[str, Any]] = []
    with ExitStack() as stack:
        container = client.containers.create(image.id, ["true"], network_disabled=True,
                                             labels={ROLE_LABEL: "graft-check"})
        stack.callback(_remove, container)
        zf = stack.enter_context(zipfile.ZipFile(wheel))
        for entry in entries:
            if "package" not in entry:
                done.append(entry)
                continue
            try:
                found = _check(zf, container, image, entry)
            except Contradicted as exc:  # shown not to be the package's file: no identity
                done.append({k: v for k, v in entry.items() if k in ("path", "sha256",
                                                                     "library")}
                            | {"contradicted": one_line(f"named as {entry['package']}'s, "
                                                        f"but {exc}", 200)})
            except NotVerified as exc:
                done.append({**entry, "not_verified": one_line(str(exc), 200)})
            else:
                done.append({**entry, "verified": found})
    return done


def _remove(container: Any) -> None:
    with contextlib.suppress(Exception):  # a leftover stopped container is harmless
        container.remove(force=True)


def _check(zf: zipfile.ZipFile, container: Any, image: ImageRef,
           entry: dict[str, Any]) -> dict[str, str]:
    library, package = str(entry["library"]), str(entry["package"])
    prefix = PurePosixPath(str(entry["path"])).name[len(library.partition(".so")[0]) + 1:][:8]
    arch = image.architectures.get(package, "")
    text = None
    for name in ([f"{package}:{arch}.list"] if arch else []) + [f"{package}.list"]:
        try:
            with _read(container, f"/var/lib/dpkg/info/{name}", MAX_LIST_BYTES) as listed:
                text = listed.read().decode("utf-8", "replace")
            break
        except NotVerified:
            continue
    if text is None:
        raise NotVerified(f"the image has no dpkg file list of {package}")
    paths = [line for line in text.splitlines() if PurePosixPath(line).name == library]
    if not paths:
        raise NotVerified(f"{package} ships no file named {library}")
    for path in paths[:4]:
        with _read(container, path, MAX_LIBRARY_BYTES) as original:
            sha = _sha256(original)
            if sha[:8] != prefix:
                continue
            with tempfile.TemporaryFile() as grafted, zf.open(str(entry["path"])) as member:
                size = _copy(member, grafted, MAX_LIBRARY_BYTES)
                original.seek(0, io.SEEK_END)
                original_size = original.tell()
                try:
                    same_but_patched(grafted, size, original, original_size)
                except NotVerified as exc:
                    if sections(original, original_size):  # the image's file reads
                        raise Contradicted(str(exc)) from None
                    raise
        return {"image_file": path, "image_file_sha256": sha}
    raise Contradicted(f"the name's {prefix} is not the sha256 prefix of the image's "
                       f"{library}")


def _read(container: Any, path: str, limit: int) -> IO[bytes]:
    """The regular file at ``path`` in the container (symbolic links followed),
    bounded, in a temporary file."""
    for _ in range(MAX_LINKS):
        try:
            stream, stat = container.get_archive(path, chunk_size=1 << 20)
        except Exception as exc:  # noqa: BLE001 - docker's NotFound, APIError...
            raise NotVerified(f"cannot read {path} in the image "
                              f"({type(exc).__name__})") from None
        target = stat.get("linkTarget") if isinstance(stat, dict) else None
        if target:
            path = str(PurePosixPath(path).parent / target) if not target.startswith("/") \
                else target
            for _chunk in stream:  # drain
                pass
            continue
        with tempfile.TemporaryFile() as tar_file:
            _copy(stream, tar_file, limit + (1 << 20))
            tar_file.seek(0)
            with tarfile.open(fileobj=tar_file) as tar:
                member = tar.next()
                if member is None or not member.isreg() or member.size > limit:
                    raise NotVerified(f"{path} in the image is not a regular file")
                source = tar.extractfile(member)
                assert source is not None
                out = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
                try:
                    _copy(source, out, limit)
                except NotVerified:
                    out.close()
                    raise
                out.seek(0)
                return out
    raise NotVerified(f"{path} in the image: too many symbolic links")


def _copy(source: Any, target: IO[bytes], limit: int) -> int:
    size = 0
    chunks = iter(lambda: source.read(1 << 20), b"") if hasattr(source, "read") else source
    for block in chunks:
        size += len(block)
        if size > limit:
            raise NotVerified(f"more than {limit} bytes")
        target.write(block)
    return size


def _sha256(handle: IO[bytes]) -> str:
    handle.seek(0)
    digest = hashlib.sha256()
    while block := handle.read(1 << 20):
        digest.update(block)
    handle.seek(0)
    return digest.hexdigest()
