"""patchelf built from Debian's verified source, once per builder image.

auditwheel grafts the shared libraries a native wheel links into the wheel with
patchelf >= 0.14.5; the builder image's Debian bookworm has 0.14.3. So the
factory builds the pinned upstream release (PIN: Debian trixie's source package,
fetched through the signed chain by ``factory.build.debian_source``) in the
builder image itself, in a container like every build (no network, read-only
root, the image's g++), and mounts the binary read-only at /kit/patchelf for the
repair step (the in-container driver puts it before the image's patchelf).

The binary is kept under ``<state>/builder/patchelf/<source digest>-<image id>/``
with a note of its own sha256: built once per (tarball, image), checked by digest
every time it is used. What repaired a wheel is recorded by the host (the source
tarball's digest, the version, the binary's digest), apart from what the build
reports.

    tool = for_image(settings, image)   # built once, then found
    tool.directory / "patchelf", tool.describe()
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory._internal.atomic import sha256_file, write_json
from factory.build import debian_source
from factory.build.confined import Confined
from factory.build.debian_source import SourcePin, SourceTarball, SourceUnavailable
from factory.build.docker import Bind, owner_id, prepare_output, run_container
from factory.build.image import ImageRef
from factory.build.workdir import work_dir
from factory.config import Settings
from factory.errors import BuildError, one_line

# Debian trixie's patchelf (bookworm-backports has none); upstream's 0.18.0 release.
PIN = SourcePin("patchelf", "0.18.0-1.4", "trixie")
# The tarball meant (as CPython's pins have theirs): a signed index naming other bytes
# for this version (a replayed or other suite's, or a lie Debian signed) is refused.
ORIG_SHA256 = {PIN: "1451d01ee3a21100340aed867d0b799f46f0b1749680028d38c3f5d0128fb8a7"}
MOUNT = "/kit/patchelf"
BUILD_SECONDS = 900
MAX_BINARY = 16 << 20  # bytes of the built program (about 2 MB)
MAX_NOTE = 4096
# The upstream build (src/Makefile.am's flags, configure.ac's PACKAGE_STRING) in one
# compiler call: the release tarball has no configure script and the image no autoconf.
# A fixed source path and -ffile-prefix-map keep the binary the same on every build.
_SCRIPT = """set -eu
mkdir /build/src
tar -xf "/source/$1" -C /build/src --strip-components=1 --no-same-owner
cd /build/src
g++ -O2 -Wall -Wextra -std=c++17 -D_FILE_OFFSET_BITS=64 "-DPACKAGE_STRING=\\"patchelf $2\\"" \
    -ffile-prefix-map=/build/src=. -o /build/patchelf src/patchelf.cc
strip --strip-unneeded /build/patchelf 2>/dev/null || true
cp /build/patchelf /out/patchelf
/out/patchelf --version > /out/version
"""


@dataclass(frozen=True)
class Patchelf:
    """A patchelf the factory built: where it is, what it is, what it came from."""

    directory: Path  # holds the program ``patchelf``; mounted at MOUNT
    version: str
    sha256: str  # of the program
    source: dict[str, Any]  # SourceTarball.describe()
    image_id: str

    def describe(self) -> dict[str, Any]:
        """The record's entry (host-known: the host built and mounted it)."""
        return {"version": self.version, "sha256": self.sha256, "source": self.source,
                "image_id": self.image_id, "mounted_at": MOUNT,
                "origin": "built by the factory from the Debian source package "
                          f"{self.source.get('package')} {self.source.get('version')} "
                          f"({self.source.get('suite')})"}


def directory(settings: Settings, source_sha256: str, image_id: str) -> Path:
    image = image_id.removeprefix("sha256:")[:16]
    return settings.state_dir / "builder" / "patchelf" / f"{source_sha256[:16]}-{image}"


def for_image(settings: Settings, image: ImageRef, pin: SourcePin = PIN) -> Patchelf:
    """The patchelf for ``image``: kept, or built now (the source fetched and verified
    first when it is not kept). SourceUnavailable or BuildError when it cannot be had."""
    tarball = _pinned(debian_source.fetch_orig(settings, pin), pin)
    where = directory(settings, tarball.sha256, image.id)
    kept = _kept(where, tarball, image.id)
    if kept is not None:
        return kept
    return _build(settings, image, tarball, where)


def kept(settings: Settings, image: ImageRef, pin: SourcePin = PIN) -> Patchelf | None:
    """The patchelf already built for ``image``, or None (nothing is fetched or built)."""
    tarball = debian_source.kept_orig(settings, pin)
    if tarball is None or tarball.sha256 != ORIG_SHA256.get(pin, tarball.sha256):
        return None
    return _kept(directory(settings, tarball.sha256, image.id), tarball, image.id)


def _pinned(tarball: SourceTarball, pin: SourcePin) -> SourceTarball:
    pinned = ORIG_SHA256.get(pin, tarball.sha256)
    if tarball.sha256 != pinned:
        raise SourceUnavailable(f"Debian's signed index names {tarball.filename} with sha256 "
                                f"{tarball.sha256}, not the pinned {pinned}",
                                "the pin and the archive disagree; check the pin")
    return tarball


def _kept(where: Path, tarball: SourceTarball, image_id: str) -> Patchelf | None:
    note, program = where / "patchelf.json", where / "patchelf"
    try:
        if not note.is_file() or note.is_symlink() or note.stat().st_size > MAX_NOTE:
            return None
        data = json.loads(note.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sha256"), str):
        return None
    if (not program.is_file() or program.is_symlink()
            or sha256_file(program) != data["sha256"]
            or data.get("source") != tarball.describe() or data.get("image_id") != image_id):
        return None
    return Patchelf(where, tarball.upstream_version, data["sha256"], tarball.describe(), image_id)


def _build(settings: Settings, image: ImageRef, tarball: SourceTarball,
           where: Path) -> Patchelf:
    what = f"patchelf {tarball.upstream_version}"
    with work_dir(settings.builds_dir, "build-patchelf-", owner_id()) as work:
        source = tarball.stage(work)
        prepare_output(work / "out")
        started = time.monotonic()
        result = run_container(
            settings, image.id,
            ["sh", "-c", _SCRIPT, "patchelf-build", tarball.filename, tarball.upstream_version],
            [Bind(source, "/source"), Bind(work / "out", "/out", read_only=False)],
            {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "HOME": "/tmp",
             "SOURCE_DATE_EPOCH": "0"},
            min(float(settings.build_timeout), BUILD_SECONDS),
            {"org.factory.component": f"patchelf=={tarball.upstream_version}"})
        log = settings.logs_dir / f"patchelf-{tarball.upstream_version}-{image.id[7:19]}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(result.log)
        if result.exit_code != 0:
            tail = result.log.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise BuildError(f"{what} did not build (exit {result.exit_code}): "
                             f"{one_line(tail[0], 200)} (log: {log})")
        out = Confined(work / "out", what, f" (log: {log})")
        said = (out.read("version", 256) or b"").decode("ascii", "replace").strip()
        if said != f"patchelf {tarball.upstream_version}":
            raise out.refuse(f"the program built says it is {one_line(repr(said), 80)}")
        where.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=where.parent))
        digest = out.copy("patchelf", staging / "patchelf", MAX_BINARY)
        (staging / "patchelf").chmod(0o755)
        staging.chmod(0o755)
        write_json(staging / "patchelf.json",
                   {"sha256": digest, "source": tarball.describe(), "image_id": image.id,
                    "seconds": round(time.monotonic() - started, 1)})
        shutil.rmtree(where, ignore_errors=True)  # a damaged one (kept ones were checked)
        try:
            staging.rename(where)
        except OSError:  # another factory process on this state dir placed it first
            shutil.rmtree(staging, ignore_errors=True)
            placed = _kept(where, tarball, image.id)
            if placed is None:
                raise
            return placed
    return Patchelf(where, tarball.upstream_version, digest, tarball.describe(), image.id)
