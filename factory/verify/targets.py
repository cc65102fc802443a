"""What a verification TARGET names, as a list of Items matched to the index.

TARGET is a wheel file; ``name==version``; a requirements file with hashes; a
``pylock.toml`` (PEP 751) or ``uv.lock``; a virtual environment (a directory);
or the whole index (``--all``). Lock and requirements files pin artifacts by
sha256: every pinned digest must be a wheel the index publishes, because an
installer may pick any of them. Anything that cannot be matched becomes an Item
with a ``problem``, which the digest check reports as a failure naming it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from factory._internal.plainfile import NotPlain, read_plain
from factory.errors import FactoryError
from factory.verify.installed import InstalledDist, find_distributions, pick_wheel
from factory.verify.view import IndexView, Published


class TargetError(FactoryError):
    """The target cannot be read as any kind of target: a usage error (exit 2)."""

    exit_code = 2
    default_hint = ("give a wheel file, NAME==VERSION, a requirements file with hashes, "
                    "pylock.toml, uv.lock, a venv directory, or --all")


@dataclass
class Item:
    label: str
    project: str | None = None
    version: str | None = None
    filename: str | None = None
    wheel: Path | None = None  # the bytes to verify: the given file or the index's copy
    published: Published | None = None
    pinned_sha256: str | None = None  # the digest the lock/requirements file pinned
    installed: InstalledDist | None = None
    problem: str | None = None
    ignored: bool = False


PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*===?\s*([^\s;,]+)\s*$")
_PYLOCK = re.compile(r"^pylock(\.[^.]+)?\.toml$")


def resolve(index: IndexView, target: str | None, everything: bool = False,
            ignore: tuple[str, ...] = ()) -> list[Item]:
    if everything:
        if target:
            raise TargetError("give either a TARGET or --all, not both")
        return [published_item(p, p.filename) for p in index.all()]
    if not target:
        raise TargetError("nothing to verify")
    path = Path(target)
    if path.is_dir():
        return venv_items(index, path, {str(canonicalize_name(n)) for n in ignore})
    if path.is_file():
        return file_items(index, path)
    if PIN.match(target):
        name, version = PIN.match(target).groups()  # type: ignore[union-attr]
        return pinned_items(index, name, version, target)
    raise TargetError(f"{target}: no such file or directory, and not NAME==VERSION")


def file_items(index: IndexView, path: Path) -> list[Item]:
    name = path.name
    if name.endswith(".whl"):
        return [wheel_item(index, path)]
    try:
        if name == "uv.lock":
            return uv_lock_items(index, _toml(path), path.name)
        if _PYLOCK.match(name):
            return pylock_items(index, _toml(path), path.name)
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: not valid TOML ({exc})") from None
    return requirements_items(index, path)


MAX_TARGET_BYTES = 64 << 20  # a lock or requirements file (big locks are a few MiB)


def read_target(path: Path, what: str = "") -> str:
    """A lock or requirements file's text: a regular file (opened without blocking, so
    a FIFO or device is refused, not read), at most MAX_TARGET_BYTES, UTF-8; else one
    TargetError line."""
    label = what or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise TargetError(f"{label}: cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TargetError(f"{label}: {path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_TARGET_BYTES + 1)
    if len(data) > MAX_TARGET_BYTES:
        raise TargetError(f"{label}: larger than {MAX_TARGET_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TargetError(f"{label}: not UTF-8 (byte {exc.start})") from None


def _toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(read_target(path))


def _tables(value: Any, what: str) -> list[dict[str, Any]]:
    """An array of tables of a lock (absent: none), else one TargetError line."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TargetError(f"{what} is not an array of tables")
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _name(package: dict[str, Any], origin: str) -> str:
    name = package.get("name")
    if not isinstance(name, str) or not name:
        raise TargetError(f"{origin}: a package's name is not a string")
    return str(canonicalize_name(name))


def published_item(item: Published, label: str, pinned: str | None = None) -> Item:
    return Item(label=label, project=item.project, version=item.entry.version,
                filename=item.filename, wheel=item.path, published=item, pinned_sha256=pinned)


def wheel_item(index: IndexView, path: Path) -> Item:
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise TargetError(f"{path}: not a wheel file name ({exc})") from None
    found = index.by_filename(str(name), path.name)
    item = Item(label=str(path), project=str(name), version=str(version), filename=path.name,
                wheel=path, published=found)
    if found is None:
        item.problem = (index.unreadable(str(name))
                        or f"{path.name} is not a file the index publishes")
    return item


def pinned_items(index: IndexView, name: str, version: str, label: str) -> list[Item]:
    found = index.by_version(name, version)
    if not found:
        return [Item(label=label, project=str(canonicalize_name(name)), version=version,
                     problem=index.unreadable(name)
                     or f"the index publishes no file of {name}=={version}")]
    return [published_item(p, f"{label} ({p.filename})") for p in found]


def by_digest(index: IndexView, name: str, version: str | None, filename: str | None,
              sha256: str, label: str) -> Item:
    """The published wheel of ``name`` with this digest, or an Item naming the problem."""
    record = index.record(name)
    for entry in record.files if record else []:
        if entry.sha256 == sha256.lower():
            return published_item(index.published(record, entry), label, sha256)  # type: ignore[arg-type]
    what = filename or f"{name} {version or ''}".strip()
    return Item(label=label, project=str(canonicalize_name(name)), version=version,
                filename=filename, pinned_sha256=sha256,
                problem=index.unreadable(name)
                or f"{what} (sha256 {sha256[:16]}…) is not a file the index publishes")


# -- requirements files ---------------------------------------------------------------
_HASH = re.compile(r"--hash[=\s]+(\w+):([0-9a-fA-F]+)")
_OPTION_LINE = re.compile(r"^\s*-")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if not buffer:
            start = number
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            lines.append((start, buffer.strip()))
        buffer = ""
    if buffer.strip():
        lines.append((start, buffer.strip()))
    return lines


MAX_INCLUDES = 64  # requirements files one target may include (-r/-c), in all


def requirements_items(index: IndexView, path: Path, seen: set[Path] | None = None) -> list[Item]:
    seen = seen if seen is not None else set()
    if path.resolve() in seen:
        return []
    if len(seen) >= MAX_INCLUDES:  # a chain of includes: bounded, not a RecursionError
        raise TargetError(f"{path}: more than {MAX_INCLUDES} requirements files included")
    seen.add(path.resolve())
    items: list[Item] = []
    for number, line in _logical_lines(read_target(path)):
        label = f"{path.name}:{number}"
        if _OPTION_LINE.match(line):
            items += _option_line(index, path, line, label, seen)
            continue
        hashes = [(alg.lower(), digest.lower()) for alg, digest in _HASH.findall(line)]
        spec = _HASH.sub("", line).strip()
        items += _requirement_line(index, spec, hashes, label)
    return items


def _option_line(index: IndexView, path: Path, line: str, label: str,
                 seen: set[Path]) -> list[Item]:
    try:
        parts = shlex.split(line)
    except ValueError as exc:  # an unclosed quote
        return [Item(label=label, problem=f"{line[:200]!r} cannot be read ({exc})")]
    option = parts[0].split("=", 1)[0]
    if option in ("-r", "--requirement", "-c", "--constraint"):
        value = parts[0].split("=", 1)[1] if "=" in parts[0] else \
            (parts[1] if len(parts) > 1 else "")
        if not value:
            return [Item(label=label, problem=f"{line[:200]!r} names no file")]
        return requirements_items(index, path.parent / value, seen)
    if option in ("-e", "--editable"):
        return [Item(label=label, problem=f"{line}: an editable install is not an artifact "
                                          "the index can vouch for")]
    return []  # index options, --require-hashes, --pre ...: nothing to verify


def _requirement_line(index: IndexView, spec: str, hashes: list[tuple[str, str]],
                      label: str) -> list[Item]:
    try:
        req = Requirement(spec)
    except InvalidRequirement as exc:
        return [Item(label=label, problem=f"{spec!r} is not a requirement ({exc})")]
    name = str(canonicalize_name(req.name))
    label = f"{label} {name}"
    if req.url:
        return [Item(label=label, project=name, problem=f"{spec}: a direct URL, not the index")]
    pins = [s.version for s in req.specifier if s.operator in ("==", "===")]
    version = pins[0] if pins else None
    if version is None or "*" in version:
        return [Item(label=label, project=name, problem=f"{spec}: not pinned to one version")]
    sha256s = [d for alg, d in hashes if alg == "sha256"]
    if not sha256s:
        return [Item(label=label, project=name, version=version,
                     problem=f"{spec}: no --hash=sha256:… pins an artifact")]
    return [by_digest(index, name, version, None, d, label) for d in sha256s]


# -- pylock.toml (PEP 751) and uv.lock -------------------------------------------------
def _filename(entry: dict[str, Any]) -> str | None:
    if entry.get("name"):
        return str(entry["name"])
    where = entry.get("url") or entry.get("path")
    return unquote(urlparse(str(where)).path.rsplit("/", 1)[-1]) if where else None


def pylock_items(index: IndexView, data: dict[str, Any], origin: str) -> list[Item]:
    if "lock-version" not in data:
        raise TargetError(f"{origin}: not a pylock.toml (no lock-version)")
    items: list[Item] = []
    for package in _tables(data.get("packages"), f"{origin}: packages"):
        name = _name(package, origin)
        version = _text(package.get("version"))
        label = f"{origin} {name}"
        identities = package.get("attestation-identities")
        for wheel in _tables(package.get("wheels"), f"{origin}: {name}'s wheels"):
            filename = _filename(wheel)
            hashes = wheel.get("hashes")
            sha256 = _text(hashes.get("sha256")) if isinstance(hashes, dict) else None
            item = _locked(index, name, version, filename, sha256, label)
            if identities is not None and item.problem is None:
                item.problem = identity_problem(item, identities)
            items.append(item)
        for kind in ("sdist", "archive", "vcs", "directory"):
            if package.get(kind):
                items.append(Item(label=label, project=name, version=version,
                                  problem=f"{name} is locked as a {kind}: the index "
                                          "publishes wheels only"))
        if not any(package.get(k) for k in ("wheels", "sdist", "archive", "vcs", "directory")):
            items.append(Item(label=label, project=name, version=version,
                              problem=f"{name}: the lock names no artifact to verify"))
    return items


MAX_PROVENANCE = 16 << 20  # a .provenance file read whole to name its publishers


def identity_problem(item: Item, identities: Any) -> str | None:
    """Why the lock's ``attestation-identities`` (PEP 751) do not name who published the
    file: none of them equals a publisher of the PEP 740 provenance the index serves
    beside it (whose signatures the provenance checks then verify). None when one does."""
    what = item.filename or item.label
    if not isinstance(identities, list) or not identities or not all(
            isinstance(i, dict) and isinstance(i.get("kind"), str) for i in identities):
        return f"{what}: attestation-identities is not a list of tables with a kind"
    path = item.wheel.with_name(item.wheel.name + ".provenance") if item.wheel else None
    try:  # as evidence is read: a regular file, never through a link (a FIFO, /dev/zero)
        raw = read_plain(path, MAX_PROVENANCE) if path is not None else None
        if raw is None:
            return f"{what}: the index serves no provenance to match attestation-identities"
        provenance = json.loads(raw)
        publishers = [b.get("publisher") for b in provenance.get("attestation_bundles", [])]
    except (NotPlain, OSError, ValueError, AttributeError):
        return f"{what}: the provenance the index serves is unreadable"
    if any(identity == publisher for identity in identities for publisher in publishers):
        return None
    kinds = ", ".join(sorted({str(i.get("kind"))[:40] for i in identities}))
    return (f"{what}: the lock's attestation-identities ({kinds}) do not name the publisher "
            "of the provenance the index serves")


def uv_lock_items(index: IndexView, data: dict[str, Any], origin: str) -> list[Item]:
    if "package" not in data:
        raise TargetError(f"{origin}: not a uv.lock (no [[package]])")
    items: list[Item] = []
    for package in _tables(data["package"], f"{origin}: package"):
        name = _name(package, origin)
        version = _text(package.get("version"))
        source = package.get("source")
        source = source if isinstance(source, dict) else {}
        label = f"{origin} {name}"
        if "editable" in source or "virtual" in source:
            continue  # the project being locked, not a dependency
        for wheel in _tables(package.get("wheels"), f"{origin}: {name}'s wheels"):
            alg, _, digest = str(wheel.get("hash", "")).partition(":")
            items.append(_locked(index, name, version, _filename(wheel),
                                 digest if alg == "sha256" else None, label))
        if package.get("sdist"):
            items.append(Item(label=label, project=name, version=version,
                              problem=f"{name} is locked with an sdist: the index publishes "
                                      "wheels only"))
        if not package.get("wheels") and not package.get("sdist"):
            items.append(Item(label=label, project=name, version=version,
                              problem=f"{name} comes from {sorted(source) or 'nowhere'}, "
                                      "not from the index"))
    return items


def _locked(index: IndexView, name: str, version: str | None, filename: str | None,
            sha256: str | None, label: str) -> Item:
    if not sha256:
        return Item(label=label, project=name, version=version, filename=filename,
                    problem=f"{filename or name}: the lock gives no sha256")
    return by_digest(index, name, version, filename, sha256, f"{label} ({filename})")


# -- virtual environments ----------------------------------------------------------------
def venv_items(index: IndexView, venv: Path, ignore: set[str]) -> list[Item]:
    dists = find_distributions(venv)
    if not dists:
        raise TargetError(f"{venv}: no installed distributions found (not a venv?)")
    items = []
    for dist in dists:
        label = f"{dist.name} {dist.version} (installed)"
        item = Item(label=label, project=dist.name, version=dist.version, installed=dist)
        if dist.name in ignore:
            item.ignored = True
        elif dist.problem:
            item.problem = dist.problem
        else:
            candidates = index.by_version(dist.name, dist.version)
            chosen = pick_wheel(dist, candidates)
            if chosen is None:
                item.problem = index.unreadable(dist.name) or (
                    f"{dist.name} {dist.version} is installed but the index publishes no "
                    "wheel of it")
            else:
                item.published, item.wheel, item.filename = chosen, chosen.path, chosen.filename
        items.append(item)
    return items
