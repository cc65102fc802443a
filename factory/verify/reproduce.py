"""Reproducibility: rebuild a published wheel from its recorded inputs, compare digests.

The build record published with the wheel (``W.build.json``, the data the SLSA
provenance was written from) names every input by digest: the sdist, the
build-tool wheels, the front-end kit's sdists, the builder image ID, the
patches. Each is found again by that digest (source cache, the index's
sources/ and files/, the wheels directory), checked, and given to the same
builder (factory.build.job) in a scratch state directory, so the
factory's own wheels and records are never touched. The result is compared
byte for byte; when it differs, file by file (equivalence.compare_wheels).

The record comes from the index tree, which is the attacker's (threat model,
section 6): its shape is checked before anything is read or built, every name in
it that becomes a path must stay in the directory it is looked up in, and each
input is copied into the scratch directory as it is hashed.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from docker.errors import DockerException, ImageNotFound
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

from factory._internal.plainfile import NotPlain, open_plain, read_plain
from factory.build import interpreters, patchelf, repair
from factory.build import job as builder
from factory.build.debian_source import SourcePin
from factory.build.engine import connect
from factory.build.env import Kit, KitPart, import_root
from factory.build.image import ImageRef
from factory.build.record import BuildRecord, InstalledTool, SystemPackage
from factory.config import REPAIR_MODES, Settings
from factory.errors import BuildError, EngineError, VerificationError, one_line
from factory.upstream.archive import apply_patches, extract
from factory.upstream.cache import Sdist
from factory.upstream.listing import (
    MAX_FILE_BYTES,
    is_plain_file_name,
    is_project_name,
    is_sha256,
)
from factory.verify.equivalence import compare_wheels
from factory.verify.targets import PIN, TargetError
from factory.verify.view import IndexView, Published, sidecar

_RECORD_LIMIT = 16 << 20  # bytes of a build record (a few KiB when written)
_CHUNK = 1 << 20
_PATCH_PATH = 1024  # characters of a patch's relative path


class MalformedBuildRecord(VerificationError):
    """A published build record `verify --rebuild` does not take: a field not in the shape
    this factory's builder writes, or a name that would lead out of the directory it is
    looked up in. The index tree is the attacker's (threat model, section 6)."""

    default_hint = ("the build record was not written by this factory; rebuild from a "
                    "trusted copy of the index")


@dataclass(frozen=True)
class _Input:
    """One file the record names by its digest: a plain file name (a patch's: a relative
    path of plain names, looked up under the recipes' patches directory)."""

    filename: str
    sha256: str


@dataclass(frozen=True)
class _KitSpec:
    name: str
    version: str
    sdist: str
    sha256: str


@dataclass(frozen=True)
class _Recorded:
    """What a rebuild takes from a build record, each field checked for its shape."""

    record: BuildRecord
    patches: tuple[_Input, ...]
    tools: tuple[_Input, ...]  # the build environment's wheels (kit and repair venv apart)
    frontend: tuple[_KitSpec, ...]
    repair_mode: str
    repair: dict[str, Any]
    repair_tools: tuple[_Input, ...]
    upstream_wheels: tuple[str, ...]
    image_origin: str


@dataclass
class Rebuild:
    filename: str
    recorded_sha256: str
    rebuilt_sha256: str | None
    reproducible: bool
    message: str
    differences: list[str] = field(default_factory=list)
    log: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rebuild_and_compare(settings: Settings, spec: str, *,
                        index_dir: Path | None = None) -> list[Rebuild]:
    """Rebuild every published wheel of ``spec`` (name==version; a version has one wheel
    per interpreter when it is native), or the one published wheel ``spec`` names by
    its file name, and compare it."""
    index = IndexView(index_dir or settings.index_dir)
    if spec.endswith(".whl") and "/" not in spec:
        try:
            name = str(parse_wheel_filename(spec)[0])
        except (InvalidWheelFilename, InvalidVersion):
            raise TargetError(f"{spec!r} is not a wheel file name") from None
        one = index.by_filename(name, spec)
        if one is None:
            raise TargetError(f"the index publishes no file {spec}")
        return [_rebuild_one(settings, index, one)]
    match = PIN.match(spec)
    if not match:
        raise TargetError(f"{spec!r} is not NAME==VERSION or a published wheel's file name")
    published = index.by_version(*match.groups())
    if not published:
        raise TargetError(f"the index publishes no file of {spec}")
    return [_rebuild_one(settings, index, item) for item in published]


def _rebuild_one(settings: Settings, index: IndexView, item: Published) -> Rebuild:
    path = sidecar(item.path, "build")
    try:  # as evidence is read: a regular file, never through a link, bounded
        raw = read_plain(path, _RECORD_LIMIT)
    except NotPlain as exc:
        raise VerificationError(f"{path.name} cannot be read ({exc.why})") from None
    if raw is None:
        raise VerificationError(f"{item.filename}: no build record beside it ({path.name})")
    record = _parse(path.name, raw)
    if record.wheel_sha256 != item.entry.sha256 or record.wheel_filename != item.filename:
        raise VerificationError(f"{item.filename}: its build record describes another file")
    recorded = _checked(path.name, record)  # every field a rebuild uses, before any work
    scratch = Path(tempfile.mkdtemp(prefix="factory-rebuild-"))
    try:
        inputs = _inputs(settings, index, recorded, scratch)
        # A scratch state directory: the rebuild never replaces the factory's wheels.
        again = dataclasses.replace(settings, state_dir=scratch / "state",
                                    build_repair=recorded.repair_mode)
        rebuilt = builder.build(again, inputs)
        wheel = scratch / "state" / "wheels" / rebuilt.wheel_filename
        log = settings.logs_dir / rebuilt.log_filename
        log.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(scratch / "state" / "logs" / rebuilt.log_filename, log)
        result = Rebuild(item.filename, record.wheel_sha256, rebuilt.wheel_sha256,
                         rebuilt.wheel_sha256 == record.wheel_sha256, "", log=str(log))
        if result.reproducible:
            result.message = f"rebuilt bit for bit: sha256 {record.wheel_sha256[:16]}…"
        else:
            _, result.differences = compare_wheels(item.path, wheel)
            result.message = (f"rebuilt sha256 {rebuilt.wheel_sha256[:16]}… differs from the "
                              f"published {record.wheel_sha256[:16]}…: "
                              f"{len(result.differences)} file(s) differ")
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _parse(name: str, raw: bytes) -> BuildRecord:
    """The record in ``raw`` (the file ``name``) as this factory's builder writes it, or
    MalformedBuildRecord naming the field that is not."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError too
        raise MalformedBuildRecord(f"{name} is not UTF-8 JSON") from None
    # The file's source holds upstream's provenance digest, not the upload time (to_dict).
    _fields(name, "", data, BuildRecord, frozenset({"upstream_provenance_sha256"}))
    _fields(name, "source.", data["source"], Sdist, frozenset({"upload_time"}),
            frozenset({"upstream_provenance_sha256"}))
    for key, kind in (("build_tools", InstalledTool), ("system_packages", SystemPackage),
                      ("image_packages", SystemPackage)):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise MalformedBuildRecord(f"{name}: its {key} is not a list")
        for number, entry in enumerate(items):
            _fields(name, f"{key}[{number}].", entry, kind)
    try:
        return BuildRecord.from_dict(data)
    except ValueError as exc:  # the warnings (MalformedRecord): its message names them
        raise MalformedBuildRecord(f"{name}: {one_line(str(exc), 200)}") from None


def _fields(name: str, where: str, value: object, kind: type,
            absent: frozenset[str] = frozenset(), extra: frozenset[str] = frozenset()) -> None:
    """``value`` is an object with the fields of the dataclass ``kind`` (those with no
    default present), none else (but ``extra``; ``absent``: fields it must not hold)."""
    if not isinstance(value, dict):
        raise MalformedBuildRecord(f"{name}: {where.rstrip('.') or 'the record'} is not an "
                                   "object")
    known = {f.name for f in dataclasses.fields(kind)} - absent
    required = {f.name for f in dataclasses.fields(kind)
                if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING} - absent
    for key in sorted(required - value.keys(), key=str):
        raise MalformedBuildRecord(f"{name}: it has no field {where}{key}")
    for key in sorted(value.keys() - known - extra, key=str):
        raise MalformedBuildRecord(f"{name}: it has an unknown field "
                                   f"{where}{one_line(repr(key), 80)}")


_Bad = Callable[[str, str], MalformedBuildRecord]  # (field, why) -> the error to raise


def _checked(name: str, record: BuildRecord) -> _Recorded:
    """The fields a rebuild uses, each in its shape: text where text is meant, digests
    of 64 hex digits, and every name that becomes a path a plain file name (a patch's:
    plain names under the patches directory), so nothing the record names is looked up
    outside the directory it belongs in."""
    def bad(field_name: str, why: str) -> MalformedBuildRecord:
        return MalformedBuildRecord(f"{name}: its {field_name} {why}")

    _identity(bad, record)
    if not isinstance(record.patches, list):
        raise bad("patches", "is not a list")
    patches = tuple(_patch(bad, number, patch) for number, patch in enumerate(record.patches))
    described = record.builder_settings
    if not isinstance(described, dict):
        raise bad("builder_settings", "is not an object")
    frontend = _frontend(bad, described.get("frontend") or [])
    mode, repaired, repair_tools = _repair(bad, described.get("repair") or {})
    upstream = described.get("upstream_wheels") or []
    if not (isinstance(upstream, list) and all(isinstance(w, str) for w in upstream)):
        raise bad("builder_settings.upstream_wheels", "is not a list of texts")
    if described.get("interpreter") is not None and not isinstance(
            described["interpreter"], dict):
        raise bad("builder_settings.interpreter", "is not an object")
    origin = described.get("image_origin") or "debootstrap"
    if not isinstance(origin, str):
        raise bad("builder_settings.image_origin", "is not text")
    tools = _build_env(bad, record, frontend)
    for field_name, wheels in (("build_tools", tools),
                               ("builder_settings.repair.tools", repair_tools)):
        projects = Counter(_project(w.filename) for w in wheels)
        twice = sorted(p for p, count in projects.items() if count > 1)
        if twice:
            raise bad(field_name, f"name two wheels of {twice[0]} for one environment")
    return _Recorded(record, patches, tools, frontend, mode, repaired, repair_tools,
                     tuple(upstream), origin)


def _identity(bad: _Bad, record: BuildRecord) -> None:
    """The record's texts, its source and its build tools, in their shapes."""
    if not is_project_name(record.component):
        raise bad("component", "is not a project name")
    for key in ("version", "recipe_name", "recipe_digest", "builder_image",
                "builder_image_id"):
        if not isinstance(getattr(record, key), str):
            raise bad(key, "is not text")
    source = record.source
    for key in ("name", "version", "url"):
        if not isinstance(getattr(source, key), str):
            raise bad(f"source.{key}", "is not text")
    if not isinstance(source.size, int) or isinstance(source.size, bool) or source.size < 0:
        raise bad("source.size", "is not a size")
    _input(bad, "source", source.filename, source.sha256)
    for number, tool in enumerate(record.build_tools):
        for key in ("name", "version"):
            if not isinstance(getattr(tool, key), str):
                raise bad(f"build_tools[{number}].{key}", "is not text")
        _input(bad, f"build_tools[{number}]", tool.filename, tool.sha256)


def _repair(bad: _Bad, repaired: object) -> tuple[str, dict[str, Any], tuple[_Input, ...]]:
    """The recorded repair: its mode, the entry itself (for the patchelf), its tools."""
    if not isinstance(repaired, dict):
        raise bad("builder_settings.repair", "is not an object")
    mode = repaired.get("tool") or "none"
    if mode not in REPAIR_MODES:
        raise bad("builder_settings.repair.tool", f"is not one of {', '.join(REPAIR_MODES)}")
    listed = repaired.get("tools", [])
    if not isinstance(listed, list):
        raise bad("builder_settings.repair.tools", "is not a list")
    if repaired.get("patchelf_build") is not None and not isinstance(
            repaired["patchelf_build"], dict):
        raise bad("builder_settings.repair.patchelf_build", "is not an object")
    tools = tuple(_wheel(bad, f"builder_settings.repair.tools[{number}]", tool)
                  for number, tool in enumerate(listed))
    return str(mode), repaired, tools


def _build_env(bad: _Bad, record: BuildRecord,
               frontend: tuple[_KitSpec, ...]) -> tuple[_Input, ...]:
    """The wheels of the build environment: the record's build tools without the kit's
    sdists and without the repair tools, which sat in their own venv (taken out once
    each: a wheel may have been in both)."""
    kit_files = {part.sdist for part in frontend}
    build_env = Counter(repair.build_env_shas(record))  # after _repair checked its tools
    tools = []
    for number, tool in enumerate(record.build_tools):
        if tool.filename not in kit_files and build_env[tool.sha256] > 0:
            build_env[tool.sha256] -= 1
            tools.append(_wheel(bad, f"build_tools[{number}]",
                                {"filename": tool.filename, "sha256": tool.sha256}))
    return tuple(tools)


def _input(bad: _Bad, field_name: str, filename: object, sha256: object) -> _Input:
    if not is_plain_file_name(filename):
        raise bad(f"{field_name} file name", f"{one_line(repr(filename), 80)} is not a plain "
                                             "file name")
    if not is_sha256(sha256):
        raise bad(f"{field_name} sha256", "is not 64 hex digits")
    return _Input(str(filename), str(sha256))


def _wheel(bad: _Bad, field_name: str, entry: object) -> _Input:
    """A wheel of a build environment: a plain name that parses as a wheel's."""
    if not isinstance(entry, dict):
        raise bad(field_name, "is not an object")
    found = _input(bad, field_name, entry.get("filename"), entry.get("sha256"))
    try:
        parse_wheel_filename(found.filename)
    except (InvalidWheelFilename, InvalidVersion):
        raise bad(f"{field_name} file name",
                  f"{one_line(repr(found.filename), 80)} is not a wheel's") from None
    return found


def _patch(bad: _Bad, number: int, patch: object) -> _Input:
    where = f"patches[{number}]"
    if not (isinstance(patch, dict) and all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in patch.items())):
        raise bad(where, "is not an object of texts")
    path = patch.get("path")
    if not (isinstance(path, str) and 0 < len(path) <= _PATCH_PATH
            and all(is_plain_file_name(part) for part in path.split("/"))):
        raise bad(f"{where}.path", f"{one_line(repr(path), 80)} is not a relative path "
                                   "of plain names")
    if not is_sha256(patch.get("sha256")):
        raise bad(f"{where}.sha256", "is not 64 hex digits")
    return _Input(path, str(patch["sha256"]))


def _frontend(bad: _Bad, parts: object) -> tuple[_KitSpec, ...]:
    if not isinstance(parts, list):
        raise bad("builder_settings.frontend", "is not a list")
    found = []
    for number, part in enumerate(parts):
        where = f"builder_settings.frontend[{number}]"
        if not isinstance(part, dict):
            raise bad(where, "is not an object")
        if not is_plain_file_name(part.get("name")):
            raise bad(f"{where}.name", f"{one_line(repr(part.get('name')), 80)} is not a "
                                       "plain file name")
        if not isinstance(part.get("version"), str):
            raise bad(f"{where}.version", "is not text")
        sdist = _input(bad, where, part.get("sdist"), part.get("sha256"))
        found.append(_KitSpec(str(part["name"]), str(part["version"]), sdist.filename,
                              sdist.sha256))
    names = Counter(part.name for part in found)
    if any(count > 1 for count in names.values()):
        raise bad("builder_settings.frontend", "names one library twice")
    return tuple(found)


def _project(filename: str) -> str:
    """The directory of the index's files/ a wheel is published in."""
    return filename.split("-", 1)[0].replace("_", "-").lower()


def _inputs(settings: Settings, index: IndexView, recorded: _Recorded,
            scratch: Path) -> builder.BuildInputs:
    record = recorded.record
    src = record.source
    found = scratch / "inputs"  # each input is read once, into here, and used from here
    cache = settings.sources_dir / "sha256"
    sources = index.root / "sources"
    sdist = _find(src.filename, src.sha256, [(cache, f"{src.sha256}/{src.filename}"),
                                             (sources, f"{record.component}/{src.filename}")],
                  found)
    patches_dir = settings.recipes_dir / "patches"
    patch_files = [_find(p.filename, p.sha256, [
        (patches_dir, p.filename), (patches_dir, f"{record.component}/{p.filename}")], found)
        for p in recorded.patches]
    tools = tuple(_tool_wheel(settings, index, t, found) for t in recorded.tools)
    repair_tools = tuple(_tool_wheel(settings, index, t, found) for t in recorded.repair_tools)
    kit_files = [_find(part.sdist, part.sha256, [(cache, f"{part.sha256}/{part.sdist}"),
                                                 (sources, f"{part.name}/{part.sdist}")], found)
                 for part in recorded.frontend]
    # Every input is found and checked before the engine is asked for the image.
    tree = extract(sdist, scratch / "tree")
    if patch_files:
        apply_patches(tree, patch_files)
    kit = _kit(recorded.frontend, kit_files, scratch)
    image = _image(record, recorded.image_origin)
    return builder.BuildInputs(
        name=record.component, version=record.version, sdist=sdist, source=src, tree=tree,
        tools=tools, kit=kit, image=image,
        repair_tools=repair_tools, patchelf=_patchelf(settings, image, recorded.repair),
        recipe_name=record.recipe_name, recipe_digest=record.recipe_digest,
        patches=tuple(dict(p) for p in record.patches),
        upstream_wheels=recorded.upstream_wheels,
        interpreter=_interpreter(settings, record),
    )


def _interpreter(settings: Settings, record: BuildRecord) -> interpreters.Interpreter | None:
    """The factory-built CPython the record's build ran (kept, with the recorded tree
    digest), or None for the image's own python3."""
    described = record.builder_settings.get("interpreter")
    if not isinstance(described, dict) or "tree_sha256" not in described:
        return None
    return interpreters.find_recorded(settings, described)


def _patchelf(settings: Settings, image: ImageRef,
              repaired: dict[str, Any]) -> patchelf.Patchelf | None:
    """The patchelf the record's repair had (built again from the same verified source
    in the same image when it is not kept), checked by digest; None when it had none."""
    built = repaired.get("patchelf_build")
    if not isinstance(built, dict):
        return None
    source = built.get("source")
    if not isinstance(source, dict):
        source = {}
    pin = SourcePin(str(source.get("package")), str(source.get("version")),
                    str(source.get("suite")))
    found = patchelf.for_image(settings, image, pin)
    if found.sha256 != built.get("sha256") or found.source.get("sha256") != source.get("sha256"):
        raise BuildError(f"cannot rebuild: the patchelf built now (sha256 {found.sha256[:16]}…) "
                         f"is not the one recorded ({str(built.get('sha256'))[:16]}…)",
                         "rebuild on the builder image the record names")
    return found


def _find(filename: str, sha256: str, candidates: list[tuple[Path, str]],
          into: Path) -> Path:
    """The recorded input ``filename`` of ``sha256``, from the first candidate (a root
    directory, and a path under it) holding those bytes, copied into ``into`` while it
    is hashed: the rebuild uses the bytes that were checked, not a file that could be
    swapped after. A candidate is read only as a regular file (a FIFO or device is
    not opened), never past its size when opened (a /proc file), never larger than an
    sdist may be, and never through a link out of its root: that is refused."""
    refused = []
    for root, relative in candidates:
        path = root / relative
        try:
            target = path.resolve()
            inside = target.is_relative_to(root.resolve())
        except (OSError, RuntimeError) as exc:  # a link loop
            refused.append(f"{path}: {exc}")
            continue
        if not inside:
            raise MalformedBuildRecord(
                f"recorded input {filename}: {path} leads outside {root} through a link",
                "rebuild from a trusted copy of the index, without links leading out")
        copy = into / sha256 / PurePosixPath(relative).name
        try:
            if _copied(target, sha256, copy):
                return copy
        except OSError as exc:
            refused.append(f"{path}: {exc.strerror or exc}")
    why = f" ({one_line(refused[0], 200)})" if refused else ""
    raise BuildError(f"cannot rebuild: recorded input {filename} (sha256 {sha256[:16]}…) is "
                     f"not available{why}", "fetch it again (`factory fetch`) or restore the "
                                           "source cache; a rebuild needs the very same inputs")


def _copied(source: Path, sha256: str, copy: Path) -> bool:
    """Whether the regular file ``source`` holds the bytes of ``sha256``; if so they are
    now at ``copy``. False when there is no such file; OSError when it is not one to read."""
    try:
        handle = open_plain(source)  # no link, no blocking open of a FIFO
    except FileNotFoundError:
        return False
    digest, size = hashlib.sha256(), 0
    copy.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=copy.parent, prefix=".part-")
    try:
        with handle, os.fdopen(fd, "wb") as out:
            limit = os.fstat(handle.fileno()).st_size
            if limit > MAX_FILE_BYTES:
                raise OSError(errno.EFBIG, f"larger than {MAX_FILE_BYTES} bytes")
            while block := handle.read(min(_CHUNK, limit - size + 1)):
                size += len(block)
                if size > limit:
                    raise OSError(errno.EFBIG, f"more bytes than its size ({limit})")
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != sha256:
            return False
        # mkstemp's 0600 would keep the build container's user from reading a wheel
        # linked into its wheelhouse: the mode a file written here has
        os.chmod(part, 0o644)
        os.replace(part, copy)
        return True
    finally:
        Path(part).unlink(missing_ok=True)


def _tool_wheel(settings: Settings, index: IndexView, tool: _Input, into: Path) -> Path:
    return _find(tool.filename, tool.sha256, [
        (settings.wheels_dir, tool.filename),
        (index.root / "files", f"{_project(tool.filename)}/{tool.filename}")], into)


def _kit(frontend: tuple[_KitSpec, ...], sdists: list[Path], scratch: Path) -> Kit:
    parts = []
    for part, sdist in zip(frontend, sdists, strict=True):
        tree = extract(sdist, scratch / "kit" / part.name)
        parts.append(KitPart(part.name, part.version, part.sdist, part.sha256,
                             import_root(tree)))
    return Kit(tuple(parts))


def _image(record: BuildRecord, origin: str) -> ImageRef:
    try:
        connect().images.get(record.builder_image_id)
    except ImageNotFound:
        raise EngineError(f"cannot rebuild: the recorded builder image {record.builder_image_id}"
                          " is not in the engine", "load or re-import that exact image; a "
                          "newly bootstrapped image has another ID") from None
    except DockerException as exc:
        raise EngineError(f"the Docker engine is not usable: {exc}") from None
    return ImageRef(tag=record.builder_image, id=record.builder_image_id, origin=origin)
