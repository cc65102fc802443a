"""Reproducibility: rebuild a published wheel from its recorded inputs, compare digests.

The build record published with the wheel (``W.build.json``, the data the SLSA
provenance was written from) names every input by digest: the sdist, the
build-tool wheels, the front-end kit's sdists, the builder image ID, the
patches. Each is found again by that digest (source cache, the index's
sources/ and files/, the wheels directory), checked, and given to the same
builder (factory.build.job) in a scratch state directory, so the
factory's own wheels and records are never touched. The result is compared
byte for byte; when it differs, file by file (equivalence.compare_wheels).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import DockerException, ImageNotFound
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

from factory._internal.atomic import sha256_file
from factory._internal.plainfile import NotPlain, read_plain
from factory.build import interpreters, patchelf, repair
from factory.build import job as builder
from factory.build.debian_source import SourcePin
from factory.build.engine import connect
from factory.build.env import Kit, KitPart, import_root
from factory.build.image import ImageRef
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.errors import BuildError, EngineError, VerificationError
from factory.upstream.archive import apply_patches, extract
from factory.upstream.cache import cache_path
from factory.verify.equivalence import compare_wheels
from factory.verify.targets import PIN, TargetError
from factory.verify.view import IndexView, Published, sidecar

_RECORD_LIMIT = 16 << 20  # bytes of a build record (a few KiB when written)


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
    record = BuildRecord.from_dict(json.loads(raw.decode("utf-8")))
    if record.wheel_sha256 != item.entry.sha256 or record.wheel_filename != item.filename:
        raise VerificationError(f"{item.filename}: its build record describes another file")
    scratch = Path(tempfile.mkdtemp(prefix="factory-rebuild-"))
    try:
        inputs = _inputs(settings, index, record, scratch)
        # A scratch state directory: the rebuild never replaces the factory's wheels.
        repaired = record.builder_settings.get("repair") or {}
        again = dataclasses.replace(settings, state_dir=scratch / "state",
                                    build_repair=str(repaired.get("tool") or "none"))
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


def _inputs(settings: Settings, index: IndexView, record: BuildRecord,
            scratch: Path) -> builder.BuildInputs:
    src = record.source
    sdist = _find(record.source.filename, src.sha256, [
        cache_path(settings, src.sha256, src.filename),
        index.root / "sources" / record.component / src.filename,
    ])
    tree = extract(sdist, scratch / "tree")
    if record.patches:
        apply_patches(tree, [_find(p["path"], p["sha256"], [
            settings.recipes_dir / "patches" / p["path"],
            settings.recipes_dir / "patches" / record.component / p["path"]])
            for p in record.patches])
    frontend = record.builder_settings.get("frontend") or []
    kit_files = {part["sdist"] for part in frontend}
    # The repair tools (auditwheel...) sat in their own venv: take them out of the
    # build environment once each (a wheel may have been in both), and pass them apart.
    build_env = Counter(repair.build_env_shas(record))
    tools = []
    for tool in record.build_tools:
        if tool.filename not in kit_files and build_env[tool.sha256] > 0:
            build_env[tool.sha256] -= 1
            tools.append(_tool_wheel(settings, index, tool.filename, tool.sha256))
    repaired = record.builder_settings.get("repair") or {}
    repair_tools = tuple(_tool_wheel(settings, index, str(t["filename"]), str(t["sha256"]))
                         for t in repaired.get("tools", []))
    image = _image(record)
    return builder.BuildInputs(
        name=record.component, version=record.version, sdist=sdist, source=src, tree=tree,
        tools=tuple(tools), kit=_kit(settings, index, frontend, scratch), image=image,
        repair_tools=repair_tools, patchelf=_patchelf(settings, image, repaired),
        recipe_name=record.recipe_name, recipe_digest=record.recipe_digest,
        patches=tuple(dict(p) for p in record.patches),
        upstream_wheels=tuple(record.builder_settings.get("upstream_wheels") or ()),
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


def _find(filename: str, sha256: str, candidates: list[Path]) -> Path:
    for path in candidates:
        if path.is_file() and sha256_file(path) == sha256:
            return path
    raise BuildError(f"cannot rebuild: recorded input {filename} (sha256 {sha256[:16]}…) is "
                     "not available", "fetch it again (`factory fetch`) or restore the "
                                      "source cache; a rebuild needs the very same inputs")


def _tool_wheel(settings: Settings, index: IndexView, filename: str, sha256: str) -> Path:
    project = filename.split("-", 1)[0].replace("_", "-").lower()
    return _find(filename, sha256, [settings.wheels_dir / filename,
                                    index.root / "files" / project / filename])


def _kit(settings: Settings, index: IndexView, frontend: list[dict[str, str]],
         scratch: Path) -> Kit:
    parts = []
    for part in frontend:
        sdist = _find(part["sdist"], part["sha256"], [
            cache_path(settings, part["sha256"], part["sdist"]),
            index.root / "sources" / part["name"] / part["sdist"],
        ])
        tree = extract(sdist, scratch / "kit" / part["name"])
        parts.append(KitPart(part["name"], part["version"], part["sdist"], part["sha256"],
                             import_root(tree)))
    return Kit(tuple(parts))


def _image(record: BuildRecord) -> ImageRef:
    try:
        connect().images.get(record.builder_image_id)
    except ImageNotFound:
        raise EngineError(f"cannot rebuild: the recorded builder image {record.builder_image_id}"
                          " is not in the engine", "load or re-import that exact image; a "
                          "newly bootstrapped image has another ID") from None
    except DockerException as exc:
        raise EngineError(f"the Docker engine is not usable: {exc}") from None
    origin = str(record.builder_settings.get("image_origin") or "debootstrap")
    return ImageRef(tag=record.builder_image, id=record.builder_image_id, origin=origin)
