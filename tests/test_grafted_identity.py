"""A grafted library's Debian identity in the SBOM: inferred from its file name (the
build ran the repair and chose the name and the bytes) unless the host compared the
bytes with the image's own file (threat model, section 15). Fast: no docker."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import subprocess
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from factory.attest.sbom import INFERRED, build_sbom, sbom_bytes, validate
from factory.build import grafted
from factory.build.image import ImageRef
from tests import factories
from tests.attest_fixtures import make_record

LIB = "tinypkg.libs/libssl-1234abcd.so.3"
PURL = "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"


def _graft(**extra: Any) -> dict[str, Any]:
    return {"path": LIB, "sha256": "a" * 64, "library": "libssl.so.3", "package": "libssl3",
            "version": "3.0.15-1~deb12u1", "purl": PURL, "found_by": "soname", **extra}


def _sbom(tmp_path: Path, graft: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    wheel = factories.wheel(tmp_path / "wheels", libs=(LIB,))
    record = replace(make_record(wheel, factories.sdist(tmp_path / "sources")),
                     builder_settings={"repair": {"tool": "auditwheel", "action": "repaired",
                                                  "grafted": [graft]}})
    document = build_sbom(wheel, record)
    assert sbom_bytes(document) == sbom_bytes(build_sbom(wheel, record))  # deterministic
    validate(document)  # the factory's validator (factory verify)
    library = JsonStrictValidator(SchemaVersion.V1_6)  # and the library's own
    assert library.validate_str(json.dumps(document)) is None
    [lib] = [c for c in document["components"] if c["bom-ref"] == f"bundled:{LIB}"]
    return document, lib


def _props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component["properties"]}


def test_a_grafted_library_named_after_a_debian_package_is_marked_inferred(
        tmp_path: Path) -> None:
    _, lib = _sbom(tmp_path, _graft())
    assert lib["purl"] == PURL  # what advisories match, still said...
    assert _props(lib)["artifact-factory:identity"] == INFERRED  # ...but as inferred
    [identity] = lib["evidence"]["identity"]
    assert identity["field"] == "purl" and identity["concludedValue"] == PURL
    assert identity["confidence"] < 0.5
    assert identity["methods"] == [{"technique": "filename", "confidence": 0.25,
                                    "value": "libssl.so.3"}]
    # The grafted file's own digest (what the wheel holds) is kept: that is verified.
    [digest] = lib["hashes"]
    assert digest["alg"] == "SHA-256"


def test_a_build_cannot_claim_verification_with_a_half_entry(tmp_path: Path) -> None:
    _, lib = _sbom(tmp_path, _graft(verified={"image_file": "/usr/lib/x/libssl.so.3"}))
    assert _props(lib)["artifact-factory:identity"] == INFERRED


def test_a_grafted_library_the_host_compared_is_marked_verified(tmp_path: Path) -> None:
    verified = {"image_file": "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                "image_file_sha256": "1234abcd" + "e" * 56}
    _, lib = _sbom(tmp_path, _graft(verified=verified))
    said = _props(lib)["artifact-factory:identity"]
    assert said.startswith("verified: ") and verified["image_file"] in said
    [identity] = lib["evidence"]["identity"]
    assert identity["confidence"] == 1 and identity["concludedValue"] == PURL
    assert sorted(m["technique"] for m in identity["methods"]) == ["binary-analysis",
                                                                   "hash-comparison"]


# -- the host's comparison with the image's file (factory.build.grafted) -------------

def _elf(tmp_path: Path, body: str = "int add(int a, int b) { return a + b; }") -> bytes:
    """A small shared library, built with the machine's C compiler (skipped without)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc on this machine to build a small ELF shared library")
    source = tmp_path / "lib.c"
    source.write_text(body + "\n")
    out = tmp_path / "libtiny.so.1.0"
    subprocess.run([gcc, "-shared", "-fPIC", "-Wl,-soname,libtiny.so.1", "-o", str(out),
                    str(source)], check=True, capture_output=True, timeout=60)
    return out.read_bytes()


def _patch_section(data: bytes, name: str) -> bytes:
    """``data`` with one byte of section ``name`` changed (what patchelf does to .dynstr
    when it sets a soname, in miniature)."""
    with io.BytesIO(data) as handle:
        handle.seek(0x28)
        shoff, = struct.unpack("<Q", handle.read(8))
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * 64) for i in range(shnum)]
    names = data[headers[shstrndx][4]:headers[shstrndx][4] + headers[shstrndx][5]]
    for header in headers:
        if names[header[0]:names.index(b"\0", header[0])].decode() == name:
            at = header[4] + header[5] - 2
            return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1:]
    raise AssertionError(f"no section {name}")


class _Container:
    """A fresh container of the image, as the engine's archive API shows it."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.removed = files, False

    def get_archive(self, path: str, chunk_size: int = 0) -> tuple[Any, dict[str, Any]]:
        if path not in self.files:
            raise LookupError(path)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(PurePosixPath(path).name)
            info.size = len(self.files[path])
            tar.addfile(info, io.BytesIO(self.files[path]))
        return iter([buffer.getvalue()]), {"name": PurePosixPath(path).name}

    def remove(self, force: bool = False) -> None:
        self.removed = True


class _Client:
    def __init__(self, container: _Container) -> None:
        self.containers = self
        self.container = container

    def create(self, image: str, command: list[str], **options: Any) -> _Container:
        assert options.get("network_disabled") is True
        return self.container


def _verify(tmp_path: Path, original: bytes, shipped: bytes,
            listed: str = "/usr/lib/x86_64-linux-gnu/libtiny.so.1.0",
            named_after: bytes | None = None) -> dict[str, Any]:
    """``shipped`` grafted under the name auditwheel gives ``named_after`` (default: the
    image's ``original``), checked against an image holding ``original``."""
    prefix = hashlib.sha256(original if named_after is None else named_after).hexdigest()[:8]
    path = f"ext.libs/libtiny-{prefix}.so.1.0"
    wheel = tmp_path / "ext-1.0-cp311-cp311-manylinux_2_34_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(path, shipped)
    image = ImageRef("img", "sha256:" + "d" * 64, "debootstrap", ["libtiny1=1.0-1"],
                     {"libtiny1": "amd64"})
    entry = {"path": path, "sha256": hashlib.sha256(shipped).hexdigest(),
             "library": "libtiny.so.1.0", "package": "libtiny1", "version": "1.0-1",
             "purl": "pkg:deb/debian/libtiny1@1.0-1?arch=amd64"}
    container = _Container({"/var/lib/dpkg/info/libtiny1:amd64.list":
                            f"/.\n/usr/lib/x86_64-linux-gnu\n{listed}\n".encode(),
                            "/usr/lib/x86_64-linux-gnu/libtiny.so.1.0": original})
    [done] = grafted.verify(wheel, image, [entry], _Client(container))
    assert container.removed
    return done


def test_the_image_file_patched_where_patchelf_patches_is_verified(tmp_path: Path) -> None:
    original = _elf(tmp_path)
    done = _verify(tmp_path, original, _patch_section(original, ".dynstr"))
    assert done["verified"] == {"image_file": "/usr/lib/x86_64-linux-gnu/libtiny.so.1.0",
                                "image_file_sha256": hashlib.sha256(original).hexdigest()}


def test_other_code_under_the_image_file_name_is_not_verified(tmp_path: Path) -> None:
    original = _elf(tmp_path)
    # The name carries the original's hash prefix, the code is changed: refused.
    done = _verify(tmp_path, original, _patch_section(original, ".text"))
    # Shown not to be the package's file: its Debian identity is dropped, not inferred.
    assert "verified" not in done and "package" not in done and ".text" in done["contradicted"]
    # Another library altogether (its own hash prefix in its name): not the image's.
    (tmp_path / "other").mkdir()
    other = _elf(tmp_path / "other", "int add(int a, int b) { return a - b; }")
    done = _verify(tmp_path, original, other, named_after=other)
    assert "verified" not in done and "sha256 prefix" in done["contradicted"]
    # A file the package does not ship under that name: not verified either.
    done = _verify(tmp_path, original, original, listed="/usr/lib/elsewhere/libother.so.1")
    assert "ships no file" in done["not_verified"]


def test_a_file_that_is_not_elf64_is_not_verified(tmp_path: Path) -> None:
    done = _verify(tmp_path, b"not an ELF file", b"not an ELF file")
    assert "verified" not in done and "ELF64" in done["not_verified"]


def _renumber(data: bytes, first: str, second: str) -> bytes:
    """``data`` with sections ``first`` and ``second`` swapped in the section header
    table and the symbols' section indices following them (what patchelf does when it
    moves sections), changing no section's contents but the symbol tables'."""
    out = bytearray(data)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * 64) for i in range(shnum)]
    names = data[headers[shstrndx][4]:headers[shstrndx][4] + headers[shstrndx][5]]
    index = {names[h[0]:names.index(b"\0", h[0])].decode(): i for i, h in enumerate(headers)}
    a, b = index[first], index[second]
    swap = {a: b, b: a}
    out[shoff + a * 64:shoff + a * 64 + 64] = data[shoff + b * 64:shoff + b * 64 + 64]
    out[shoff + b * 64:shoff + b * 64 + 64] = data[shoff + a * 64:shoff + a * 64 + 64]
    moved = 0
    for header in headers:
        if header[1] in (2, 11):
            for at in range(header[4], header[4] + header[5], 24):
                shndx, = struct.unpack_from("<H", data, at + 6)
                if shndx in swap:
                    struct.pack_into("<H", out, at + 6, swap[shndx])
                    moved += 1
    assert moved  # the test means something: some symbol's index changed
    return bytes(out)


def test_symbols_are_compared_by_what_the_loader_reads_of_their_section(tmp_path: Path) -> None:
    original = _elf(tmp_path)
    renumbered = _renumber(original, ".text", ".data")
    assert renumbered != original
    assert "verified" in _verify(tmp_path, original, renumbered)
    # A defined symbol made undefined (what the loader reads of its index) is caught; its
    # index pointing at another section is not (patchelf 0.18 moves sections without
    # renumbering .dynsym; the symbol's value, compared as it is, says where it is).
    shoff, = struct.unpack_from("<Q", original, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", original, 0x3C)
    headers = [struct.unpack_from("<IIQQQQIIQQ", original, shoff + i * 64)
               for i in range(shnum)]
    [dynsym] = [h for h in headers if h[1] == 11]
    moved = bytearray(original)
    at = next(a for a in range(dynsym[4] + 24, dynsym[4] + dynsym[5], 24)
              if 0 < struct.unpack_from("<H", original, a + 6)[0] < shnum - 1)
    shndx, = struct.unpack_from("<H", original, at + 6)
    struct.pack_into("<H", moved, at + 6, shndx + 1)
    assert "verified" in _verify(tmp_path, original, bytes(moved))
    struct.pack_into("<H", moved, at + 6, 0)
    done = _verify(tmp_path, original, bytes(moved))
    assert "verified" not in done and ".dynsym" in done["contradicted"]
