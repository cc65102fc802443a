"""Admission: what a wheel must be before the factory attests and signs it.

A wheel is signed only when it is what was approved. The rules, each a refusal
with a one-line reason (``AdmissionError``) when broken:

1. **Approved pin.** The lock has an entry for the record's component and version
   (PEP 440 equal), a valid recipe approves it, and the record's source (file
   name, sha256) and recipe digest are the lock's *current* pin: a wheel built
   before the lock moved (upstream changed the bytes, the recipe changed) is
   never signed as if built from the new pin. The sdist in the cache must still
   hash to the pin.
2. **One name, one version.** The wheel file name, its ``.dist-info`` directory,
   its METADATA (exactly one ``Name`` and one ``Version``) and the sdist's
   PKG-INFO (or ``[project]`` of a git archive) name the lock's project
   (canonical names) and version (PEP 440 equal).
3. **Approved requirements.** Every ``Requires-Dist`` is a valid requirement
   without a direct URL. One that applies on the factory's target environment
   (any of the CPythons it builds with: the lock follows the union) with no extra
   requested must be satisfied by a locked version. One that
   applies only under an extra or a marker that is false on the target is
   allowed when its project has a recipe, or when the sdist's own metadata
   declares the same requirement (the lock entry's ``requires_dist``: PKG-INFO's,
   or an old setuptools sdist's egg-info ``requires.txt`` when PKG-INFO has none): a
   conditional requirement that is in the wheel but not in the source was
   injected by the build and is refused.
4. **Members pip would install, and nothing more.** No empty, absolute,
   drive-lettered, ``..``/``.``/empty-component, backslash, colon or
   control-character names; no duplicates (also after case folding and Unicode
   normalisation, or a file used as a directory); regular files and
   directories only (no symbolic links, devices, FIFOs), none encrypted;
   exactly one ``.dist-info`` (and at most one ``.data``) of this project; a
   RECORD that lists every file once with a sha256-or-stronger hash and size
   that match, and nothing the archive lacks (checked with ``installer``).
   Interpreter start-up hooks are refused unless the recipe says
   ``allow_pth = true``: any ``*.pth`` file, and a top-level ``sitecustomize`` or
   ``usercustomize`` module installed into site-packages (purelib, platlib, or
   ``.data/data/lib/pythonX.Y/site-packages``).
5. **Built here, not copied.** A file of the sdist that is a compiled object or
   an archive (ELF, Mach-O, PE, ``ar``, WebAssembly, LLVM bitcode, zip: by magic
   bytes, and by suffix ``.so .o .a .lib .obj .pyd .dll .dylib .exe .whl .egg
   .jar .zip .pyc .pyo .wasm``), or a tar archive holding one, is refused unless
   a glob of the recipe's ``allow_prebuilt`` matches its path (below the sdist's
   top directory; ``*`` also crosses ``/``). A wheel file whose bytes are such a
   prebuilt file, or a member of such an archive (and not also a plain source
   file), is a copy of it: allowed only through the same allowance. A wheel
   whose payload (names and digests outside ``.dist-info``) is the payload of a
   wheel shipped in the sdist, or whose bytes are a file of the sdist, is
   refused whatever the recipe says: the backend returned a prebuilt artifact.

Every allowance used is returned (``Admission.allowances``: which file, where,
its sha256, which recipe rule) so that the provenance and the SBOM record it.
Archives inside the sdist are looked into one level deep; see
docs/admission.md for what this does not catch.
"""

from __future__ import annotations

import json
import platform
import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import parse_tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from factory._internal.atomic import sha256_file, write_json
from factory.admission.model import (
    DEFAULT_LIMITS,
    Admission,
    AdmissionError,
    Allowance,
    Limits,
    Member,
)
from factory.admission.prebuilt import SdistScan, prebuilt_files, scan_sdist, sdist_allowances
from factory.admission.wheel import WheelContents, read_wheel, startup_hooks
from factory.config import Settings
from factory.errors import LockError, RecipeError
from factory.lock import Lock, LockedComponent, load_lock, marker_environment, marker_environments
from factory.recipes import Recipe, check_recipes
from factory.upstream.cache import cache_path, is_cached, read_member, read_metadata

if TYPE_CHECKING:  # the gate reads a build's record; the builds call the gate on sources
    from factory.build.record import BuildRecord

__all__ = ["Admission", "AdmissionError", "Allowance", "Approvals", "Limits", "admit",
           "admit_sdist"]


@dataclass(frozen=True)
class Approvals:
    """The approved state the gate compares against: valid recipes, the lock."""

    recipes: dict[str, Recipe]
    lock: Lock
    env: dict[str, str]  # the builder image's (its python_version names its CPython)
    problem: str | None = None  # set when nothing can be admitted (no lock, no recipes)
    # one per CPython the factory builds with; empty: ``env`` alone
    envs: tuple[dict[str, str], ...] = ()

    @classmethod
    def load(cls, settings: Settings) -> Approvals:
        """Never raises: a missing lock or recipes directory refuses every wheel."""
        env, envs = marker_environment(settings), marker_environments(settings)
        try:
            recipes, _errors = check_recipes(settings)  # one broken recipe refuses only its own
            lock = load_lock(settings)
        except (LockError, RecipeError) as exc:
            return cls({}, Lock(), env, f"nothing is approved: {exc.message}", envs)
        return cls(recipes, lock, env, envs=envs)

    @property
    def targets(self) -> tuple[dict[str, str], ...]:
        """The marker environments a requirement is judged under (it applies when it
        applies under one of them)."""
        return self.envs or (self.env,)


def admit(settings: Settings, approvals: Approvals, record: BuildRecord, wheel: Path,
          limits: Limits = DEFAULT_LIMITS) -> Admission:
    """Check ``wheel`` (built as ``record`` says) against what was approved."""
    entry, recipe = _approved_pin(approvals, record)
    sdist = _verified_sdist(settings, entry)
    _check_sdist_metadata(sdist, entry)
    _check_filename(wheel.name, entry)
    contents = read_wheel(wheel, limits)
    _check_metadata(wheel.name, contents, entry)
    _check_tags(wheel.name, contents, built_for(settings, record, approvals))
    check_requirements(contents.requires_dist, entry, approvals)
    hooks = startup_hooks(contents, recipe)
    prebuilt = prebuilt_files(scan_sdist(sdist, limits), contents, recipe, wheel)
    return Admission(tuple(hooks + prebuilt))


def admit_sdist(sdist: Path, recipe: Recipe, limits: Limits = DEFAULT_LIMITS,
                ) -> tuple[Allowance, ...]:
    """The sdist half of rule 5 alone, for build planning: refuse a source that ships
    prebuilt files its recipe does not allow before a build is spent on it.

    Runs on every fetch and build, so what a cached sdist ships is remembered
    beside it (its bytes never change). The memo only saves a build: signing
    scans the sdist again in full (``admit``).
    """
    memo = sdist.parent / ".prebuilt.json"
    found = _remembered(memo) if is_cached(sdist) else None
    if found is None:
        scan = scan_sdist(sdist, limits)
        found = {p: (what, scan.files[p].sha256) for p, what in scan.prebuilt.items()}
        if is_cached(sdist):
            write_json(memo, {p: list(v) for p, v in found.items()})
    scan = SdistScan(files={p: Member(p, sha, 0, what) for p, (what, sha) in found.items()},
                     prebuilt={p: what for p, (what, _) in found.items()})
    return tuple(sdist_allowances(scan, recipe))


def _remembered(memo: Path) -> dict[str, tuple[str, str]] | None:
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
        return {str(p): (str(v[0]), str(v[1])) for p, v in data.items()}
    except (OSError, ValueError, TypeError, AttributeError, IndexError, KeyError):
        return None


# -- 1. the approved pin ---------------------------------------------------------------------
def _approved_pin(approvals: Approvals, record: BuildRecord) -> tuple[LockedComponent, Recipe]:
    if approvals.problem:
        raise AdmissionError(approvals.problem, "run `factory lock` and `factory recipes check`")
    key = canonicalize_name(record.component)
    entry = _locked(approvals.lock, key, record.version)
    if entry is None:
        raise AdmissionError(f"{key} {record.version} is not in recipes.lock: it is not approved",
                             "approve it (recipes/ and `factory lock`) or delete the stale build")
    recipe = approvals.recipes.get(key)
    if recipe is None:
        raise AdmissionError(f"no valid recipe approves {key}",
                             "run `factory recipes check` and fix or restore its recipe")
    pin, src = entry.sdist, record.source
    if (src.filename, src.sha256) != (pin.filename, pin.sha256) or \
            canonicalize_name(src.name) != key or not _same_version(src.version, entry.version):
        raise AdmissionError(
            f"{record.wheel_filename} was built from {src.filename} (sha256 {src.sha256[:16]}…) "
            f"but the lock now pins {pin.filename} (sha256 {pin.sha256[:16]}…)",
            "the old wheel is never signed for the new pin: rebuild it (`factory build`)")
    if record.recipe_digest != entry.recipe_digest:
        raise AdmissionError(
            f"{record.wheel_filename} was built under recipe digest {record.recipe_digest}, "
            f"the lock approves {entry.recipe_digest}",
            "the recipe changed since this build: rebuild it")
    if recipe.digest != entry.recipe_digest:  # its allowances would not be the locked ones
        raise AdmissionError(f"{recipe.path.name} changed since it was locked",
                             "run `factory lock`, then build and publish again")
    return entry, recipe


def _locked(lock: Lock, key: str, version: str) -> LockedComponent | None:
    return next((c for c in lock.components
                 if c.key == key and _same_version(c.version, version)), None)


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def _verified_sdist(settings: Settings, entry: LockedComponent) -> Path:
    path = cache_path(settings, entry.sdist.sha256, entry.sdist.filename)
    if not path.is_file():
        raise AdmissionError(f"the locked sdist {entry.sdist.filename} is not in the source "
                             "cache", "run `factory fetch` and publish again")
    actual = sha256_file(path)
    if actual != entry.sdist.sha256:
        raise AdmissionError(f"the cached {entry.sdist.filename} has sha256 {actual[:16]}…, "
                             f"not the locked {entry.sdist.sha256[:16]}…",
                             "delete it from the cache and run `factory fetch`")
    return path


# -- 2. one name, one version ------------------------------------------------------------------
def _check_sdist_metadata(sdist: Path, entry: LockedComponent) -> None:
    name, version = _sdist_identity(sdist)
    if canonicalize_name(name) != entry.key:
        raise AdmissionError(f"{sdist.name}: its PKG-INFO names project {name!r}, but the "
                             f"lock approved {entry.key}",
                             "the sdist is not the approved project; remove the pin")
    # A git archive's [project] may leave the version dynamic: the tag pinned it.
    if version and not _same_version(version, entry.version):
        raise AdmissionError(f"{sdist.name}: its PKG-INFO says version {version!r}, but "
                             f"the lock approved {entry.version}",
                             "the sdist is not the approved release; remove the pin")


def _sdist_identity(sdist: Path) -> tuple[str, str]:
    """(Name, Version) of PKG-INFO (each exactly once), else of a git archive's [project]."""
    try:
        pkg_info = read_member(sdist, "PKG-INFO")
        meta = read_metadata(sdist) if pkg_info is None else None
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise AdmissionError(f"{sdist.name}: cannot read its metadata ({exc})") from None
    if pkg_info is not None:
        raw, unparsed = parse_email(pkg_info)
        if "name" in unparsed or "version" in unparsed:
            raise AdmissionError(f"{sdist.name}: PKG-INFO has a duplicate or invalid Name or "
                                 "Version field")
        name, version = raw.get("name", ""), raw.get("version", "")
        if not version:
            raise AdmissionError(f"{sdist.name}: PKG-INFO names no version")
    else:
        name, version = (meta.name, meta.version) if meta else ("", "")
    if not name:
        raise AdmissionError(f"{sdist.name} names no project (no PKG-INFO, no [project] name)",
                             "an sdist must say what it is; report it upstream")
    return name, version


def _check_filename(filename: str, entry: LockedComponent) -> None:
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise AdmissionError(f"{filename} is not a valid wheel file name ({exc})") from None
    _check_claim(filename, "its file name", str(name), str(version), entry)


def _check_metadata(filename: str, contents: WheelContents, entry: LockedComponent) -> None:
    dist_info = contents.dist_info.removesuffix(".dist-info").rsplit("-", 1)
    if len(dist_info) != 2:
        raise AdmissionError(f"{filename}: {contents.dist_info} does not name a version")
    _check_claim(filename, f"its {contents.dist_info}", dist_info[0], dist_info[1], entry)
    _check_claim(filename, "its METADATA", contents.metadata.get("name") or "",
                 contents.metadata.get("version") or "", entry)


def _check_claim(filename: str, what: str, name: str, version: str,
                 entry: LockedComponent) -> None:
    if canonicalize_name(name) != entry.key:
        raise AdmissionError(f"{filename}: {what} names project {name!r}, but the lock "
                             f"approved {entry.key}")
    if not _same_version(version, entry.version):
        raise AdmissionError(f"{filename}: {what} says version {version!r}, but the lock "
                             f"approved {entry.version}")


def built_for(settings: Settings, record: BuildRecord, approvals: Approvals) -> str:
    """The CPython (``3.13``) the build ran: the interpreter the host recorded it mounted,
    when it is one [build] interpreters configures; else the builder image's own."""
    recorded = record.builder_settings.get("interpreter")
    version = recorded.get("version") if isinstance(recorded, dict) else None
    line = ".".join(version.split(".")[:2]) if isinstance(version, str) else ""
    # a built interpreter is named with its tree (a record of the image's own python3
    # has none): a tag and version alone do not make a build another interpreter's
    if line in settings.build_interpreters and isinstance(recorded, dict) \
            and recorded.get("tag") == "cp" + line.replace(".", "") \
            and (line == approvals.env["python_version"]
                 or isinstance(recorded.get("tree_sha256"), str)):
        return line
    return approvals.env["python_version"]


# The builder's platform: a Linux container of this machine's architecture (glibc), so a
# wheel is for any platform, plain Linux or a manylinux policy of that architecture.
_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                       platform.machine().lower())
_PLATFORM = re.compile(r"any|(?:linux|manylinux1|manylinux2010|manylinux2014|"
                       rf"manylinux_[0-9]{{1,3}}_[0-9]{{1,3}})_{re.escape(_MACHINE)}")


def _check_tags(filename: str, contents: WheelContents, python: str) -> None:
    """The file name's tags are the WHEEL file's, and name no CPython newer than the
    builder's (``python``, e.g. "3.11"), nor a version-specific ABI but the builder's."""
    builder = tuple(int(part) for part in python.split(".")[:2])
    ours = "cp" + "".join(map(str, builder))
    try:
        named = set(parse_wheel_filename(filename)[3])
        listed = {t for line in contents.tags for t in parse_tag(line)}
    except ValueError as exc:
        raise AdmissionError(f"{filename}: its WHEEL file has an invalid Tag ({exc})") from None
    if named != listed:
        raise AdmissionError(f"{filename}: its file name's tags are not the Tag lines of its "
                             f"WHEEL file ({', '.join(sorted(map(str, listed))) or 'none'})",
                             "an index serves a wheel by its file name's tags; the build "
                             "produced a wheel that says two things")
    for tag in named:
        if not _PLATFORM.fullmatch(tag.platform):
            raise AdmissionError(f"{filename}: tag {tag} names a platform the builder "
                                 f"(Linux {_MACHINE}) could not have built it for",
                                 "the build claims a tag it could not have checked")
        if tag.abi not in ("none", "abi3") and (tag.interpreter, tag.abi) != (ours, ours):
            raise AdmissionError(f"{filename}: tag {tag} names an ABI the builder "
                                 f"({ours}) could not have built it for",
                                 "the build claims a tag it could not have checked")
        version = tag.interpreter[2:]
        if not tag.interpreter.startswith("cp") or not version.isdigit():
            continue
        if (int(version[0]), int(version[1:] or 0)) > builder:
            raise AdmissionError(f"{filename}: tag {tag} names a Python the builder "
                                 f"({ours}) could not have built it for",
                                 "the build claims a tag it could not have checked")


# -- 3. requirements ------------------------------------------------------------------------
def check_requirements(lines: list[str], entry: LockedComponent, approvals: Approvals) -> None:
    """Refuse a Requires-Dist that is not approved (see the module's rule 3)."""
    declared = {_requirement_key(r) for r in _parse_all(entry.requires_dist)}
    for line in lines:
        req = _parse(line, f"{entry.key} {entry.version}: Requires-Dist {line!r}")
        key = canonicalize_name(req.name)
        if req.url:
            raise AdmissionError(f"{entry.key} {entry.version} requires {line!r}, a direct URL "
                                 "outside the index", "dependencies come from the index only")
        if any(_applies(req, env, line) for env in approvals.targets):
            if approvals.lock.find(key, req.specifier) is None:
                raise AdmissionError(
                    f"{entry.key} {entry.version} requires {req}, which no locked version "
                    "satisfies: it is not an approved component",
                    f"approve it (recipes/{key}.toml) and run `factory lock`")
            _check_extras(req, entry, approvals, set())
        elif key not in approvals.recipes and _requirement_key(req) not in declared:
            raise AdmissionError(
                f"{entry.key} {entry.version} requires {req}: neither approved nor declared by "
                "its sdist's metadata (injected by the build)",
                f"approve {key} (recipes/{key}.toml) if the requirement is legitimate")


def _check_extras(req: Requirement, entry: LockedComponent, approvals: Approvals,
                  seen: set[tuple[str, str]]) -> None:
    """``dep[extra]`` installs what dep's extra requires: each of those must be locked
    too (and their own extras, once each), or an install from the index fails."""
    dep = approvals.lock.find(req.name, req.specifier)
    for extra in sorted(req.extras):
        if dep is None or (dep.key, extra) in seen:
            continue
        seen.add((dep.key, extra))
        for line in dep.requires_dist:
            needed = _parse(line, f"{dep.key} {dep.version}: Requires-Dist {line!r}")
            if not any(_applies_with(needed, {**env, "extra": extra}, line)
                       for env in approvals.targets):
                continue
            if approvals.lock.find(needed.name, needed.specifier) is None:
                raise AdmissionError(
                    f"{entry.key} {entry.version} requires {req}, and {dep.key}'s extra "
                    f"{extra!r} needs {needed}, which no locked version satisfies",
                    f"approve {canonicalize_name(needed.name)} and run `factory lock`, or "
                    "drop the extra")
            _check_extras(needed, entry, approvals, seen)


def _applies_with(req: Requirement, env: dict[str, str], line: str) -> bool:
    """``req``'s marker on ``env``; one it cannot evaluate is a refusal, never a crash
    (KeyError: a name no environment has)."""
    try:
        return req.marker is None or bool(req.marker.evaluate(env))
    except (ValueError, KeyError, InvalidVersion) as exc:
        raise AdmissionError(f"Requires-Dist {line!r} has a marker that cannot be "
                             f"evaluated ({exc})") from None


def _parse(line: str, what: str) -> Requirement:
    try:
        return Requirement(line)
    except InvalidRequirement as exc:
        raise AdmissionError(f"{what} is not a valid requirement ({exc})") from None


def _parse_all(lines: tuple[str, ...]) -> Iterator[Requirement]:
    for line in lines:
        try:
            yield Requirement(line)
        except InvalidRequirement:
            continue  # the lock read it from the sdist; an invalid line declares nothing


def _applies(req: Requirement, env: dict[str, str], line: str) -> bool:
    """True when the requirement is installed on the target with no extra requested."""
    return _applies_with(req, {**env, "extra": ""}, line)


def _requirement_key(req: Requirement) -> tuple[str, tuple[str, ...], str, str, str]:
    """Equal for requirements that mean the same (spacing, quotes, order aside)."""
    specs = ",".join(sorted(str(s) for s in req.specifier))
    return (canonicalize_name(req.name), tuple(sorted(canonicalize_name(e) for e in req.extras)),
            specs, str(req.marker or ""), req.url or "")

