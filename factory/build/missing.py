"""What a failed native build was missing, and the Debian package that provides it.

A build log is read for the ways compilers, linkers and build systems say that
something of the system is missing: a header (gcc, clang), a library (ld, lld),
a pkg-config module (pkg-config, pkgconf, meson, CMake's FindPkgConfig), a CMake
package (``Could NOT find X``, a missing ``XConfig.cmake``), a program (the
shell, Python's subprocess, distutils, gcc's driver, CMake and meson compiler
probes), a shared object at run time. Each is looked up in the builder suite's
Contents index (``factory.build.debian``) and the failure gets a one-line hint:

    needs ffi.h (Debian package libffi-dev): add system_packages = ["libffi-dev"]
    to recipes/cffi.toml

The log is the build's own words, written by whoever wrote the sdist: what is
taken from it is bounded and checked against a narrow charset, and it is only
ever looked up, never run. The hint names packages found in the signed Contents
index only; a human still adds them to the recipe.

A build that succeeded is read the same way (``skipped_warning``): many sdists
treat their C extension as optional (PyYAML, MarkupSafe, msgpack...) and fall
back to pure Python when a header is missing, so the log of a good build can
say what it went without. That becomes a warning kept with the build, never a
failure.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from factory.build import debian
from factory.build.image import SUITE
from factory.config import Settings
from factory.errors import FactoryError, one_line

MAX_SCAN = 8 << 20  # bytes of a log read (its end: errors come last)
MAX_LOG_LINE = 4096  # characters of one log line read
MAX_ITEMS = 8  # missing things reported for one build
MAX_NAME = 200
SHOWN_ALTERNATIVES = 2

_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,199}")
_HEADER = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*(?:/[A-Za-z0-9_+][A-Za-z0-9_.+-]*)*")
_SGR = re.compile(r"\x1b\[[0-9;]*[mK]")  # gcc's colours; any other escape spoils a line
_BIN_DIRS = ("/usr/local/bin/", "/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/")
# Programs no package ships under their own name (alternatives, compiler internals).
TOOL_ALIASES = {"cc": "gcc", "c++": "g++", "cc1": "gcc", "cc1plus": "g++", "c99": "gcc",
                "f77": "gfortran", "f95": "gfortran", "cc1obj": "gobjc", "python": "python3"}
CMAKE_COMPILERS = {"C": "gcc", "CXX": "g++", "Fortran": "gfortran", "OBJC": "gobjc"}
# CMake modules that name a program, not a library.
CMAKE_PROGRAMS = {"pkgconfig": "pkg-config", "swig": "swig", "git": "git", "doxygen": "doxygen",
                  "perl": "perl", "bison": "bison", "flex": "flex", "patch": "patch"}


@dataclass(frozen=True)
class Missing:
    """One thing a build could not find.

    ``kind``: header, library (``-lNAME`` or ``-l:FILE``), shared-object, pkgconfig,
    cmake, tool. ``certain`` is False for a weak sign (a Python ``FileNotFoundError``
    on a bare name): such an item is reported only when a package provides it.
    ``variables`` are the CMake variables a ``Could NOT find`` listed."""

    kind: str
    name: str
    certain: bool = True
    variables: tuple[str, ...] = ()

    def shown(self) -> str:
        return {"header": self.name, "library": f"-l{self.name}",
                "shared-object": self.name, "pkgconfig": f"pkg-config module {self.name}",
                "cmake": f"CMake package {self.name}", "tool": f"the program {self.name}",
                }[self.kind]

    def candidates(self) -> Iterator[tuple[str, str]]:
        """(index kind, name) to look up, the most specific first."""
        name = self.name
        if self.kind == "header":
            yield "header", name
        elif self.kind == "library":
            yield from ((("library", name[1:]),) if name.startswith(":") else
                        (("library", f"lib{name}.so"), ("library", f"lib{name}.a")))
        elif self.kind == "shared-object":
            yield "library", name
        elif self.kind == "pkgconfig":
            yield from (("pkgconfig", name), ("pkgconfig", name.lower()))
        elif self.kind == "tool":
            yield "tool", TOOL_ALIASES.get(name, name)
        else:
            yield from _cmake_candidates(name, self.variables)


def _cmake_candidates(name: str, variables: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """A CMake package by its config file, then pkg-config module, library, header; then
    the libraries and headers its variables name (OPENSSL_CRYPTO_LIBRARY: libcrypto)."""
    lower = name.lower()
    if lower in CMAKE_PROGRAMS:
        yield "tool", CMAKE_PROGRAMS[lower]
        return
    yield "cmake", lower
    yield from (("pkgconfig", lower), ("pkgconfig", f"lib{lower}"))
    yield "library", f"lib{lower}.so"
    prefix = name.upper() + "_"
    for variable in variables:  # FFI_LIBRARY: libffi; OPENSSL_CRYPTO_LIBRARY: libcrypto
        for suffix in ("_LIBRARY", "_LIBRARIES", "_LIB"):
            if variable.endswith(suffix):
                core = variable.removesuffix(suffix)
                yield "library", f"lib{core.removeprefix(prefix).lower()}.so"
                break
    yield "header", f"{lower}.h"


# -- reading the log ------------------------------------------------------------------------

# file:line[:column] of a compiler message; it starts a word (a match tried at every
# character of a long word would make a hostile log cost quadratic time)
_LOC = r"(?<!\S)[^\s:]*:\d+(?::\d+)?: "
_PATTERNS: tuple[tuple[str, re.Pattern[str], bool], ...] = tuple(
    (kind, re.compile(pattern), certain) for kind, pattern, certain in (
        # gcc, g++: src/x.c:3:10: fatal error: ffi.h: No such file or directory
        ("header", _LOC + r"fatal error: (?P<n>[^\s:'\"<>]+): No such file or directory", True),
        # clang: src/x.c:3:10: fatal error: 'ffi.h' file not found
        ("header", _LOC + r"(?:fatal )?error: '(?P<n>[^'\s]+)' file not found", True),
        # GNU ld / gold / lld / mold: cannot find -lffi, unable to find library -lffi
        ("library", r"(?:cannot find|unable to find library|library not found for) "
                    r"-l(?P<n>:?[A-Za-z0-9_.+-]+)", True),
        ("library", r"\bmold: fatal: library not found: (?P<n>[A-Za-z0-9_.+-]+)", True),
        ("shared-object", r"(?<![A-Za-z0-9_.+-])"  # a whole name: linear, like _LOC
                          r"(?P<n>lib[A-Za-z0-9_.+-]*\.so(?:\.[0-9][A-Za-z0-9.]*)?): "
                          r"cannot open shared object file", True),
        # pkg-config and pkgconf, also through CMake's FindPkgConfig and autoconf
        ("pkgconfig", r"Package (?P<n>[A-Za-z0-9_.+-]+) was not found in the pkg-config "
                      r"search path", True),
        ("pkgconfig", r"No package '(?P<n>[A-Za-z0-9_.+-]+)' found", True),
        ("pkgconfig", r"Package '(?P<n>[A-Za-z0-9_.+-]+)',? required by '[^']*',? not found",
         True),
        ("pkgconfig", r"None of the required '(?P<n>[A-Za-z0-9_.+-]+)' found", True),
        # meson
        ("pkgconfig", r"Dependency \"?(?P<n>[A-Za-z0-9_.+-]+)\"? not found", True),
        ("pkgconfig", r"(?:Run-time|Build-time) dependency (?P<n>[A-Za-z0-9_.+-]+) "
                      r"found: NO", False),  # also printed for optional dependencies
        # CMake
        ("cmake", r"Could NOT find (?P<n>[A-Za-z0-9_.+-]+)", True),
        ("cmake", r"Could not find a package configuration file provided by "
                  r"\"(?P<n>[A-Za-z0-9_.+-]+)\"", True),
        ("tool", r"No CMAKE_(?P<lang>C|CXX|Fortran|OBJC)_COMPILER could be found", True),
        ("tool", r"CMAKE_(?P<lang>C|CXX|Fortran|OBJC)_COMPILER not set", True),
        # shells: sh: 1: cmake: not found / bash: line 1: cmake: command not found
        ("tool", r"^(?:\S*/)?(?:sh|bash|dash|zsh)(?:: line \d+|: \d+)?: "
                 r"(?P<n>[^\s:]+): (?:command )?not found", True),
        ("tool", r"^(?P<n>[A-Za-z0-9_.+-]+): (?:command )?not found\s*$", False),
        ("tool", r"\bwhich: no (?P<n>[A-Za-z0-9_.+-]+) in \(", True),
        ("tool", r"\benv: ['\u2018\"]?(?P<n>[A-Za-z0-9_.+/-]+)['\u2019\"]?: "
                 r"No such file or directory", True),
        # distutils / setuptools, gcc's driver, meson
        ("tool", r"error: command '(?P<n>[^']+)' failed: No such file or directory", True),
        ("tool", r"unable to execute '?(?P<n>[^':\s]+)'?: No such file or directory", True),
        ("tool", r"error trying to exec '(?P<n>[^']+)': execvp: No such file or directory",
         True),
        ("tool", r"Program '(?P<n>[^']+)' not found or not executable", True),
        ("tool", r"Unknown compiler\(s\): \[\['(?P<n>[^']+)'", True),
        ("tool", r"can't find Rust compiler", True),
        # setup.py prose: "make sure the libxml2 and libxslt development packages are
        # installed" (lxml), "the libfoo development headers are required": weak signs,
        # each library by name (its -dev package ships lib<name>.so)
        ("library", r"\blib(?P<n>[A-Za-z0-9_+][A-Za-z0-9_+.-]*?)(?:-dev|-devel)?"
                    r"(?: and lib[A-Za-z0-9_+.-]+?)? (?:development|devel|dev) "
                    r"(?:packages?|headers|files|libraries)\b", False),
        ("library", r"\blib[A-Za-z0-9_+.-]+? and lib(?P<n>[A-Za-z0-9_+][A-Za-z0-9_+.-]*?)"
                    r"(?:-dev|-devel)? (?:development|devel|dev) "
                    r"(?:packages?|headers|files|libraries)\b", False),
        # Python's subprocess: also a data file the build did not find (a weak sign)
        ("tool", r"\[Errno 2\] No such file or directory: '(?P<n>[^']+)'", False),
    ))
_VARIABLES = re.compile(r"\(missing: (?P<v>[A-Za-z0-9_ ]{1,400})\)")
_FIRST_WORDS = ("fatal error", "error:", "cannot find", "unable to", "not found", "No package",
                "Could NOT", "Could not find", "COMPILER", "No such file", "which: no",
                "None of the required", "library not found", "cannot open shared", "found: NO",
                "Unknown compiler", "Rust compiler", "development package",
                "development header", "development files", "development librar")


def missing_in_log(log: bytes | str, limit: int = MAX_ITEMS, *,
                   certain_only: bool = False) -> list[Missing]:
    """What the log says was missing, in order of first mention, each once, at most
    ``limit``. ``certain_only``: weak signs are passed over before they count towards
    ``limit`` (a good build's log may probe many optional dependencies, each a weak
    sign, before the compiler says what it lacked)."""
    if isinstance(log, bytes):
        log = log[-MAX_SCAN:].decode("utf-8", "replace")
    found: dict[tuple[str, str], Missing] = {}
    for line in _lines(log[-MAX_SCAN:]):
        for item in _missing_in_line(line):
            if certain_only and not item.certain:
                continue
            key = (item.kind, item.name.lower() if item.kind == "cmake" else item.name)
            if key not in found or (item.certain and not found[key].certain):
                found[key] = item
        if len(found) >= limit:
            break
    return list(found.values())[:limit]


def _lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = line[:MAX_LOG_LINE]
        if "\x1b" in line:
            line = _SGR.sub("", line)
        if any(word in line for word in _FIRST_WORDS):
            yield line.strip()


def _missing_in_line(line: str) -> Iterator[Missing]:
    for kind, pattern, certain in _PATTERNS:
        for match in pattern.finditer(line):
            item = _item(kind, match, certain, line)
            if item is not None:
                yield item


def _item(kind: str, match: re.Match[str], certain: bool, line: str) -> Missing | None:
    groups = match.groupdict()
    name = _tool_name(groups, match.group(0)) if kind == "tool" else groups.get("n") or ""
    if kind == "header":
        valid = len(name) <= MAX_NAME and bool(_HEADER.fullmatch(name)) and ".." not in name
    else:
        valid = bool(_NAME.fullmatch(name.removeprefix(":")))
    if not valid:
        return None
    variables: tuple[str, ...] = ()
    if kind == "cmake" and (listed := _VARIABLES.search(line)):
        variables = tuple(listed.group("v").split())[:16]
    # CMake's status lines ("-- Could NOT find X", "--   No package 'x' found") are
    # also printed for optional dependencies: a weak sign, unlike its "CMake Error".
    return Missing(kind, name, certain and not line.startswith("--"), variables)


def _tool_name(groups: dict[str, str | None], text: str) -> str:
    if groups.get("lang"):
        return CMAKE_COMPILERS[str(groups["lang"])]
    if "Rust compiler" in text:
        return "rustc"
    name = groups.get("n") or ""
    if "/" in name:  # a program by path: only where programs live, and by its name
        name = name.rpartition("/")[2] if name.startswith(_BIN_DIRS) else ""
    return name


# -- the hint -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """A missing thing and the packages that provide it (best first; empty: none found)."""

    missing: Missing
    packages: tuple[str, ...]


@dataclass(frozen=True)
class Diagnosis:
    """What a failed build lacked, as one line for the error's hint."""

    findings: tuple[Finding, ...]
    unavailable: str = ""  # why the packages could not be looked up, if they could not

    @property
    def certain(self) -> bool:
        return any(f.missing.certain for f in self.findings)

    def packages(self) -> list[str]:
        return [f.packages[0] for f in self.findings if f.packages]


def find_providers(items: Iterable[Missing], providers: Callable[[str, str], list[str]]
                   ) -> tuple[Finding, ...]:
    """Each item with its packages: those of its first candidate any package provides.

    Weak signs count only when the log holds no certain one, and only when a package
    provides what they name (a data file the build did not find is no package's)."""
    items = list(items)
    findings = []
    for item in [i for i in items if i.certain] or items:
        found: list[str] = []
        for kind, name in item.candidates():
            found = providers(kind, name)
            if found:
                break
        if found or item.certain:
            findings.append(Finding(item, tuple(found)))
    return tuple(findings)


def diagnose(settings: Settings, log: bytes | str,
             lookup: Callable[[Settings], debian.Lookup] | None = None, *,
             certain_only: bool = False) -> Diagnosis | None:
    """What the log says was missing, with the packages that provide it; None when the
    log names nothing missing. ``certain_only``: weak signs are left out before the
    index is opened (a good build's log has many: optional dependencies it probed).
    Never raises for an index that cannot be had: the diagnosis then says why."""
    items = missing_in_log(log, certain_only=certain_only)
    certain = tuple(Finding(i, ()) for i in items if i.certain)
    if not items:
        return None
    try:
        found = (lookup or debian.lookup)(settings)
    except FactoryError as exc:
        return Diagnosis(certain, one_line(exc.message, 300)) if certain else None
    try:
        findings = find_providers(items, found.providers)
    except sqlite3.Error as exc:
        why = f"the Contents lookup could not be read ({type(exc).__name__})"
        return Diagnosis(certain, why) if certain else None
    finally:
        found.close()
    return Diagnosis(findings) if findings else None


def hint(diagnosis: Diagnosis, recipe: str, listed: Iterable[str] = (),
         held: Iterable[str] = ()) -> str:
    """One line: what is missing, which package provides it, the recipe line to write.

    ``recipe`` is the recipe's path as shown (recipes/cffi.toml); ``listed`` the
    system packages it lists already (``name`` or ``name=version``); ``held`` the
    packages of the builder image (likewise), which need no adding."""
    held_names = {p.partition("=")[0] for p in held}
    listed = list(listed)
    verb = "needs" if diagnosis.certain else "may need"
    if diagnosis.unavailable:  # the reason once, after everything that was missing
        shown = ", ".join(f.missing.shown() for f in diagnosis.findings)
        packages = "package" if len(diagnosis.findings) == 1 else "packages"
        what = (f"{verb} {shown} (the Debian {packages} could not be looked up: "
                f"{one_line(diagnosis.unavailable, 200)})")
    else:
        what = f"{verb} {'; '.join(_described(f, held_names) for f in diagnosis.findings)}"
    known = held_names | {p.partition("=")[0] for p in listed}
    # a thing one of whose providers is held or listed asks for none of the others
    # (they may conflict: libcurl4-openssl-dev and libcurl4-gnutls-dev)
    needed = [f.packages[0] for f in diagnosis.findings
              if f.packages and known.isdisjoint(f.packages)]
    if needed:
        return f"{what}: {_add_line(listed, needed, recipe)}"
    if diagnosis.unavailable:
        return (f"{what}: find the Debian {SUITE} package that provides it "
                f"(https://packages.debian.org/{SUITE}/) and add it to system_packages in "
                f"{recipe}")
    if diagnosis.packages():
        return (f"{what}, already in the builder image: the build does not look where "
                "Debian puts it (check its include and library paths)")
    return f"{what}: the build must get it another way (a patch, or a build requirement)"


def _add_line(listed: list[str], needed: list[str], recipe: str) -> str:
    """The recipe's line as it must read: what it lists (pins kept), then ``needed``."""
    line = ", ".join(f'"{p}"' for p in dict.fromkeys([*listed, *needed]))
    return f"add system_packages = [{line}] to {recipe}"


def _described(finding: Finding, held: set[str]) -> str:
    what = finding.missing.shown()
    if finding.packages:
        first, others = finding.packages[0], finding.packages[1:1 + SHOWN_ALTERNATIVES]
        also = f"; also in {', '.join(others)}" if others else ""
        where = ", in the builder image" if first in held else ""
        return f"{what} (Debian package {first}{where}{also})"
    return f"{what} (no Debian {SUITE} package provides it)"


def build_hint(settings: Settings, log: bytes | str, recipe_name: str,
               listed: Iterable[str] = (), held: Iterable[str] = ()) -> str | None:
    """The hint for a build that failed with ``log``, or None when the log names nothing
    missing. ``listed``: the recipe's system packages; ``held``: the image's. Never
    raises: a failed build's error must not become another error."""
    try:
        diagnosis = diagnose(settings, log)
        if diagnosis is None:
            return None
        return hint(diagnosis, f"recipes/{PurePosixPath(recipe_name).name}", listed, held)
    except Exception:  # the hint is best effort: the build's own error must stand
        return None


# -- a build that succeeded without something ----------------------------------------------

MAX_WARNING = 1000  # characters of one warning (a safety net: it is bounded by making)
SHOWN_SKIPPED = 3  # missing things a warning describes (its recipe line names all)
NO_CODE = "its wheel holds no compiled code"


def skipped(diagnosis: Diagnosis | None, what: str, recipe: str, listed: Iterable[str] = (),
            held: Iterable[str] = (), *, no_code: bool = False) -> str | None:
    """One line for a build that succeeded though its log says something was missing:
    what (each certain sign a Debian package provides that neither the image nor the
    recipe has), and the recipe line that brings it; ``no_code``: the wheel is tagged
    for a platform but holds no ELF file, which is said too. None: nothing to say.

    ``what`` is the build (pyyaml 6.0.4), ``recipe`` the recipe's path as shown."""
    held_names = {p.partition("=")[0] for p in held}
    listed = list(listed)
    known = held_names | {p.partition("=")[0] for p in listed}
    # A thing any of whose providers the image or the recipe has already is not asked
    # for again: another provider may conflict with it (libcurl4-openssl-dev and
    # libcurl4-gnutls-dev both ship curl/curl.h), and the build had it anyway.
    found = [f for f in (diagnosis.findings if diagnosis and not diagnosis.unavailable
                         else ()) if f.missing.certain and f.packages
             and known.isdisjoint(f.packages)]
    if found:
        shown = "; ".join(_described(f, held_names) for f in found[:SHOWN_SKIPPED])
        more = (f" and {len(found) - SHOWN_SKIPPED} more" if len(found) > SHOWN_SKIPPED
                else "")
        also = f" and {NO_CODE}" if no_code else ""
        needed = list(dict.fromkeys(f.packages[0] for f in found))
        text = (f"{what} built without {shown}{more}: the build skipped what needed "
                f"it{also}; {_add_line(listed, needed, recipe)}")
    elif no_code:
        text = (f"{what}: {NO_CODE} though it is tagged for a platform: the build skipped "
                "its C code (its log says why)")
    else:
        return None
    return one_line(text, MAX_WARNING)


def skipped_warning(settings: Settings, log: bytes | str, what: str, recipe_name: str,
                    listed: Iterable[str] = (), held: Iterable[str] = (), *,
                    no_code: bool = False,
                    lookup: Callable[[Settings], debian.Lookup] | None = None) -> str | None:
    """The warning for a build that succeeded with ``log`` (``skipped``), or None. The
    Contents index is opened only when the log has a certain sign. Never raises: a
    good build must not fail for its warning."""
    try:
        diagnosis = diagnose(settings, log, lookup, certain_only=True)
        return skipped(diagnosis, one_line(what, 200),
                       f"recipes/{PurePosixPath(recipe_name).name}", listed, held,
                       no_code=no_code)
    except Exception:  # best effort, as build_hint
        return None
