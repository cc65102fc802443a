"""Classify the most downloaded PyPI projects into the optional catalogue
``catalogues/top-pypi.toml``: what each one is built from, and why some cannot be
built by the factory (CPython 3.11 on Debian bookworm, no network in the container).

Ranking: hugovk/top-pypi-packages, file ``top-pypi-packages-30-days.min.json``
(``last_update`` 2026-04-01 06:34:06 UTC, downloads of the 30 days before; repository
commit 7ec9534546eda4012c7826b6078e35eaa2c9c5f2). Project metadata: the PyPI JSON API
(https://pypi.org/pypi/NAME/json), read on 2026-11-30. The sdist of the release picked
for each project is downloaded (at most 50 MB) and only listed and read, never unpacked.

Everything is read from a cache directory; ``--fetch`` fills what is missing (four
requests at a time), so a second run is offline and gives the same file::

    python scripts/catalogue_classify.py --fetch            # first run, network
    python scripts/catalogue_classify.py                    # again, from the cache
    python scripts/catalogue_classify.py --names            # chosen names, one a line
    python scripts/catalogue_classify.py --names --closure-buildable   # and no Rust below

The classification is a heuristic over the sdist's file list and build files; each
entry's ``evidence`` says what it was decided on, so a wrong class can be argued with.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urljoin

import httpx
import tomli_w
from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

RANKING_FILE = "top-pypi-packages-30-days.min.json"
RANKING_SOURCE = "https://github.com/hugovk/top-pypi-packages (" + RANKING_FILE + ")"
CLASSIFIED_ON = "2026-11-30"
PYTHON = Version("3.11.2")  # bookworm's python3
MAX_SDIST = 50 * 1024 * 1024
# An sdist older than this behind the newest release is not what users of it get.
STALE_SDIST = timedelta(days=2 * 365)
WORKERS = 4
LARGE_BUILD = 500  # C/C++/Cython sources: tens of minutes on two cores
ROOT = Path(__file__).resolve().parent.parent

# The marker environment of the builder: requirements are followed as they apply there.
ENVIRONMENT = {
    "implementation_name": "cpython", "implementation_version": str(PYTHON),
    "os_name": "posix", "platform_machine": "x86_64", "platform_release": "",
    "platform_system": "Linux", "platform_version": "", "python_full_version": str(PYTHON),
    "platform_python_implementation": "CPython", "python_version": "3.11",
    "sys_platform": "linux", "extra": "",
}

BUILDABLE = ("pure", "c", "cpp", "cython")
RUST_BUILD_TOOLS = {"maturin", "setuptools-rust", "puccinialab"}
NATIVE_BUILD_TOOLS = {"cython", "cffi", "pybind11", "nanobind", "scikit-build", "scikit-build-core",
                      "meson-python", "meson", "cmake", "numpy", "pythran"}
JS_BUILD_TOOLS = {"hatch-jupyter-builder", "jupyter-packaging", "jupyterlab"}
SUFFIXES = {
    ".rs": "rust", ".go": "go", ".pyx": "cython",
    ".f": "fortran", ".f90": "fortran", ".f95": "fortran", ".f03": "fortran", ".f08": "fortran",
    ".for": "fortran", ".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp", ".c++": "cpp", ".c": "c",
}
# Directories whose sources are test data or documentation, not part of the build.
NOT_BUILT = {"test", "tests", "testing", "testsuite", "doc", "docs", "example", "examples",
             "bench", "benchmark", "benchmarks", "demo", "demos", "samples", "fuzz", "tools",
             "test cases", "testdata", "test_data", "templates"}
# Read from the sdist's top directory, with every top-level *.py (setup.py, hatch_build.py,
# _setup.py, build.py ...: the places a build hook lives).
BUILD_FILES = ("pyproject.toml", "setup.cfg", "meson.build", "CMakeLists.txt")
# Text in those that says the build compiles something.
EXTENSION_MARKS = ("Extension(", "ext_modules", "cythonize", "cffi_modules", "build_ext")
RUST_MARKS = ("setuptools_rust", "RustExtension", "maturin")
SYSTEM_LIBRARY_MARKS = ("pkg-config", "pkgconfig", "find_package(", "dependency(", "find_library",
                        "llvm-config")
# Hand-checked where the file list misleads; each says why.
OVERRIDES = {
    "zstandard": ("c", "the Rust backend is built only with --rust-backend; the default is C"),
}
DOWNLOAD_MARKS = ("urlretrieve", "urlopen(", "_download", "def download")


@dataclass
class Sdist:
    """What was read from one sdist: its source files by language and its build files."""

    languages: dict[str, int] = field(default_factory=dict)
    cargo: bool = False
    texts: dict[str, str] = field(default_factory=dict)


@dataclass
class Entry:
    """One classified project."""

    name: str
    rank: int | None
    cls: str
    version: str | None = None
    reason: str | None = None
    backend: str | None = None
    build_requires: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def buildable(self) -> bool:
        return self.cls in BUILDABLE


class Cache:
    """The PyPI JSON documents and sdists, on disk; fetched only when allowed."""

    def __init__(self, root: Path, fetch: bool) -> None:
        self.root = root
        self.fetch = fetch
        self.client = httpx.Client(timeout=60, follow_redirects=True,
                                   headers={"User-Agent": "artifact-factory catalogue_classify"})

    def project(self, name: str, version: str | None = None) -> dict[str, Any] | None:
        """The JSON API document, or None when PyPI has no such project."""
        key = name if version is None else f"{name}@{version}"
        path = self.root / "json" / f"{key}.json"
        if not path.exists():
            url = f"https://pypi.org/pypi/{name}/json" if version is None else \
                f"https://pypi.org/pypi/{name}/{version}/json"
            body = self._get(url, allow_missing=True)
            _write(path, body if body is not None else b"null")
        loaded: dict[str, Any] | None = json.loads(path.read_bytes())
        return loaded

    def sdist(self, name: str, url: str, filename: str, sha256: str) -> bytes:
        path = self.root / "sdist" / filename
        if not path.exists():
            # The JSON API here answers with URLs relative to the document: resolve them.
            body = self._get(urljoin(f"https://pypi.org/pypi/{name}/json", url),
                             allow_missing=False)
            assert body is not None
            _write(path, body)
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise SystemExit(f"error: {filename} does not match its sha256 (delete {path})")
        return data

    def _get(self, url: str, *, allow_missing: bool) -> bytes | None:
        if not self.fetch:
            raise SystemExit(f"error: {url} is not in the cache {self.root} (hint: --fetch)")
        response = self.client.get(url)
        if response.status_code == 404 and allow_missing:
            return None
        response.raise_for_status()
        return response.content


def _write(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".part")
    temporary.write_bytes(body)
    temporary.replace(path)


def admits(requires_python: str | None, version: Version = PYTHON) -> bool:
    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(version, prereleases=True)
    except InvalidSpecifier:
        return True  # pip ignores what it cannot parse, so does the resolver


@dataclass
class Release:
    """One release that is not yanked, and its files."""

    version: Version
    files: list[dict[str, Any]]

    @property
    def requires_python(self) -> str | None:
        return next((f["requires_python"] for f in self.files if f.get("requires_python")), None)

    @property
    def sdist(self) -> dict[str, Any] | None:
        return next((f for f in self.files if f.get("packagetype") == "sdist"), None)

    @property
    def uploaded(self) -> date:
        return min(date.fromisoformat(f["upload_time"][:10]) for f in self.files)


def pick_release(doc: dict[str, Any]) -> tuple[Release | None, Release | None, list[str]]:
    """The newest release that supports the builder's Python, the newest such
    release that has an sdist (what a lock would pick), and why newer ones were passed over."""
    releases: list[Release] = []
    for text, files in doc.get("releases", {}).items():
        live = [f for f in files if not f.get("yanked")]
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if live:
            releases.append(Release(version, live))
    releases.sort(key=lambda r: r.version, reverse=True)
    # Pre-releases count only for a project that ships nothing else (0.60b0, ...), as a
    # dependent pinning one would get it.
    releases = [r for r in releases if not r.version.is_prerelease] or releases
    supported = [r for r in releases if admits(r.requires_python)]
    if not supported:
        return None, None, []
    skipped = [f"skipped {r.version}: Requires-Python {r.requires_python}"
               for r in releases if r.version > supported[0].version][:3]
    return supported[0], next((r for r in supported if r.sdist), None), skipped


def read_sdist(data: bytes, filename: str) -> Sdist:
    """List the sdist and read its top-level build files, without unpacking anything."""
    result = Sdist()
    for path, read in _members(data, filename):
        parts = PurePosixPath(path).parts[1:]  # drop the NAME-VERSION/ directory
        if not parts:
            continue
        if len(parts) == 1 and (parts[0] in BUILD_FILES or parts[0].endswith(".py")):
            result.texts[parts[0]] = read()[:1_000_000].decode("utf-8", "replace")
        if NOT_BUILT.intersection(p.lower() for p in parts[:-1]):
            continue
        if parts[-1] == "Cargo.toml":
            result.cargo = True
        language = SUFFIXES.get(PurePosixPath(path).suffix.lower())
        if language:
            result.languages[language] = result.languages.get(language, 0) + 1
    return result


def _members(data: bytes, filename: str) -> Iterator[tuple[str, Any]]:
    if filename.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield info.filename, lambda i=info, a=archive: a.read(i)
        return
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        for member in archive:
            if member.isfile():
                yield member.name, lambda m=member, a=archive: _read_member(a, m)


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    return handle.read() if handle is not None else b""


def _names(requirements: Iterable[str], *, follow_markers: bool) -> list[str]:
    names: list[str] = []
    for text in requirements:
        try:
            requirement = Requirement(text)
            if follow_markers and requirement.marker is not None \
                    and not requirement.marker.evaluate(dict(ENVIRONMENT)):
                continue
        except (InvalidRequirement, UndefinedEnvironmentName):
            continue
        name = canonicalize_name(requirement.name)
        if name not in names:
            names.append(name)
    return names


def _build_system(sdist: Sdist) -> tuple[str | None, list[str]]:
    text = sdist.texts.get("pyproject.toml")
    if text is None:
        return None, ["setuptools"]  # PEP 517's fallback: legacy setup.py
    try:
        table = tomllib.loads(text).get("build-system", {})
    except tomllib.TOMLDecodeError:
        return None, []
    backend = table.get("build-backend")
    requires = table.get("requires", ["setuptools"])
    return (backend if isinstance(backend, str) else None,
            _names([r for r in requires if isinstance(r, str)], follow_markers=True))


def _is_build_script(name: str) -> bool:
    """setup.py, _setup.py, setup_zstd.py, hatch_build.py, build.py: not tests or modules."""
    return name.endswith(".py") and (name.lstrip("_").startswith("setup") or "build" in name)


def classify_sdist(entry: Entry, sdist: Sdist, doc: dict[str, Any]) -> None:
    entry.backend, entry.build_requires = _build_system(sdist)
    tools = set(entry.build_requires)
    build_text = "\n".join(sdist.texts.values())
    hooks = "\n".join(t for n, t in sdist.texts.items() if _is_build_script(n))
    pyproject = sdist.texts.get("pyproject.toml", "")
    langs = sdist.languages
    entry.evidence = [f"{n} {lang} sources" for lang, n in sorted(langs.items())]
    extension = any(mark in hooks for mark in EXTENSION_MARKS) \
        or "ext-modules" in pyproject \
        or (bool(langs.get("cython")) and "cython" in pyproject.lower()) \
        or bool(tools & NATIVE_BUILD_TOOLS) \
        or entry.backend in ("mesonpy", "scikit_build_core.build") \
        or "meson.build" in sdist.texts or "CMakeLists.txt" in sdist.texts
    rust_tools = sorted(tools & RUST_BUILD_TOOLS)
    rust_hook = sdist.cargo and any(mark in hooks for mark in RUST_MARKS)
    if entry.name in OVERRIDES:
        entry.cls, why = OVERRIDES[entry.name]
        entry.notes.append(f"class set by hand: {why}")
    elif rust_tools or rust_hook or (entry.backend or "").startswith("maturin"):
        entry.cls = "rust"
        entry.evidence.insert(0, "build requires " + ", ".join(rust_tools) if rust_tools
                              else "Cargo.toml and setuptools-rust in the build script")
        entry.reason = "needs Rust crates from crates.io, which this machine cannot reach"
        if not rust_tools and "optional" in sdist.texts.get("setup.py", ""):
            entry.notes.append("setup.py may make the Rust part optional")
    elif langs.get("fortran") and extension:
        entry.cls = "fortran"
        entry.reason = "needs gfortran and BLAS/LAPACK, not in the builder image"
    elif langs.get("go") and extension:
        entry.cls = "go"
        entry.reason = "needs a Go toolchain and modules from the network"
    elif extension and (langs.get("cython") or "cython" in tools):
        entry.cls = "cython"
    elif extension and langs.get("cpp"):
        entry.cls = "cpp"
    elif extension and (langs.get("c") or "cffi" in tools or "cffi_modules" in build_text):
        entry.cls = "c"
    else:
        entry.cls = "pure"
        if langs:
            entry.notes.append("ships native sources but builds no extension")
    if sdist.cargo and entry.cls != "rust":
        entry.notes.append("ships a Cargo.toml that its default build does not use")
    if entry.cls in ("c", "cpp", "cython"):
        _native_notes(entry, doc, build_text, langs)
    if tools & JS_BUILD_TOOLS:
        entry.notes.append("JavaScript build hook (needs the built assets in the sdist)")
    if any(mark in hooks for mark in DOWNLOAD_MARKS):
        entry.notes.append("build script mentions downloading (no network in the container)")


def _native_notes(entry: Entry, doc: dict[str, Any], build_text: str,
                  langs: dict[str, int]) -> None:
    if any(mark in build_text for mark in SYSTEM_LIBRARY_MARKS):
        entry.notes.append("looks up a system library (pkg-config / find_package)")
    if any(mark in build_text for mark in ("ExternalProject_Add", "FetchContent")):
        entry.notes.append("CMake files fetch content (no network in the container)")
    sources = sum(n for lang, n in langs.items() if lang in ("c", "cpp", "cython"))
    if sources > LARGE_BUILD:
        entry.notes.append(f"large native build ({sources} sources)")
    systems = [c for c in doc["info"].get("classifiers") or [] if c.startswith("Operating System")]
    portable = ("POSIX", "Linux", "Unix", "OS Independent")
    if systems and not any(word in c for c in systems for word in portable):
        entry.cls = "platform"
        entry.reason = "native code for " + "; ".join(s.split(" :: ", 1)[1] for s in systems)


def _wheel_reason(files: list[dict[str, Any]]) -> tuple[str, str]:
    tags = sorted({f["filename"].rsplit("-", 1)[-1].removesuffix(".whl")
                   for f in files if f.get("packagetype") == "bdist_wheel"})
    if not tags:
        return "no-sdist", "release has no sdist and no wheel"
    if all(t.startswith("win") for t in tags):
        return "platform", "no sdist; Windows wheels only"
    if all(t.startswith("macosx") for t in tags):
        return "platform", "no sdist; macOS wheels only"
    shown = ", ".join(tags[:4]) + (", ..." if len(tags) > 4 else "")
    return "no-sdist", f"no sdist; wheels only ({shown})"


def classify(cache: Cache, name: str, rank: int | None) -> Entry:
    doc = cache.project(name)
    if doc is None:
        return Entry(name, rank, "missing", reason="not on PyPI (404)")
    entry = Entry(canonicalize_name(doc["info"]["name"]), rank, "pure")
    newest, release, skipped = pick_release(doc)
    entry.notes += skipped
    if newest is None:
        requires_python = doc["info"].get("requires_python")
        entry.cls = "old-python" if not admits(requires_python, Version("3.13")) \
            else "new-python"
        entry.reason = f"no final release supports Python {PYTHON} (newest: {requires_python})"
        return entry
    entry.version = str(newest.version)
    if release is None or newest.uploaded - release.uploaded > STALE_SDIST \
            or release.version.major != newest.version.major:
        entry.requires = _requirements(cache, doc, entry.name, entry.version)
        entry.cls, entry.reason = _wheel_reason(newest.files)
        if release is not None:
            entry.reason += f"; last sdist {release.version} ({release.uploaded})"
        return entry
    if newest.version.is_prerelease:
        entry.notes.append("only pre-releases upstream")
    if release is not newest:
        entry.notes.append(f"newest {newest.version} has no sdist; classified {release.version}")
        entry.version = str(release.version)
    entry.requires = _requirements(cache, doc, entry.name, entry.version)
    sdist = release.sdist
    assert sdist is not None
    if sdist["size"] > MAX_SDIST:
        entry.cls = "too-large"
        entry.reason = f"sdist is {sdist['size'] // 2**20} MB (not inspected; cap 50 MB)"
        return entry
    data = cache.sdist(name, sdist["url"], sdist["filename"], sdist["digests"]["sha256"])
    classify_sdist(entry, read_sdist(data, sdist["filename"]), doc)
    platform_wheels = [f["filename"] for f in release.files
                       if f.get("packagetype") == "bdist_wheel"
                       and not f["filename"].endswith("-any.whl")]
    if entry.cls == "pure" and platform_wheels:
        entry.notes.append("upstream wheels are platform-specific (mypyc or a bundled binary); "
                           "the sdist's default build is pure")
    return entry


def _requirements(cache: Cache, doc: dict[str, Any], name: str, version: str) -> list[str]:
    if doc["info"]["version"] != version:
        pinned = cache.project(name, version)
        doc = pinned if pinned is not None else doc
    return _names(doc["info"].get("requires_dist") or [], follow_markers=True)


def ranking(cache_dir: Path) -> tuple[str, list[str]]:
    path = cache_dir / RANKING_FILE
    if not path.exists():
        raise SystemExit(f"error: {path} is missing (hint: copy {RANKING_FILE} from "
                         "hugovk/top-pypi-packages into the cache)")
    loaded = json.loads(path.read_bytes())
    return loaded["last_update"], [canonicalize_name(r["project"]) for r in loaded["rows"]]


def classify_all(cache: Cache, top: list[str]) -> dict[str, Entry]:
    """The top projects, then everything their runtime and build closures reach."""
    entries: dict[str, Entry] = {}
    asked: set[str] = set()
    wave: list[tuple[str, int | None]] = [(n, i + 1) for i, n in enumerate(top)]
    with ThreadPoolExecutor(WORKERS) as pool:
        while wave:
            asked.update(n for n, _ in wave)
            for entry in pool.map(lambda item: classify(cache, *item), wave):
                entries.setdefault(entry.name, entry)
            wanted = {n for e in entries.values() for n in e.requires + e.build_requires}
            wave = [(n, None) for n in sorted(wanted - asked - entries.keys())]
    return entries


def blockers(entries: dict[str, Entry], name: str) -> list[str]:
    """Projects in NAME's runtime and build closures that the factory cannot build."""
    found: list[str] = []
    stack, seen = [name], {name}
    while stack:
        entry = entries.get(stack.pop())
        if entry is None:
            continue
        for dep in entry.requires + entry.build_requires:
            if dep in seen:
                continue
            seen.add(dep)
            dep_entry = entries.get(dep)
            if dep_entry is not None and not dep_entry.buildable:
                found.append(f"{dep} ({dep_entry.cls})")
            else:  # what an unbuildable project needs is moot: it is not built here
                stack.append(dep)
    return sorted(found)


def _row(entry: Entry, entries: dict[str, Entry]) -> dict[str, Any]:
    row: dict[str, Any] = {"name": entry.name}
    if entry.rank is not None:
        row["rank"] = entry.rank
    if entry.version:
        row["version"] = entry.version
    row["class"] = entry.cls
    if entry.reason:
        row["reason"] = entry.reason
    if entry.backend:
        row["backend"] = entry.backend
    if entry.build_requires:
        row["build_requires"] = entry.build_requires
    if entry.evidence:
        row["evidence"] = entry.evidence
    if entry.buildable:
        blocked = blockers(entries, entry.name)
        if blocked:
            row["closure_unbuildable"] = blocked
    if entry.notes:
        row["notes"] = entry.notes
    return row


def document(entries: dict[str, Entry], top_n: int, ranked_on: str) -> dict[str, Any]:
    ranked = sorted((e for e in entries.values() if e.rank is not None),
                    key=lambda e: e.rank or 0)
    closure = sorted((e for e in entries.values() if e.rank is None), key=lambda e: e.name)
    chosen = [e for e in ranked if e.buildable]
    counts: dict[str, int] = {}
    for entry in ranked:
        counts[entry.cls] = counts.get(entry.cls, 0) + 1
    clean = sum(1 for e in chosen if not blockers(entries, e.name))
    return {
        "catalogue": {
            "description": "The most downloaded PyPI projects, classified for the factory. "
                           "Optional: not the approved set. Generated by "
                           "scripts/catalogue_classify.py; do not edit by hand.",
            "ranking": RANKING_SOURCE, "ranking_date": ranked_on[:10],
            "classified_on": CLASSIFIED_ON, "python": str(PYTHON), "candidates": top_n,
            "chosen": len(chosen), "chosen_with_buildable_closure": clean,
        },
        "counts": dict(sorted(counts.items())),
        "project": [_row(e, entries) for e in chosen],
        "excluded": [_row(e, entries) for e in ranked if not e.buildable],
        "closure": [_row(e, entries) for e in closure],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/catalogue-cache"))
    parser.add_argument("--top", type=int, default=520, help="candidates, by downloads")
    parser.add_argument("--fetch", action="store_true", help="fill the cache from PyPI")
    parser.add_argument("--out", type=Path, default=ROOT / "catalogues" / "top-pypi.toml")
    parser.add_argument("--names", action="store_true",
                        help="print the chosen names of --out, one a line, and stop")
    parser.add_argument("--closure-buildable", action="store_true",
                        help="with --names: only those whose whole closure is buildable here")
    args = parser.parse_args(argv)
    if args.names:
        loaded = tomllib.loads(args.out.read_text())
        print("\n".join(row["name"] for row in loaded["project"]
                        if not (args.closure_buildable and row.get("closure_unbuildable"))))
        return 0
    ranked_on, names = ranking(args.cache)
    cache = Cache(args.cache, args.fetch)
    entries = classify_all(cache, names[: args.top])
    body = tomli_w.dumps(document(entries, args.top, ranked_on))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".toml.part")
    temporary.write_text("# Generated by scripts/catalogue_classify.py: do not edit.\n" + body)
    temporary.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
