"""A failed native build names the Debian package it lacks, and the recipe line to add.

factory.build.debian keeps a lookup made from Debian's Contents index (the
mirror is hostile: its InRelease must verify, its Contents must be the signed
bytes, and the text is parsed defensively); factory.build.missing reads a
failed build's log for what was missing (headers, libraries, pkg-config
modules, CMake packages, programs) and writes the hint.

Offline tests use a synthetic Contents file and a mirror on 127.0.0.1 (the
signature check replaced: gpgv itself is tested offline on unsigned input and,
with the network, on the real InRelease). Network tests read the real bookworm
index; the Docker test builds a C extension that fails for ffi.h, then builds
with the package the hint named.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from factory.build import debian, missing
from factory.build import job as builder
from factory.build.confined import Confined
from factory.build.docker import ContainerRun
from factory.build.env import BuildSystem, Kit
from factory.build.image import ImageRef
from factory.config import Settings
from factory.errors import BuildError
from tests import factories
from tests.builders_fixtures import inputs_for

# -- a synthetic Contents index ---------------------------------------------------------------

GOOD = """\
usr/include/x86_64-linux-gnu/ffi.h                      libdevel/libffi-dev
usr/include/botan-2/botan/ffi.h                         libdevel/libbotan-2-dev
usr/include/openssl/ssl.h                               libdevel/libssl-dev
usr/include/wolfssl/openssl/ssl.h                       libdevel/libwolfssl-dev
usr/include/libxml2/libxml/parser.h                     libdevel/libxml2-dev
usr/include/zlib.h                                      libdevel/zlib1g-dev
usr/include/onlyfree.h  non-free/libdevel/libnonfree-dev,libdevel/libzfree-dev
usr/lib/x86_64-linux-gnu/libffi.so                      libdevel/libffi-dev
usr/lib/x86_64-linux-gnu/libffi.so.8                    libs/libffi8
usr/lib/x86_64-linux-gnu/libffi.a                       libdevel/libffi-dev
usr/lib/x86_64-linux-gnu/libssl.so                      libdevel/libssl-dev
usr/lib/x86_64-linux-gnu/libcrypto.so                   libdevel/libssl-dev
usr/lib/x86_64-linux-gnu/libz.so                        libdevel/zlib1g-dev
usr/lib/x86_64-linux-gnu/gforth/0.7.3/libcc-named/libffi.so interpreters/gforth-lib
usr/lib/x86_64-linux-gnu/pkgconfig/libffi.pc            libdevel/libffi-dev
usr/lib/x86_64-linux-gnu/pkgconfig/openssl.pc           libdevel/libssl-dev
usr/share/pkgconfig/zlib.pc                             libdevel/zlib1g-dev
usr/bin/cmake                                           devel/cmake
usr/bin/pkg-config                                      devel/pkgconf
usr/bin/gcc                                             devel/pentium-builder,devel/gcc
usr/bin/g++                                             devel/g++
usr/bin/make                                            devel/make-guile,devel/make
usr/lib/cmake/pybind11/pybind11Config.cmake             libdevel/pybind11-dev
usr/lib/python3/dist-packages/pybind11/share/cmake/pybind11/pybind11Config.cmake\tpython/python3-pybind11
usr/share/doc/libffi-dev/copyright                      libdevel/libffi-dev
usr/lib/python3/dist-packages/cffi/api.py               python/python3-cffi
"""
EXPECTED = {
    ("header", "ffi.h", "x86_64-linux-gnu/ffi.h", "libffi-dev"),
    ("header", "ffi.h", "botan-2/botan/ffi.h", "libbotan-2-dev"),
    ("header", "ssl.h", "openssl/ssl.h", "libssl-dev"),
    ("header", "ssl.h", "wolfssl/openssl/ssl.h", "libwolfssl-dev"),
    ("header", "parser.h", "libxml2/libxml/parser.h", "libxml2-dev"),
    ("header", "zlib.h", "zlib.h", "zlib1g-dev"),
    ("header", "onlyfree.h", "onlyfree.h", "libnonfree-dev"),
    ("header", "onlyfree.h", "onlyfree.h", "libzfree-dev"),
    ("library", "libffi.so", "usr/lib/x86_64-linux-gnu/libffi.so", "libffi-dev"),
    ("library", "libffi.so.8", "usr/lib/x86_64-linux-gnu/libffi.so.8", "libffi8"),
    ("library", "libffi.a", "usr/lib/x86_64-linux-gnu/libffi.a", "libffi-dev"),
    ("library", "libssl.so", "usr/lib/x86_64-linux-gnu/libssl.so", "libssl-dev"),
    ("library", "libcrypto.so", "usr/lib/x86_64-linux-gnu/libcrypto.so", "libssl-dev"),
    ("library", "libz.so", "usr/lib/x86_64-linux-gnu/libz.so", "zlib1g-dev"),
    ("pkgconfig", "libffi", "usr/lib/x86_64-linux-gnu/pkgconfig/libffi.pc", "libffi-dev"),
    ("pkgconfig", "openssl", "usr/lib/x86_64-linux-gnu/pkgconfig/openssl.pc", "libssl-dev"),
    ("pkgconfig", "zlib", "usr/share/pkgconfig/zlib.pc", "zlib1g-dev"),
    ("tool", "cmake", "usr/bin/cmake", "cmake"),
    ("tool", "pkg-config", "usr/bin/pkg-config", "pkgconf"),
    ("tool", "gcc", "usr/bin/gcc", "pentium-builder"),
    ("tool", "gcc", "usr/bin/gcc", "gcc"),
    ("tool", "g++", "usr/bin/g++", "g++"),
    ("tool", "make", "usr/bin/make", "make-guile"),
    ("tool", "make", "usr/bin/make", "make"),
    ("cmake", "pybind11", "usr/lib/cmake/pybind11/pybind11Config.cmake", "pybind11-dev"),
    ("cmake", "pybind11", "usr/lib/python3/dist-packages/pybind11/share/cmake/pybind11/"
              "pybind11Config.cmake", "python3-pybind11"),
}
HOSTILE = [
    b"FILE                                                    LOCATION",
    b"",
    b"   \t  ",
    b"usr/include/" + b"a" * 5000 + b".h libdevel/evil-dev",  # overlong
    b"usr/include/evil1.h libdevel/Evil_Dev",  # not Debian's package charset
    b"usr/include/evil2.h libdevel/-evil-dev",
    b"usr/include/evil3.h libdevel/e",  # one character
    b"usr/include/../../etc/evil4.h libdevel/evil-dev",
    b"usr/include/./evil5.h libdevel/evil-dev",
    b"usr/include/.evil6.h libdevel/evil-dev",
    b"usr/include//evil7.h libdevel/evil-dev",
    b"/usr/include/evil8.h libdevel/evil-dev",
    b"usr/include/evil9.h",  # no package
    b"usr/include/evil\x1b[31m10.h libdevel/evil-dev",
    b"usr/include/caf\xc3\xa9.h libdevel/evil-dev",
    b"usr/include/evil11\x00.h libdevel/evil-dev",
    b"usr/include/evil12.h " + b",".join(b"libdevel/evil%d" % i for i in range(100)),
    b"usr/include/evil13.h a/b/libdevel/evil-dev",  # too many components
    b"usr/include/evil 14.h libdevel/evil-dev",  # a path with a space
    b"usr/include/evil15.h libdevel/evil-dev,",  # an empty package
    b"usr/include/evil16.h libdevel/evil-dev extra",  # a name with a space after it
    b"usr/bin/evil17 libdevel/ev\xffil",
    b"usr/lib/x86_64-linux-gnu/notalib.so libdevel/evil-dev",
    b"usr/lib/x86_64-linux-gnu/pkgconfig/.pc libdevel/evil-dev",
]


def contents_bytes(lines: list[bytes] | None = None) -> bytes:
    body = GOOD.encode() + b"\n".join(HOSTILE if lines is None else lines) + b"\n"
    return body


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def rows(entries: Iterator[debian.Entry]) -> set[tuple[str, str, str, str]]:
    return {(e.kind, e.key, e.path, p.name) for e in entries for p in e.packages}


def test_a_contents_file_keeps_what_a_build_can_miss_and_nothing_hostile() -> None:
    found = rows(debian.parse_contents(io.BytesIO(contents_bytes())))
    assert found == EXPECTED
    assert not any("evil" in r[1] or "evil" in r[3] for r in found)


def test_the_area_of_a_package_is_kept() -> None:
    (entry,) = [e for e in debian.parse_contents(io.BytesIO(contents_bytes()))
                if e.key == "onlyfree.h"]
    assert entry.packages == (debian.Provider("libnonfree-dev", main=False),
                              debian.Provider("libzfree-dev", main=True))


def test_an_overlong_line_across_blocks_is_skipped_whole(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setattr(debian, "BLOCK", 64)
    text = (b"usr/include/" + b"x/" * 6000 + b"evil.h libdevel/evil-dev\n"
            b"usr/include/zlib.h libdevel/zlib1g-dev\n"
            b"usr/include/" + b"y" * 5000)  # overlong, last, without its newline
    found = rows(debian.parse_contents(io.BytesIO(text)))
    assert found == {("header", "zlib.h", "zlib.h", "zlib1g-dev")}


def test_a_decompression_bomb_is_refused() -> None:
    with pytest.raises(debian.LookupUnavailable, match="decompresses to more than"):
        list(debian.parse_contents(gzip.GzipFile(fileobj=io.BytesIO(gz(b"\n" * 5_000_000))),
                                   max_inflated=1_000_000))


def test_a_file_that_is_not_gzip_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "Contents-amd64.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(debian.LookupUnavailable, match="not a readable gzip"):
        debian.build_lookup([bad], tmp_path / "lookup.sqlite", {})
    assert not (tmp_path / "lookup.sqlite").exists()


_DIRS = ["usr/include", "usr/include/x86_64-linux-gnu", "usr/include/openssl", "usr/lib",
         "usr/lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu/pkgconfig", "usr/share/pkgconfig",
         "usr/bin", "bin", "sbin", "lib", "lib64", "usr/share/doc", "usr/lib/cmake/x",
         "usr/share/x/cmake", "usr/lib/python3", "", "/usr/include", "usr/include/..",
         "usr/bin/.", "usr/sbin"]
_NAMES = st.one_of(
    st.sampled_from(["ffi.h", "libz.so", "libz.a", "libz.so.1", "z.pc", "cmake", "XConfig.cmake",
                     "x-config.cmake", ".h", "..", ".", "a b", "lib.so", "ca\u00e9.h",
                     "cmake\x0b", "a\x1cb.h", "x\x00.h"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=12))
_PACKAGES = st.one_of(
    st.sampled_from(["libdevel/libffi-dev", "devel/cmake", "non-free/libs/x1", "a/b/c/d", "",
                     "libdevel/UP", "libdevel/a", "x-dev", "libdevel/x+y.z-1"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=20))
_LINE = st.builds(
    lambda d, n, sep, pk: (f"{d}/{n}" if d else n) + sep + ",".join(pk),
    st.sampled_from(_DIRS), _NAMES,
    st.sampled_from(["   ", "\t", " ", "", "  \t ", "\x0b", " \x1c", "\r ", "\x0c"]),
    st.lists(_PACKAGES, min_size=0, max_size=3))


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_LINE, max_size=30), block=st.integers(min_value=1, max_value=200))
def test_property_the_fast_path_keeps_exactly_what_a_line_by_line_parse_keeps(
        lines: list[str], block: int) -> None:
    """Whatever the mirror sends: the block reader with its first-look regex keeps what
    parsing each line on its own keeps, and every kept entry is well-formed."""
    text = "\n".join(lines).encode("utf-8", "surrogateescape")
    slow = [e for raw in text.split(b"\n") if len(raw) <= debian.MAX_LINE
            and (e := debian.parse_line(raw)) is not None]
    original = debian.BLOCK
    debian.BLOCK = block
    try:
        fast = list(debian.parse_contents(io.BytesIO(text)))
    finally:
        debian.BLOCK = original
    assert sorted(fast, key=repr) == sorted(slow, key=repr)
    for entry in fast:
        assert entry.kind in debian.KINDS
        full = entry.path if entry.kind != "header" else "usr/include/" + entry.path
        assert not full.startswith("/")
        assert all(part not in ("", ".", "..") for part in full.split("/"))
        assert full.isascii() and full.isprintable() and " " not in full
        assert all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", p.name) for p in entry.packages)


# -- the lookup -------------------------------------------------------------------------------

@pytest.fixture
def made(tmp_path: Path) -> Iterator[debian.Lookup]:
    source = tmp_path / "Contents-amd64.gz"
    source.write_bytes(gz(contents_bytes()))
    debian.build_lookup([source], tmp_path / "lookup.sqlite", {"suite": debian.SUITE,
                                                               "arch": debian.ARCH})
    found = debian.Lookup(tmp_path / "lookup.sqlite")
    yield found
    found.close()


@pytest.mark.parametrize(("kind", "wanted", "expected"), [
    ("header", "ffi.h", ["libffi-dev"]),  # multiarch include dir first; botan's needs -I
    ("header", "openssl/ssl.h", ["libssl-dev"]),
    ("header", "ssl.h", ["libssl-dev"]),  # one -I for openssl/, two for wolfssl/openssl/
    ("header", "libxml/parser.h", ["libxml2-dev"]),
    ("header", "onlyfree.h", ["libzfree-dev", "libnonfree-dev"]),  # main first
    ("header", "xml/parser.h", []),  # not a path suffix at a directory boundary
    ("library", "libffi.so", ["libffi-dev"]),
    ("library", "libffi.so.8", ["libffi8"]),
    ("pkgconfig", "zlib", ["zlib1g-dev"]),
    ("tool", "gcc", ["gcc", "pentium-builder"]),  # named like the program
    ("tool", "make", ["make", "make-guile"]),
    ("cmake", "PYBIND11", ["pybind11-dev"]),  # the shallower config file
    ("tool", "nothing", []),
    ("nonsense", "ffi.h", []),
])
def test_providers_best_first(made: debian.Lookup, kind: str, wanted: str,
                              expected: list[str]) -> None:
    assert made.providers(kind, wanted) == expected


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=120),
    st.sampled_from(["SHA256:", "MD5Sum:", f"Codename: {debian.SUITE}", "Suite: oldstable",
                     f" {'a' * 64} 12 {debian.CONTENTS[0]}",
                     f" {'b' * 64} 99 {debian.CONTENTS[1]}",
                     f" {'c' * 64} 999999999999999 {debian.CONTENTS[0]}",
                     f" {'D' * 64} 1 {debian.CONTENTS[0]}",
                     f" {'e' * 63} 1 {debian.CONTENTS[0]}"])),
    max_size=12))
def test_property_a_release_file_yields_bounded_pins_or_a_refusal(lines: list[str]) -> None:
    try:
        pins = debian._pins("\n".join(lines).encode("utf-8", "surrogatepass"))
    except debian.LookupUnavailable:
        return
    assert debian.CONTENTS[0] in pins and set(pins) <= set(debian.CONTENTS)
    for sha, size in pins.values():
        assert re.fullmatch(r"[0-9a-f]{64}", sha) and 0 <= size <= debian.MAX_CONTENTS


# -- reading a log ----------------------------------------------------------------------------

GCC = b"""\
running build_ext
building '_cffi_backend' extension
x86_64-linux-gnu-gcc -Wsign-compare -DNDEBUG -g -fwrapv -O2 -Wall -fPIC -I/usr/include/python3.11 \
-c src/c/_cffi_backend.c -o build/temp.linux-x86_64-cpython-311/src/c/_cffi_backend.o
src/c/_cffi_backend.c:15:10: fatal error: ffi.h: No such file or directory
   15 | #include <ffi.h>
      |          ^~~~~~~
compilation terminated.
error: command '/usr/bin/x86_64-linux-gnu-gcc' failed with exit code 1
"""

LOGS: list[tuple[str, bytes, list[tuple[str, str]]]] = [
    ("gcc", GCC, [("header", "ffi.h")]),
    ("gcc nested", b"build/temp/_openssl.c:575:10: fatal error: openssl/opensslv.h: "
                   b"No such file or directory\n", [("header", "openssl/opensslv.h")]),
    ("g++ coloured", b"\x1b[01m\x1b[Ksrc/x.cpp:2:10:\x1b[m\x1b[K \x1b[01;31m\x1b[Kfatal error: "
                     b"\x1b[m\x1b[Kpybind11/pybind11.h: No such file or directory\n",
     [("header", "pybind11/pybind11.h")]),
    ("clang", b"src/x.c:3:10: fatal error: 'zlib.h' file not found\n#include <zlib.h>\n",
     [("header", "zlib.h")]),
    ("ld bookworm", b"/usr/bin/ld: cannot find -lssl: No such file or directory\n"
                    b"/usr/bin/ld: cannot find -lcrypto: No such file or directory\n"
                    b"collect2: error: ld returned 1 exit status\n",
     [("library", "ssl"), ("library", "crypto")]),
    ("ld old", b"/usr/bin/x86_64-linux-gnu-ld: cannot find -lffi\n", [("library", "ffi")]),
    ("ld exact", b"/usr/bin/ld: cannot find -l:libffi.so.8: No such file or directory\n",
     [("library", ":libffi.so.8")]),
    ("lld", b"ld.lld: error: unable to find library -lz\n", [("library", "z")]),
    ("loader", b"./gen: error while loading shared libraries: libffi.so.8: cannot open shared "
               b"object file: No such file or directory\n",
     [("shared-object", "libffi.so.8")]),
    ("pkgconf", b"Package libffi was not found in the pkg-config search path.\n"
                b"Perhaps you should add the directory containing `libffi.pc'\n"
                b"to the PKG_CONFIG_PATH environment variable\n"
                b"Package 'libffi', required by 'virtual:world', not found\n",
     [("pkgconfig", "libffi")]),
    ("pkg-config", b"No package 'openssl' found\n", [("pkgconfig", "openssl")]),
    ("meson", b"meson.build:10:0: ERROR: Dependency \"zlib\" not found, tried pkgconfig "
              b"and cmake\n", [("pkgconfig", "zlib")]),
    ("cmake module", b"CMake Error at /usr/share/cmake-3.25/Modules/FindPackageHandleStandard"
                     b"Args.cmake:230 (message):\n  Could NOT find OpenSSL, try to set the path "
                     b"to OpenSSL root folder in the system variable OPENSSL_ROOT_DIR (missing: "
                     b"OPENSSL_CRYPTO_LIBRARY OPENSSL_INCLUDE_DIR)\n", [("cmake", "OpenSSL")]),
    ("cmake config", b"CMake Error at CMakeLists.txt:5 (find_package):\n  Could not find a "
                     b"package configuration file provided by \"pybind11\" with any\n",
     [("cmake", "pybind11")]),
    ("cmake compiler", b"CMake Error at CMakeLists.txt:2 (project):\n  No CMAKE_CXX_COMPILER "
                       b"could be found.\n", [("tool", "g++")]),
    ("sh", b"/bin/sh: 1: pkg-config: not found\n", [("tool", "pkg-config")]),
    ("bash", b"bash: line 1: cmake: command not found\n", [("tool", "cmake")]),
    ("distutils", b"error: command 'swig' failed: No such file or directory\n",
     [("tool", "swig")]),
    ("subprocess", b"FileNotFoundError: [Errno 2] No such file or directory: 'cmake'\n",
     [("tool", "cmake")]),
    ("gcc driver", b"g++: fatal error: cannot execute 'cc1plus': execvp: No such file or "
                   b"directory\ngcc: error trying to exec 'cc1plus': execvp: No such file or "
                   b"directory\n", [("tool", "cc1plus")]),
    ("meson program", b"meson.build:3:0: ERROR: Program 'cython' not found or not executable\n",
     [("tool", "cython")]),
    ("setup.py prose, two", b"Building lxml version 6.1.3.\nError: Please make sure the "
                            b"libxml2 and libxslt development packages are installed.\n",
     [("library", "xml2"), ("library", "xslt")]),
    ("setup.py prose, one", b"RuntimeError: the libyaml-dev development headers are "
                            b"required\n", [("library", "yaml")]),
    ("nothing", b"error: Microsoft Visual C++ 14.0 or greater is required.\n", []),
]


@pytest.mark.parametrize(("log", "expected"), [pytest.param(log, want, id=name)
                                               for name, log, want in LOGS])
def test_what_a_log_says_was_missing(log: bytes, expected: list[tuple[str, str]]) -> None:
    assert [(m.kind, m.name) for m in missing.missing_in_log(log)] == expected


@pytest.mark.parametrize("log", [
    b"x.c:1:10: fatal error: ../../etc/passwd: No such file or directory\n",
    b"x.c:1:10: fatal error: /etc/shadow: No such file or directory\n",
    b"x.c:1:10: fatal error: a\x1b]0;title\x07.h: No such file or directory\n",
    b"/usr/bin/ld: cannot find -l" + b"x" * 500 + b"\n",
    b"x.c:1:10: fatal error: " + b"y" * 5000 + b".h: No such file or directory\n",
    b"cc1: fatal error: src/main.c: No such file or directory\n",  # a source file, no header
    b"error: command './configure' failed: No such file or directory\n",  # not a program
])
def test_hostile_or_irrelevant_log_lines_name_nothing(log: bytes) -> None:
    assert missing.missing_in_log(log) == []


def test_a_cmake_package_is_looked_up_by_config_module_and_the_libraries_it_missed() -> None:
    (item,) = missing.missing_in_log(
        b"  Could NOT find OpenSSL, try to set the path to OpenSSL root folder in the system "
        b"variable OPENSSL_ROOT_DIR (missing: OPENSSL_CRYPTO_LIBRARY OPENSSL_INCLUDE_DIR)\n")
    assert list(item.candidates()) == [
        ("cmake", "openssl"), ("pkgconfig", "openssl"), ("pkgconfig", "libopenssl"),
        ("library", "libopenssl.so"), ("library", "libcrypto.so"), ("header", "openssl.h")]
    (pkg,) = missing.missing_in_log(b"  Could NOT find PkgConfig (missing: PKG_CONFIG_EXECUTABLE)")
    assert list(pkg.candidates()) == [("tool", "pkg-config")]


def test_optional_dependencies_are_weak_signs() -> None:
    log = (b"-- Could NOT find ZLIB (missing: ZLIB_LIBRARY ZLIB_INCLUDE_DIR)\n"
           b"Run-time dependency libffi found: NO (tried pkgconfig)\n"
           b"FileNotFoundError: [Errno 2] No such file or directory: 'README.rst'\n")
    assert [(m.kind, m.name, m.certain) for m in missing.missing_in_log(log)] == [
        ("cmake", "ZLIB", False), ("pkgconfig", "libffi", False), ("tool", "README.rst", False)]


def test_a_log_names_each_thing_once_and_at_most_a_few() -> None:
    log = GCC * 3 + b"".join(b"x.c:1:1: fatal error: h%d.h: No such file or directory\n" % i
                             for i in range(50))
    found = missing.missing_in_log(log)
    assert len(found) == missing.MAX_ITEMS
    assert found[0] == missing.Missing("header", "ffi.h")


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=200),
    st.sampled_from([line.decode() for _, log, _ in LOGS for line in log.splitlines()]),
    st.builds(lambda a, b: f"x.c:1:2: fatal error: {a}{b}: No such file or directory",
              st.text(max_size=40), st.sampled_from([".h", "", "/x.h"]))), max_size=20))
def test_property_any_log_yields_bounded_wellformed_names(lines: list[str]) -> None:
    found = missing.missing_in_log("\n".join(lines).encode("utf-8", "surrogatepass"))
    assert len(found) <= missing.MAX_ITEMS
    for item in found:
        assert item.name.isascii() and item.name.isprintable() and ".." not in item.name
        assert len(item.name) <= missing.MAX_NAME + 1 and not item.name.startswith("/")
        list(item.candidates())


# -- the hint ---------------------------------------------------------------------------------

def _with(made: debian.Lookup) -> Callable[[Settings], debian.Lookup]:
    return lambda settings: debian.Lookup(made.path)


def test_the_hint_for_ffi_h_names_libffi_dev_and_the_recipe_line(
        made: debian.Lookup, tmp_path: Path) -> None:
    diagnosis = missing.diagnose(factories.settings(tmp_path), GCC, _with(made))
    assert diagnosis is not None
    assert missing.hint(diagnosis, "recipes/cffi.toml") == (
        'needs ffi.h (Debian package libffi-dev): add system_packages = ["libffi-dev"] '
        "to recipes/cffi.toml")


def test_the_recipe_line_keeps_what_the_recipe_lists(made: debian.Lookup,
                                                     tmp_path: Path) -> None:
    log = GCC + b"/usr/bin/ld: cannot find -lssl: No such file or directory\n"
    diagnosis = missing.diagnose(factories.settings(tmp_path), log, _with(made))
    assert diagnosis is not None
    text = missing.hint(diagnosis, "recipes/cffi.toml", ["libxml2-dev=2.9.14+dfsg-1.3"])
    assert text == ('needs ffi.h (Debian package libffi-dev); -lssl (Debian package '
                    'libssl-dev): add system_packages = ["libxml2-dev=2.9.14+dfsg-1.3", '
                    '"libffi-dev", "libssl-dev"] to recipes/cffi.toml')


def test_a_package_the_image_holds_is_not_asked_for_again(made: debian.Lookup,
                                                          tmp_path: Path) -> None:
    diagnosis = missing.diagnose(factories.settings(tmp_path), GCC, _with(made))
    assert diagnosis is not None
    text = missing.hint(diagnosis, "recipes/cffi.toml", ["libffi-dev"],
                        held=["libffi-dev=3.4.4-1"])
    assert "add system_packages" not in text and "already in the builder image" in text


def test_nothing_provides_it(made: debian.Lookup, tmp_path: Path) -> None:
    log = b"x.c:1:10: fatal error: nowhere.h: No such file or directory\n"
    diagnosis = missing.diagnose(factories.settings(tmp_path), log, _with(made))
    assert diagnosis is not None
    assert missing.hint(diagnosis, "recipes/x.toml") == (
        f"needs nowhere.h (no Debian {debian.SUITE} package provides it): the build must get "
        "it another way (a patch, or a build requirement)")


def test_lxmls_plea_for_development_packages_names_both(tmp_path: Path) -> None:
    """lxml says in prose what it lacks; each library's -dev package ships lib<name>.so."""
    source = tmp_path / "Contents-amd64.gz"
    source.write_bytes(gz(contents_bytes([
        b"usr/lib/x86_64-linux-gnu/libxml2.so                   libdevel/libxml2-dev",
        b"usr/lib/x86_64-linux-gnu/libxslt.so                   libdevel/libxslt1-dev"])))
    debian.build_lookup([source], tmp_path / "lookup.sqlite", {"suite": debian.SUITE,
                                                               "arch": debian.ARCH})
    log = b"Error: Please make sure the libxml2 and libxslt development packages are installed.\n"
    diagnosis = missing.diagnose(factories.settings(tmp_path), log,
                                 lambda settings: debian.Lookup(tmp_path / "lookup.sqlite"))
    assert diagnosis is not None
    assert diagnosis.packages() == ["libxml2-dev", "libxslt1-dev"]
    assert 'system_packages = ["libxml2-dev", "libxslt1-dev"]' in missing.hint(
        diagnosis, "recipes/lxml.toml")


def test_weak_signs_count_only_when_a_package_provides_them(made: debian.Lookup,
                                                            tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    data_file = b"FileNotFoundError: [Errno 2] No such file or directory: 'README.rst'\n"
    assert missing.diagnose(settings, data_file, _with(made)) is None
    program = b"FileNotFoundError: [Errno 2] No such file or directory: 'cmake'\n"
    diagnosis = missing.diagnose(settings, program, _with(made))
    assert diagnosis is not None
    assert missing.hint(diagnosis, "recipes/x.toml").startswith(
        "may need the program cmake (Debian package cmake)")
    both = program + GCC  # a certain sign: the weak one is left out
    diagnosis = missing.diagnose(settings, both, _with(made))
    assert diagnosis is not None and [f.missing.name for f in diagnosis.findings] == ["ffi.h"]


def test_an_unavailable_index_still_names_what_is_missing(tmp_path: Path) -> None:
    def down(settings: Settings) -> debian.Lookup:
        raise debian.LookupUnavailable("http://127.0.0.1:9/dists/bookworm/InRelease did "
                                       "not answer\nafter 2 tries")

    diagnosis = missing.diagnose(factories.settings(tmp_path), GCC, down)
    assert diagnosis is not None
    text = missing.hint(diagnosis, "recipes/cffi.toml")
    assert text == ("needs ffi.h (the Debian package could not be looked up: http://127.0.0.1:9/"
                    "dists/bookworm/InRelease did not answer after 2 tries): find the Debian "
                    f"{debian.SUITE} package that provides it (https://packages.debian.org/"
                    f"{debian.SUITE}/) and add it to system_packages in recipes/cffi.toml")
    log = GCC + b"/usr/bin/ld: cannot find -lssl\n"
    diagnosis = missing.diagnose(factories.settings(tmp_path), log, down)
    assert diagnosis is not None
    assert missing.hint(diagnosis, "recipes/cffi.toml").startswith(
        "needs ffi.h, -lssl (the Debian packages could not be looked up: http://")


# -- fetching from a mirror -------------------------------------------------------------------

class Mirror:
    """A Debian mirror on 127.0.0.1: paths -> bodies; every request is logged."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.etag = ""
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                mirror.requests.append((self.path, dict(self.headers)))
                body = mirror.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mirror.etag and self.headers.get("If-None-Match") == mirror.etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                if mirror.etag:
                    self.send_header("ETag", mirror.etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/debian"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, contents: bytes, suite: str = debian.SUITE, size: int | None = None,
                sha: str | None = None) -> None:
        packed = gz(contents)
        base = f"/debian/dists/{debian.SUITE}"
        self.files[f"{base}/main/Contents-amd64.gz"] = packed
        self.files[f"{base}/main/Contents-all.gz"] = gz(b"")
        digest = sha or hashlib.sha256(packed).hexdigest()
        empty = gz(b"")
        self.files[f"{base}/InRelease"] = (
            f"Origin: Debian\nSuite: oldstable\nCodename: {suite}\nSHA256:\n"
            f" {digest} {size if size is not None else len(packed)} main/Contents-amd64.gz\n"
            f" {hashlib.sha256(empty).hexdigest()} {len(empty)} main/Contents-all.gz\n"
            f" {'0' * 64} 1 main/Contents-i386.gz\n").encode()

    def paths(self) -> list[str]:
        return [p.rsplit("/", 1)[1] for p, _ in self.requests]


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    served = Mirror()
    monkeypatch.setattr(debian, "MIRROR", served.url)
    monkeypatch.setenv(debian.SWITCH, "on")
    yield served
    served.server.shutdown()
    served.server.server_close()


def trusted(signed: bytes) -> bytes:
    """The test mirror's InRelease is taken as signed (gpgv is tested on its own)."""
    return signed


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_the_index_is_fetched_once_then_checked_daily_and_refetched_on_change(
        mirror: Mirror, tmp_path: Path) -> None:
    settings, clock = factories.settings(tmp_path), Clock()
    mirror.publish(contents_bytes())
    with_lookup = debian.lookup(settings, verify=trusted, now=clock)
    assert with_lookup.providers("header", "ffi.h") == ["libffi-dev"]
    with_lookup.close()
    assert mirror.paths() == ["InRelease", "Contents-amd64.gz", "Contents-all.gz"]
    kept = debian.directory(settings)
    assert sorted(p.name for p in kept.iterdir()) == [
        "InRelease", "lookup.sqlite", "main-Contents-all.gz", "main-Contents-amd64.gz",
        "state.json"]

    clock.now += 3600  # fresh: not even InRelease is asked for
    debian.lookup(settings, verify=trusted, now=clock).close()
    assert len(mirror.requests) == 3

    clock.now += debian.FRESH_SECONDS  # stale, unchanged: InRelease only
    debian.lookup(settings, verify=trusted, now=clock).close()
    assert mirror.paths()[3:] == ["InRelease"]

    mirror.publish(contents_bytes() + b"usr/include/newer.h libdevel/libnewer-dev\n")
    clock.now += debian.FRESH_SECONDS  # changed: the new Contents (only) is fetched
    found = debian.lookup(settings, verify=trusted, now=clock)
    assert found.providers("header", "newer.h") == ["libnewer-dev"]
    found.close()
    assert mirror.paths()[4:] == ["InRelease", "Contents-amd64.gz"]


def test_a_mirror_with_etags_gets_conditional_requests(mirror: Mirror, tmp_path: Path) -> None:
    settings, clock = factories.settings(tmp_path), Clock()
    mirror.etag = '"v1"'
    mirror.publish(contents_bytes())
    debian.lookup(settings, verify=trusted, now=clock).close()
    clock.now += debian.FRESH_SECONDS + 1
    found = debian.lookup(settings, verify=trusted, now=clock)
    assert found.providers("library", "libffi.so") == ["libffi-dev"]
    found.close()
    path, headers = mirror.requests[-1]
    assert path.endswith("/InRelease") and headers.get("If-None-Match") == '"v1"'


@pytest.mark.parametrize(("change", "why"), [
    (dict(sha="f" * 64), "sha256 mismatch"),  # the mirror serves other bytes than signed
    (dict(size=1), "more than the pinned 1 bytes"),
    (dict(size=debian.MAX_CONTENTS + 1), "more than the"),
    (dict(suite="trixie"), "is for 'trixie', not bookworm"),
])
def test_a_mirror_that_lies_gets_no_lookup_and_the_old_one_stays(
        mirror: Mirror, tmp_path: Path, change: dict[str, object], why: str) -> None:
    settings, clock = factories.settings(tmp_path), Clock()
    fresh = factories.settings(tmp_path / "other")
    mirror.publish(contents_bytes(), **change)  # type: ignore[arg-type]
    with pytest.raises(debian.LookupUnavailable, match=re.escape(why)):
        debian.lookup(fresh, verify=trusted, now=clock)
    assert not (debian.directory(fresh) / "lookup.sqlite").exists()
    mirror.publish(contents_bytes())
    debian.lookup(settings, verify=trusted, now=clock).close()
    mirror.publish(contents_bytes(), **change)  # type: ignore[arg-type]
    clock.now += debian.FRESH_SECONDS + 1
    kept = debian.lookup(settings, verify=trusted, now=clock)  # the last good one
    assert kept.providers("header", "ffi.h") == ["libffi-dev"]
    kept.close()


def test_signed_bytes_that_are_not_gzip_leave_the_last_good_lookup_usable(
        mirror: Mirror, tmp_path: Path) -> None:
    settings, clock = factories.settings(tmp_path), Clock()
    mirror.publish(contents_bytes())
    debian.lookup(settings, verify=trusted, now=clock).close()
    base = f"/debian/dists/{debian.SUITE}"
    junk = b"\x1f\x8b but not gzip"
    old = mirror.files[f"{base}/main/Contents-amd64.gz"]
    mirror.files[f"{base}/main/Contents-amd64.gz"] = junk
    mirror.files[f"{base}/InRelease"] = mirror.files[f"{base}/InRelease"].replace(
        f"{hashlib.sha256(old).hexdigest()} {len(old)}".encode(),
        f"{hashlib.sha256(junk).hexdigest()} {len(junk)}".encode())
    clock.now += debian.FRESH_SECONDS + 1
    kept = debian.lookup(settings, verify=trusted, now=clock)
    assert kept.providers("header", "ffi.h") == ["libffi-dev"]  # open, and the old one
    kept.close()
    assert mirror.paths()[-2:] == ["InRelease", "Contents-amd64.gz"]


def test_an_offline_mirror_is_asked_again_only_after_a_while(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.setattr(debian, "MIRROR", "http://127.0.0.1:9/debian")  # nothing listens
    monkeypatch.setenv(debian.SWITCH, "on")
    settings, clock = factories.settings(tmp_path), Clock()
    with pytest.raises(debian.LookupUnavailable, match="127.0.0.1:9"):
        debian.lookup(settings, verify=trusted, now=clock)
    asked: list[str] = []
    monkeypatch.setattr(debian, "_release", lambda *a: asked.append("x"))
    with pytest.raises(debian.LookupUnavailable):
        debian.lookup(settings, verify=trusted, now=clock)
    assert asked == []


def test_with_the_switch_off_the_mirror_is_never_asked(mirror: Mirror, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings, clock = factories.settings(tmp_path), Clock()
    mirror.publish(contents_bytes())
    monkeypatch.setenv(debian.SWITCH, "off")
    with pytest.raises(debian.LookupUnavailable, match=f"{debian.SWITCH}=off"):
        debian.lookup(settings, verify=trusted, now=clock)
    monkeypatch.setenv(debian.SWITCH, "on")
    debian.lookup(settings, verify=trusted, now=clock).close()
    monkeypatch.setenv(debian.SWITCH, "off")
    clock.now += 10 * debian.FRESH_SECONDS  # stale, but the kept lookup is used as is
    found = debian.lookup(settings, verify=trusted, now=clock)
    assert found.providers("header", "ffi.h") == ["libffi-dev"]
    found.close()
    assert mirror.paths() == ["InRelease", "Contents-amd64.gz", "Contents-all.gz"]


def test_a_damaged_lookup_or_state_is_made_again(mirror: Mirror, tmp_path: Path) -> None:
    settings, clock = factories.settings(tmp_path), Clock()
    mirror.publish(contents_bytes())
    debian.lookup(settings, verify=trusted, now=clock).close()
    kept = debian.directory(settings)
    (kept / "lookup.sqlite").write_bytes(b"garbage")
    (kept / "state.json").write_text('{"checked": "yesterday", "etag": "\\u0000"}')
    found = debian.lookup(settings, verify=trusted, now=clock)
    assert found.providers("header", "ffi.h") == ["libffi-dev"]
    found.close()


def test_an_unsigned_inrelease_is_refused_by_gpgv(mirror: Mirror, tmp_path: Path) -> None:
    mirror.publish(contents_bytes())
    with pytest.raises(debian.LookupUnavailable, match="signature|gpgv"):
        debian.lookup(factories.settings(tmp_path))  # the real check
    assert mirror.paths() == ["InRelease"]  # nothing more was fetched


def test_no_keyring_no_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(debian, "KEYRING", tmp_path / "missing.gpg")
    with pytest.raises(debian.LookupUnavailable, match="missing.gpg"):
        debian.verify_release(b"-----BEGIN PGP SIGNED MESSAGE-----\n")


# -- the call site: a failed build's error ----------------------------------------------------

def _settle_lookup(settings: Settings) -> None:
    """A lookup from the synthetic index, checked just now: no mirror is asked."""
    kept = debian.directory(settings)
    kept.mkdir(parents=True)
    (kept / "c.gz").write_bytes(gz(contents_bytes()))
    debian.build_lookup([kept / "c.gz"], kept / "lookup.sqlite",
                        {"suite": debian.SUITE, "arch": debian.ARCH, "sources": "{}"})
    (kept / "state.json").write_text(f'{{"checked": {time.time()}}}')


def _failed_build(settings: Settings, log: bytes, packages: tuple[str, ...] = ()
                  ) -> BuildError:
    sdist = settings.root / "cffi-1.0.tar.gz"
    sdist.write_bytes(b"sdist")
    image = ImageRef("factory-builder:test", "sha256:" + "1" * 64, "debootstrap",
                     ["gcc=4:12.2.0-3", "python3-dev=3.11.2-1+b1"])
    inputs = inputs_for(sdist, settings.root, Kit(()), image)
    inputs = replace(inputs, system_packages=packages)
    (settings.root / "out").mkdir()
    out = Confined(settings.root / "out", "cffi 1.0")
    result = ContainerRun(exit_code=1, timed_out=False, log=log, seconds=1.0)
    system = BuildSystem(backend="setuptools.build_meta", requires=())
    with pytest.raises(BuildError) as caught:
        builder._check_run(settings, builder._Run(inputs), result, out, system, "cffi.log")
    return caught.value


def test_a_build_that_fails_for_ffi_h_says_which_package_to_add(tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    _settle_lookup(settings)
    error = _failed_build(settings, GCC)
    assert "\n" not in error.message
    assert error.hint == ('needs ffi.h (Debian package libffi-dev): add system_packages = '
                          '["libffi-dev"] to recipes/cffi.toml')


def test_with_the_mirror_down_the_error_still_names_what_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debian, "MIRROR", "http://127.0.0.1:9/debian")  # nothing listens
    error = _failed_build(factories.settings(tmp_path), GCC, ("libxml2-dev",))
    assert error.hint is not None and "\n" not in error.hint
    assert error.hint.startswith("needs ffi.h (the Debian package could not be looked up: ")
    assert error.hint.endswith("add it to system_packages in recipes/cffi.toml")


def test_a_build_that_fails_for_another_reason_keeps_the_default_hint(tmp_path: Path) -> None:
    settings = factories.settings(tmp_path)
    _settle_lookup(settings)
    error = _failed_build(settings, b"Traceback\nValueError: bad version\n")
    assert error.hint == BuildError.default_hint


# -- the real index (network) -----------------------------------------------------------------

@pytest.fixture(scope="module")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real bookworm lookup, made once for this module: its state directory."""
    settings = factories.settings(tmp_path_factory.mktemp("real-debian"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(debian.SWITCH, "on")
        debian.lookup(settings).close()
    return debian.directory(settings)


@pytest.mark.network
@pytest.mark.slow
def test_the_real_bookworm_index_names_libffi_dev_and_libssl_dev(real_index: Path) -> None:
    found = debian.Lookup(real_index / "lookup.sqlite")
    try:
        assert found.providers("header", "ffi.h")[0] == "libffi-dev"
        assert found.providers("header", "openssl/ssl.h")[0] == "libssl-dev"
        assert found.providers("library", "libcrypto.so") == ["libssl-dev"]
        assert found.providers("pkgconfig", "libffi") == ["libffi-dev"]
        assert found.providers("tool", "pkg-config") == ["pkgconf"]
        assert found.providers("cmake", "pybind11")[0] == "pybind11-dev"  # from Contents-all
    finally:
        found.close()
    assert (real_index / "lookup.sqlite").stat().st_size < 64 << 20


@pytest.mark.network
def test_gpgv_takes_only_what_debian_signed() -> None:
    signed = httpx.get(f"{debian.MIRROR}/dists/{debian.SUITE}/InRelease", timeout=60).content
    text = debian.verify_release(signed)
    assert f"Codename: {debian.SUITE}".encode() in text
    assert debian.CONTENTS[0] in debian._pins(text)
    with pytest.raises(debian.LookupUnavailable, match="no good signature"):
        debian.verify_release(signed.replace(b"Codename: bookworm", b"Codename: bookwork"))
    forged = f" {'0' * 64} 5 {debian.CONTENTS[0]}\n".encode()
    smuggled = b"SHA256:\n" + forged + signed  # text before the signed part
    try:
        text = debian.verify_release(smuggled)
    except debian.LookupUnavailable:
        return  # refused outright: as good
    assert forged not in text
    assert debian._pins(text)[debian.CONTENTS[0]][0] != "0" * 64


# -- end to end: a C extension that needs ffi.h (docker) --------------------------------------

FFI_DEMO = {
    "pyproject.toml": '[build-system]\nrequires = ["setuptools>=68"]\n'
                      'build-backend = "setuptools.build_meta"\n',
    "setup.py": "from setuptools import Extension, setup\n"
                "setup(name='ffidemo', version='1.0',\n"
                "      ext_modules=[Extension('ffidemo', ['ffidemo.c'])])\n",
    "ffidemo.c": "#include <Python.h>\n#include <ffi.h>\n"
                 "static PyObject *cif_size(PyObject *self, PyObject *args) {\n"
                 "    return PyLong_FromSize_t(sizeof(ffi_cif));\n}\n"
                 "static PyMethodDef methods[] = {{\"cif_size\", cif_size, METH_NOARGS, 0},\n"
                 "                                {0, 0, 0, 0}};\n"
                 "static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"ffidemo\", 0, -1,"
                 " methods};\n"
                 "PyMODINIT_FUNC PyInit_ffidemo(void) { return PyModule_Create(&module); }\n",
    "PKG-INFO": "Metadata-Version: 2.1\nName: ffidemo\nVersion: 1.0\n",
}


@pytest.mark.docker
@pytest.mark.network
@pytest.mark.slow
def test_a_c_extension_is_told_to_add_libffi_dev_and_then_builds(
        real_index: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from factory.build.image import bootstrap_image
    from factory.recipes import parse_recipe
    from tests.builders_fixtures import PINNED, download, kit_from_sdists, unpack

    # pytest's cache keeps the pinned sdists across sessions (when the plugin is on)
    store = getattr(request.config, "cache", None)
    cache = Path(store.mkdir("factory-sdists")) if store is not None else tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    sdists = {n: download(cache, *PINNED[n])
              for n in ("setuptools", "pyproject-hooks", "packaging", "installer")}
    settings = factories.settings(tmp_path / "project")
    shutil.copytree(real_index, debian.directory(settings))  # the index, already fetched
    kit = kit_from_sdists({n: sdists[n] for n in ("pyproject-hooks", "packaging", "installer")},
                          tmp_path / "kit")
    image = bootstrap_image(settings)

    def build(sdist: Path, packages: tuple[str, ...] = (), tools: tuple[Path, ...] = (),
              on: ImageRef = image) -> Path:
        tree = unpack(sdist, tmp_path / "trees" / f"{sdist.name}-{len(packages)}")
        inputs = replace(inputs_for(sdist, tree, kit, on, tools), system_packages=packages)
        return settings.wheels_dir / builder.build(settings, inputs).wheel_filename

    setuptools = build(sdists["setuptools"])
    demo = factories.sdist(tmp_path / "src", "ffidemo", "1.0", bare=True, files=FFI_DEMO)
    recipe = factories.recipe(settings.root, "ffidemo")
    with pytest.raises(BuildError) as caught:
        build(demo, tools=(setuptools,))
    error = caught.value
    assert "\n" not in error.message and "ffi.h" in error.message
    assert error.hint == ('needs ffi.h (Debian package libffi-dev): add system_packages = '
                          '["libffi-dev"] to recipes/ffidemo.toml')

    line = re.search(r"add (system_packages = \[.*\]) to", error.hint)
    assert line is not None
    recipe.write_text(recipe.read_text() + line.group(1) + "\n")
    wanted = parse_recipe(recipe, settings.recipes_dir).system_packages
    assert wanted == ("libffi-dev",)
    wheel = build(demo, wanted, (setuptools,), bootstrap_image(settings, wanted))
    with zipfile.ZipFile(wheel) as built:
        assert any(n.startswith("ffidemo.cpython-311") and n.endswith(".so")
                   for n in built.namelist())

