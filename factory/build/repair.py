"""Platform tags for native wheels: auditwheel repair, decided and recorded on the host.

A wheel with compiled code comes out of its backend tagged ``linux_x86_64``,
which no index may serve to other machines. When ``build.repair`` is
``auditwheel`` (the default), the in-container driver repairs every wheel that
is not pure to the best manylinux policy auditwheel finds for the builder image,
in the same network-less container, with auditwheel and its run-time deps built
from source by the factory and installed in a venv of their own. A wheel
auditwheel cannot repair is kept as built, and the record says why.

This module is the host's half: the setting, what the driver reported, and
whether an existing record still matches what would be done now. The report
(repair.json) is written in the container the build backend ran in, so it is
untrusted: read bounded and without following links, checked against what the
host knows (the wheel's tags, the repair tools it mounted), and its free-form
fields are recorded under ``reported_by_build``.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from factory.build.confined import Confined
from factory.build.env import inventory_difference
from factory.build.image import ImageRef, image_packages
from factory.build.patchelf import Patchelf
from factory.build.record import BuildRecord, InstalledTool, SystemPackage
from factory.config import REPAIR_TOOL, Settings, repair_mode
from factory.errors import BuildError

TOOL = REPAIR_TOOL
# The driver's actions: "repaired", "not-repairable", "pure", "unavailable".
INSTALLED = ("repaired", "not-repairable")  # the repair venv was made and used
ACTIONS = ("pure", "unavailable", *INSTALLED)
# What only the build can tell about its repair (recorded as reported by it).
REPORTED = {"policy": "policy", "reason": "reason", "original_wheel": "original",
            "patchelf": "patchelf", "patcher": "patcher", "auditwheel_show": "show"}


def mode(settings: Settings) -> str:
    return repair_mode(settings.build_repair)


def is_pure(filename: str) -> bool:
    return all(tag.platform == "any" for tag in parse_wheel_filename(filename)[3])


def outcome(settings: Settings, out: Path, tools: list[InstalledTool], note: str,
            what: str, wheel: str | None = None,
            patchelf: Patchelf | None = None) -> dict[str, Any]:
    """The record's ``repair`` entry from the driver's repair.json (checked against
    ``wheel``, the filename the host took, when given, and ``patchelf``, the program
    the host built and mounted, when it did: recorded as ``patchelf_build``)."""
    report = Confined(out, what)
    done = report.read_json("repair.json")
    if done is None:
        raise BuildError(f"{what}: the build front end wrote no repair.json")
    if not isinstance(done, dict) or done.get("action") not in ACTIONS:
        raise report.refuse(f"repair.json names no action of {', '.join(ACTIONS)}")
    action = str(done["action"])
    if wheel is not None and (action == "pure") != is_pure(wheel):
        raise report.refuse(f"repair.json says {action!r} of {wheel}, which is "
                            f"{'pure' if is_pure(wheel) else 'not pure'}")
    entry: dict[str, Any] = {"tool": mode(settings), "action": action}
    if action == "pure":
        return {**entry, "reason": "a pure wheel (tag -none-any) needs no repair"}
    if entry["tool"] == "none":
        return {**entry, "action": "disabled", "reason": "build.repair = none"}
    if action == "unavailable":
        return {**entry, "reason": note or f"no {TOOL} wheels were given to this build"}
    held = _held(report, done.get("env", []))
    wanted = {(str(canonicalize_name(t.name)), str(Version(t.version))) for t in tools}
    if held != wanted:
        raise BuildError(f"{what}: the repair environment held other than exactly the "
                         f"wheels mounted ({inventory_difference(held, wanted)})")
    entry.update({key: done.get(field) for key, field in REPORTED.items()
                  if key != "auditwheel_show" or field in done})
    entry["tools"] = [{"name": t.name, "version": t.version, "filename": t.filename,
                       "sha256": t.sha256} for t in tools]
    # Host-known: what the host built and mounted (the report only has to agree).
    if patchelf is not None:
        entry["patchelf_build"] = patchelf.describe()
    if patchelf is not None and entry.get("patchelf") != f"patchelf {patchelf.version}":
        raise report.refuse(f"repair.json reports {str(entry.get('patchelf'))[:80]!r}; the "
                            f"host mounted patchelf {patchelf.version}")
    entry["reported_by_build"] = sorted(k for k in REPORTED if k in entry)
    return entry


# A library auditwheel grafted: <wheel's package>.libs/<file stem>-<8 hex>.so[.N...]
_GRAFTED = re.compile(r"[^/]{1,200}\.libs/(lib[A-Za-z0-9_+.-]{1,200}?)-[0-9a-f]{8}"
                      r"(\.so(?:\.[0-9][A-Za-z0-9.]{0,40})?)")
# auditwheel's directory of grafted libraries, at the wheel's top: nothing else goes there
# (a file the pattern does not name would be loaded by the extension, yet listed nowhere).
_LIBS_DIR = re.compile(r"[^/]{1,200}\.libs/")
MAX_GRAFTED = 256  # grafted libraries one wheel may hold
MAX_GRAFTED_BYTES = 1 << 30  # inflated bytes of one (libLLVM is about 120 MB)
# (kind, file name) -> the Debian packages that ship it (debian.Lookup.providers).
Providers = Callable[[str, str], list[str]]


def grafted(wheel: Path, image: ImageRef, providers: Providers | None = None,
            ) -> list[dict[str, Any]]:
    """The libraries auditwheel grafted into ``wheel`` (its ``<pkg>.libs/``), each with
    its original file name, its sha256 as grafted, and the Debian package of the builder
    image it came from (name, version, purl): found by ``providers`` (the suite's
    Contents index) when given and it knows, else by Debian's library naming
    (policy 8.1: libfoo.so.1 is in libfoo1, libfoo-2.so.3 in libfoo-2-3); in both
    cases only a package the image holds is named. The host reads the wheel it took."""
    held = {p.name: p for p in image_packages(image)}
    found: list[dict[str, Any]] = []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            match = _GRAFTED.fullmatch(info.filename)
            if info.is_dir():
                continue
            if match is None:
                if _LIBS_DIR.match(info.filename):  # what auditwheel did not put there
                    raise BuildError(f"{wheel.name}: {info.filename[:200]!r} is in a .libs "
                                     "directory but not named as a grafted library "
                                     "(<name>-<8 hex>.so...); refused")
                continue
            if len(found) >= MAX_GRAFTED:
                raise BuildError(f"{wheel.name} holds more than {MAX_GRAFTED} grafted "
                                 "libraries; refused")
            digest, size = hashlib.sha256(), 0
            with zf.open(info) as member:  # the wheel is the build's: read bounded
                while block := member.read(1 << 20):
                    size += len(block)
                    if size > MAX_GRAFTED_BYTES:
                        raise BuildError(f"{wheel.name}: {info.filename[:200]!r} inflates "
                                         f"to more than {MAX_GRAFTED_BYTES} bytes; refused")
                    digest.update(block)
            library = match.group(1) + match.group(2)  # the file it was: libffi.so.8.1.2
            package, how = _package_of(library, held, providers)
            entry: dict[str, Any] = {"path": info.filename, "sha256": digest.hexdigest(),
                                     "library": library}
            if package is not None:
                entry.update({"package": package.name, "version": package.version,
                              "purl": package.purl(), "found_by": how})
            found.append(entry)
    return sorted(found, key=lambda e: str(e["path"]))


def _package_of(library: str, held: dict[str, SystemPackage],
                providers: Providers | None) -> tuple[SystemPackage | None, str]:
    if providers is not None:
        for name in providers("library", library):
            if name in held:
                return held[name], "Contents index"
    stem, _, number = library.partition(".so")
    number = number.lstrip(".").split(".")[0]
    if number:
        name = (f"{stem}-{number}" if stem[-1:].isdigit() else f"{stem}{number}").lower()
        if name in held:
            return held[name], "soname (Debian library package naming)"
    return None, ""


def _held(report: Confined, env: object) -> set[tuple[str, str]]:
    """The repair venv's inventory as repair.json reports it (a check only)."""
    if not isinstance(env, list) or not all(
            isinstance(d, dict) and isinstance(d.get("name"), str)
            and isinstance(d.get("version"), str) for d in env):
        raise report.refuse("repair.json's env is not a list of {name, version} entries")
    try:
        return {(canonicalize_name(d["name"]), str(Version(d["version"]))) for d in env}
    except InvalidVersion:
        raise report.refuse("repair.json's env holds an invalid version") from None


def tool_shas(record: BuildRecord) -> list[str]:
    """The sha256s of the repair tools' wheels among a record's build tools."""
    entry = record.builder_settings.get("repair") or {}
    return sorted(str(t["sha256"]) for t in entry.get("tools", []))


def build_env_shas(record: BuildRecord) -> list[str]:
    """The sha256s of the record's build tools without its repair tools.

    A multiset difference: one wheel may sit in both venvs (packaging, say).
    """
    left = Counter(t.sha256 for t in record.build_tools)
    left.subtract(tool_shas(record))
    return sorted(left.elements())


def patchelf_sha(record: BuildRecord) -> str | None:
    """The sha256 of the patchelf the factory built for the record's repair, if any."""
    entry = record.builder_settings.get("repair") or {}
    built = entry.get("patchelf_build")
    return str(built["sha256"]) if isinstance(built, dict) and "sha256" in built else None


def up_to_date(record: BuildRecord, settings: Settings, tools: list[str],
               patchelf: str | None = None) -> bool:
    """Whether the record's repair matches what would be done now (``tools``: sha256s;
    ``patchelf``: the sha256 of the built patchelf the repair would get, when there is
    one: a wheel repaired without it, or with another, is repaired again)."""
    entry = record.builder_settings.get("repair") or {"tool": "none", "action": "disabled"}
    if entry.get("action") == "pure" or is_pure(record.wheel_filename):
        return True  # nothing to repair, whatever the setting or the tools
    if entry.get("tool") != mode(settings):
        return False
    if mode(settings) == "none":
        return True
    return tool_shas(record) == sorted(tools) and (
        patchelf is None or entry.get("action") not in INSTALLED
        or patchelf_sha(record) == patchelf)
