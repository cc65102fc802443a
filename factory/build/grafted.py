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
  patchelf rewrites (.dynamic, .dynstr; a symbol's section index is compared as the
  loader reads it, undefined, absolute, common or defined, since patchelf moves
  sections): the code and data are the image's;
* what the loader acts on is the image's file's too: the dynamic entries (through
  PT_DYNAMIC) but for SONAME, the string table's place and size and the grafted
  names of needed libraries, an rpath under $ORIGIN, the executable segments byte
  for byte, and segments that map each section from its own bytes.

Only then is ``verified`` added to the entry. A library shown not to be that file
is ``contradicted`` and loses the package's identity; one that cannot be checked
(another engine, an image without the package's list, a library not ELF64) keeps the
identity its name gives, marked as inferred in the SBOM. The build never fails here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
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

def _elf64_header(handle: IO[bytes]) -> tuple[bytes, str]:
    """The ELF64 file header of ``handle`` and its byte order for struct; NotVerified for
    anything else."""
    handle.seek(0)
    ident = handle.read(64)
    if len(ident) < 64 or ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] not in (1, 2):
        raise NotVerified("not an ELF64 file")
    return ident, "<" if ident[5] == 1 else ">"


def sections(handle: IO[bytes], size: int) -> list[tuple[str, int, int, str]]:
    """The sections of the ELF64 file open in ``handle`` (``size`` bytes), each as
    (name, type, flags, sha256 of its contents; its size for a NOBITS section), sorted:
    what two builds of one library must agree on. NotVerified for anything else."""
    ident, order = _elf64_header(handle)
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
    """Whole symbol entries of ``data`` with each one's section index (st_shndx) reduced
    to what the loader reads of it: undefined, absolute, common, or defined (patchelf
    moves sections and may or may not renumber the indices; the symbol's value, compared
    as it is, says where it is); and the partial entry left over."""
    whole = len(data) - len(data) % 24
    out = bytearray()
    for at in range(0, whole, 24):
        shndx, = struct.unpack_from(order + "H", data, at + 6)
        section = (_SPECIAL.get(shndx, f"#{shndx}") if shndx == 0 or shndx >= 0xFF00
                   else "defined")
        out += data[at:at + 6] + data[at + 8:at + 24] + section.encode() + b"\0"
    return bytes(out), data[whole:]


_SPECIAL = {0: "undefined", 0xFFF1: "absolute", 0xFFF2: "common"}


def _contents(handle: IO[bytes], size: int, header: tuple[int, ...], limit: int) -> bytes:
    offset, length = header[4], header[5]
    if length > limit or offset + length > size:
        raise NotVerified("the ELF section name table out of bounds")
    handle.seek(offset)
    return handle.read(length)


def same_but_patched(grafted: IO[bytes], grafted_size: int, original: IO[bytes],
                     original_size: int) -> None:
    """Return if ``grafted`` holds exactly ``original``'s sections but for the ones
    patchelf rewrites, the same dynamic entries but for what patchelf sets, and the same
    executable segments; else raise Contradicted (NotVerified when either is not an
    ELF64 file) naming the first that differs."""
    ours = [s for s in sections(grafted, grafted_size) if s[0] not in REWRITTEN]
    theirs = [s for s in sections(original, original_size) if s[0] not in REWRITTEN]
    if ours != theirs:
        differ = sorted({s[0] for s in set(ours) ^ set(theirs)})
        raise Contradicted(f"ELF sections differ from the image's file: "
                           f"{', '.join(differ[:5]) or 'their number'}")
    mine, image = loaded(grafted, grafted_size), loaded(original, original_size)
    if mine[1] != image[1]:
        raise Contradicted("its executable segments are not the image's file's")
    if mine[0] != image[0]:
        differ = sorted({str(e[0]) for e in set(mine[0]) ^ set(image[0])})
        raise Contradicted(f"its dynamic entries differ from the image's file: "
                           f"{', '.join(differ[:5])}")


# -- what the loader reads: the dynamic array (PT_DYNAMIC) and executable segments ------

_PT_LOAD, _PT_DYNAMIC, _PF_X = 1, 2, 1
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
# Tags whose value is an address: compared as (the section it falls in, offset into it).
_ADDRESSES = frozenset({3, 4, 5, 6, 7, 12, 13, 17, 21, 23, 25, 26, 32, 36, 0x6FFFFEF5,
                        0x6FFFFEF9, 0x6FFFFFFC, 0x6FFFFFFE, 0x6FFFFFF0})
MAX_DYNAMIC = 1 << 16  # bytes of the dynamic array
MAX_STRING = 4096
_GRAFTED_NAME = re.compile(r"-[0-9a-f]{8}(?=\.so)")


def loaded(handle: IO[bytes], size: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What the dynamic loader acts on, comparable between a library and its graft:
    (the dynamic entries, sorted, with addresses as (section, offset) and the needed
    libraries by their ungrafted names, leaving out what patchelf sets: SONAME, the
    string table's place and size; an RPATH/RUNPATH must be under $ORIGIN), and (the
    executable PT_LOAD segments: address, sizes, sha256 of their bytes). Contradicted
    for an rpath elsewhere; NotVerified for what is not ELF64."""
    ident, order = _elf64_header(handle)
    phoff, = struct.unpack_from(order + "Q", ident, 0x20)
    phentsize, phnum = struct.unpack_from(order + "HH", ident, 0x36)
    if phentsize != 56 or not 0 < phnum <= MAX_SECTIONS or phoff + phnum * 56 > size:
        raise NotVerified("an ELF program header table out of bounds")
    handle.seek(phoff)
    table = handle.read(phnum * 56)
    programs = [struct.unpack_from(order + "IIQQQQQQ", table, i * 56) for i in range(phnum)]
    loads = [p for p in programs if p[0] == _PT_LOAD]
    executable = []
    for _, flags, offset, vaddr, _paddr, filesz, memsz, _align in loads:
        if flags & _PF_X:
            if offset + filesz > size:
                raise NotVerified("an ELF segment out of bounds")
            handle.seek(offset)
            executable.append((vaddr, filesz, memsz, _digest(handle, filesz)))
    dynamics = [p for p in programs if p[0] == _PT_DYNAMIC]
    if len(dynamics) != 1 or dynamics[0][5] > MAX_DYNAMIC or \
            dynamics[0][2] + dynamics[0][5] > size:
        raise NotVerified("no single readable dynamic segment")
    handle.seek(dynamics[0][2])
    raw = handle.read(dynamics[0][5])
    pairs = []
    for at in range(0, len(raw) - len(raw) % 16, 16):
        tag, value = struct.unpack_from(order + "qQ", raw, at)
        if tag == DT_NULL:
            break
        pairs.append((tag, value))
    places = _places(handle, size, order)
    _check_mapping(loads, places)
    strtab = next((v for t, v in pairs if t == DT_STRTAB), None)
    entries: list[tuple[Any, ...]] = []
    for tag, value in pairs:
        if tag in (DT_SONAME, DT_STRTAB, DT_STRSZ):
            continue
        if tag in (DT_NEEDED, DT_RPATH, DT_RUNPATH):
            text = _string(handle, size, loads, strtab, value, order)
            if tag == DT_NEEDED:
                entries.append(("needed", _GRAFTED_NAME.sub("", text)))
            elif any(not part.startswith(("$ORIGIN", "${ORIGIN}")) for part in text.split(":")):
                raise Contradicted(f"its rpath {text[:100]!r} leaves $ORIGIN")
            continue
        if tag in _ADDRESSES:
            entries.append((tag, *_place(places, value)))
        else:
            entries.append((tag, value))
    return sorted(entries, key=repr), sorted(executable)


def _digest(handle: IO[bytes], length: int) -> str:
    digest = hashlib.sha256()
    while length > 0:
        block = handle.read(min(length, 1 << 20))
        if not block:
            raise NotVerified("an ELF segment truncated")
        digest.update(block)
        length -= len(block)
    return digest.hexdigest()


def _places(handle: IO[bytes], size: int, order: str) -> list[tuple[int, int, int, str]]:
    """(address, size, file offset, name) of every allocated section with bytes in the
    file (not NOBITS)."""
    handle.seek(0)
    ident = handle.read(64)
    shoff, = struct.unpack_from(order + "Q", ident, 0x28)
    _, shnum, shstrndx = struct.unpack_from(order + "HHH", ident, 0x3A)
    handle.seek(shoff)
    table = handle.read(shnum * 64)
    headers = [struct.unpack_from(order + "IIQQQQIIQQ", table, i * 64) for i in range(shnum)]
    names = _contents(handle, size, headers[shstrndx], MAX_LIST_BYTES)
    found = []
    for header in headers[1:]:
        if header[2] & 2 and header[1] != _SHT_NOBITS:  # SHF_ALLOC, with file bytes
            end = names.find(b"\0", header[0])
            found.append((header[3], header[5], header[4],
                          names[header[0]:end].decode("ascii", "replace")))
    return found


def _check_mapping(loads: list[tuple[int, ...]], places: list[tuple[int, int, int, str]]) -> None:
    """The loader maps what the sections say: no two PT_LOAD segments share an address,
    and every allocated section a segment covers is mapped from the section's own bytes
    (else the compared sections are not what the loader reads: a segment could map other
    bytes of the file at, say, the relocations' address)."""
    spans = sorted((vaddr, vaddr + memsz, offset) for _, _, offset, vaddr, _, _, memsz, _
                   in loads)
    for (_, end, _), (start, _, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise Contradicted("two of its loaded segments overlap")
    for address, length, offset, name in places:
        for start, end, seg_offset in spans:
            if start <= address < end and offset != seg_offset + address - start \
                    and length:
                raise Contradicted(f"its segment maps other bytes than its section {name}")


def _place(places: list[tuple[int, int, int, str]], address: int) -> tuple[str, int]:
    for start, length, _offset, name in places:
        if start <= address < start + max(length, 1):
            return name, address - start
    return "#none", address


def _string(handle: IO[bytes], size: int, loads: list[tuple[int, ...]], strtab: int | None,
            offset: int, order: str) -> str:
    """The string at ``offset`` of the dynamic string table (found as the loader finds
    it: DT_STRTAB's address through the PT_LOAD segments)."""
    if strtab is None:
        raise NotVerified("no dynamic string table")
    address = strtab + offset
    for _, _, seg_offset, vaddr, _, filesz, _, _ in loads:
        if vaddr <= address < vaddr + filesz:
            at = seg_offset + address - vaddr
            if at >= size:
                break
            handle.seek(at)
            data = handle.read(MAX_STRING)
            end = data.find(b"\0")
            return data[:end if end >= 0 else len(data)].decode("utf-8", "replace")
    raise NotVerified("a dynamic string outside the loaded segments")


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
                same_but_patched(grafted, size, original, original_size)
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
