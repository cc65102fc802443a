"""The builder image: made offline from Debian packages, pinned by image ID.

No container registry is reachable on the factory's machines, so the default
image is made with ``debootstrap --variant=minbase`` and ``docker import``. The
configuration may instead name a registry image by digest
(``python:3.12-slim@sha256:...``); then it is pulled once and used as is.
Recipes that need extra Debian packages get a derived image per package set,
tagged ``<builder_image>-<hash of the set>``. Every image used is recorded in
``<state>/builder/images.json`` with its ID and the Debian packages it holds,
so provenance and SBOMs can name them.

A recipe may pin a package (``libffi-dev=3.4.4-1``). debootstrap's ``--include``
takes names only, and a suite's Packages index offers one version of each, so the
image is made from the names and the pins are then checked against what dpkg says
it installed: an image that does not hold exactly the pinned version is refused
before it is tagged (point FACTORY_DEBIAN_MIRROR at a snapshot that has it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound

from factory._internal.atomic import write_json, write_text
from factory._internal.hostlock import host_lock
from factory.build.confined import Confined, OutputRefused
from factory.build.engine import connect
from factory.build.record import SystemPackage
from factory.config import Settings
from factory.errors import EngineError, one_line
from factory.recipes import SYSTEM_PACKAGE

SUITE = "bookworm"
DISTRO = {"bullseye": "debian-11", "bookworm": "debian-12", "trixie": "debian-13"}[SUITE]
# Overridable so a site can use its own Debian mirror.
MIRROR = os.environ.get("FACTORY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# patchelf: auditwheel grafts shared libraries with it. It must be >= 0.14.5; bookworm's
# 0.14.3 is older, so there only wheels that need no grafted library are repaired.
# g++: C++ extensions are as common as C ones (greenlet, kiwisolver, grpcio in the catalogue).
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python3-dev", "gcc", "g++",
                 "libc6-dev", "patchelf")
BUILD_UID = 1000
_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
]


@dataclass(frozen=True)
class ImageRef:
    """An image a build runs in: the tag asked for and the ID it resolved to."""

    tag: str
    id: str
    origin: str  # "debootstrap" or "registry"
    packages: list[str] = field(default_factory=list)  # Debian "name=version" held
    architectures: dict[str, str] = field(default_factory=dict)  # name -> dpkg architecture


def images_record(settings: Settings) -> Path:
    return settings.state_dir / "builder" / "images.json"


def is_registry_ref(reference: str) -> bool:
    return "@sha256:" in reference


def split_package(entry: str) -> tuple[str, str | None]:
    """``"name=version"`` -> (name, version); ``"name"`` -> (name, None)."""
    name, pinned, version = entry.partition("=")
    return name, version if pinned else None


def _wanted(extra: Sequence[str]) -> list[str]:
    """The base packages and ``extra`` (checked), one entry per name: a pin wins over
    its bare name, two different pins of one name are refused."""
    entries: dict[str, str] = {}
    for entry in [*BASE_PACKAGES, *extra]:
        if not SYSTEM_PACKAGE.fullmatch(entry):
            raise EngineError(f"{one_line(repr(entry), 120)} is not a Debian package name "
                              "or NAME=VERSION", 'for example "libffi-dev" or '
                              '"libffi-dev=3.4.4-1"')
        name, version = split_package(entry)
        known = entries.get(name)
        if known is not None and version and "=" in known and known != entry:
            raise EngineError(f"{name} is pinned twice: {known} and {entry}",
                              "keep one pin of each package in system_packages")
        if known is None or version:
            entries[name] = entry
    return sorted(entries.values())


def tag_for(settings: Settings, extra_packages: Iterable[str] = ()) -> str:
    """The tag of the image holding the base packages plus ``extra_packages``."""
    extra = sorted(set(extra_packages) - set(BASE_PACKAGES))
    if not extra:
        return settings.builder_image
    digest = hashlib.sha256("\n".join(extra).encode()).hexdigest()[:12]
    return f"{settings.builder_image}-{digest}"


def bootstrap_image(settings: Settings, extra_packages: Iterable[str] = ()) -> ImageRef:
    """The builder image for ``extra_packages`` (names, or NAME=VERSION pins): made
    once, then found by its tag."""
    extra = sorted(set(extra_packages) - set(BASE_PACKAGES))
    wanted = _wanted(extra)
    client = connect()
    if is_registry_ref(settings.builder_image):
        if extra:
            raise EngineError(
                f"the registry image {settings.builder_image} cannot take extra Debian "
                f"packages ({', '.join(extra)})",
                "use a registry image that already holds them, or the default debootstrap image",
            )
        return _registry_image(settings, client)
    tag = tag_for(settings, extra)
    ref = _current(settings, client, tag, wanted)
    if ref is None:
        # Another factory on this host may be making it now: wait, then look again.
        with host_lock(f"builder-image-{tag}"):
            ref = _current(settings, client, tag, wanted) \
                or _debootstrap_image(settings, client, tag, wanted)
    _remember(settings, ref)
    return ref


def _current(settings: Settings, client: docker.DockerClient, tag: str,
             wanted: list[str]) -> ImageRef | None:
    """The image under ``tag`` when it holds ``wanted``; None when it must be made (again:
    made before a package joined the list, it is made again under the same tag)."""
    ref = _existing(settings, client, tag)
    return ref if ref is not None and _holds(ref, wanted) else None


def held_image(settings: Settings, extra_packages: Iterable[str] = ()) -> ImageRef | None:
    """The builder image for ``extra_packages`` as this engine holds it under its tag,
    or None; nothing is made or pulled (a build worker checks it against a pin)."""
    client = connect()
    if is_registry_ref(settings.builder_image):
        try:
            found = client.images.get(settings.builder_image)
        except ImageNotFound:
            return None
        return ImageRef(tag=settings.builder_image, id=str(found.id), origin="registry")
    return _existing(settings, client, tag_for(settings, extra_packages))


def image_id(settings: Settings, tag: str) -> str | None:
    """The ID of an image by tag, or None when the engine does not hold it."""
    try:
        return str(connect().images.get(tag).id)
    except ImageNotFound:
        return None


def _existing(settings: Settings, client: docker.DockerClient, tag: str) -> ImageRef | None:
    try:
        found = client.images.get(tag)
    except ImageNotFound:
        return None
    known = _load(settings).get(tag, {})
    same = known.get("id") == found.id  # what images.json says is about this very image
    recorded = known.get("packages") if same else None
    arches = known.get("architectures") if same else None
    packages = [str(p) for p in recorded] if isinstance(recorded, list) else []
    architectures = ({str(k): str(v) for k, v in arches.items()}
                     if isinstance(arches, dict) else {})
    asked = not packages or not architectures
    if asked:  # recorded by an older factory, or not here (a build worker): ask the image
        packages, architectures = _packages_in_image(client, str(found.id))
    ref = ImageRef(tag=tag, id=str(found.id), origin="debootstrap", packages=packages,
                   architectures=architectures)
    if asked and packages:  # once per image ID: a worker's every build ran dpkg-query (~1 s)
        _remember(settings, ref)
    return ref


def _holds(ref: ImageRef, packages: list[str]) -> bool:
    """Whether the image holds every package, a pinned one at exactly its version (an
    image we cannot list is taken as is)."""
    held = set(ref.packages)
    names = {p.split("=", 1)[0] for p in held}
    return not held or all(p in held if "=" in p else p in names for p in packages)


def system_packages(ref: ImageRef, entries: Iterable[str]) -> list[SystemPackage]:
    """A recipe's Debian packages (names or pins) as ``ref`` holds them: exact version
    and architecture, for the build record, provenance and SBOM. EngineError when the
    image does not hold one, or holds another version than its pin."""
    held = dict(split_package(p) for p in ref.packages)
    found = []
    for entry in sorted(set(entries)):
        name, pinned = split_package(entry)
        version = held.get(name)
        if version is None or (pinned is not None and version != pinned):
            has = f"it holds {name}={version}" if version else f"it does not hold {name}"
            raise EngineError(f"the builder image {ref.tag} cannot serve {one_line(entry, 120)}"
                              f": {has}", "run `factory builder bootstrap --packages "
                              f"{one_line(entry, 120)}` to make the image of this set again")
        found.append(SystemPackage(name, version, ref.architectures.get(name, ""), DISTRO))
    return found


def image_packages(ref: ImageRef) -> list[SystemPackage]:
    """Every Debian package ``ref`` holds (its dpkg list), sorted by name: what the build
    record hands the SBOM's formulation. Empty for an image nobody could list."""
    found = []
    for entry in ref.packages:
        name, version = split_package(entry)
        if version:
            found.append(SystemPackage(name, version, ref.architectures.get(name, ""), DISTRO))
    return sorted(found, key=lambda p: (p.name, p.version))


def _registry_image(settings: Settings, client: docker.DockerClient) -> ImageRef:
    reference = settings.builder_image
    try:
        found = client.images.get(reference)
    except ImageNotFound:
        try:
            found = client.images.pull(reference)
        except DockerException as exc:
            raise EngineError(
                f"cannot pull the builder image {reference}: {one_line(str(exc), 200)}",
                "make the registry reachable, or remove build.image to use the "
                "debootstrap image (`factory builder bootstrap`)",
            ) from None
    ref = ImageRef(tag=reference, id=str(found.id), origin="registry")
    _remember(settings, ref)
    return ref


def _debootstrap_image(
    settings: Settings, client: docker.DockerClient, tag: str, packages: list[str]
) -> ImageRef:
    if shutil.which("debootstrap") is None:
        raise EngineError(
            "debootstrap is not installed, so the builder image cannot be made",
            "apt-get install -y debootstrap (as root), or set build.image to a registry "
            "image pinned by digest",
        )
    if os.geteuid() != 0:
        raise EngineError(
            "making the builder image needs root (debootstrap creates device nodes and chowns)",
            "run `sudo factory builder bootstrap` once; later builds reuse the tagged image",
        )
    work = settings.state_dir / "builder"
    work.mkdir(parents=True, exist_ok=True)
    log = work / f"debootstrap-{tag.rpartition('/')[2].replace(':', '-')}.log"
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=work) as tmp:
        rootfs = Path(tmp) / "rootfs"
        names = sorted({split_package(p)[0] for p in packages})
        _run_debootstrap(rootfs, names, work / "debs", log)
        _add_build_user(rootfs)
        held, architectures = _dpkg_packages(rootfs)
        _check_pins(held, packages)
        _trim(rootfs)
        tarball = Path(tmp) / "rootfs.tar"
        _tar(rootfs, tarball)
        repository, _, version = tag.rpartition(":")
        client.api.import_image_from_file(
            str(tarball), repository=repository or tag, tag=version or "latest", changes=_CHANGES
        )
    image = client.images.get(tag)
    return ImageRef(tag=tag, id=str(image.id), origin="debootstrap", packages=held,
                    architectures=architectures)


def _check_pins(held: list[str], packages: list[str]) -> None:
    """debootstrap installs what the suite offers: a pin it does not meet is refused."""
    versions = dict(split_package(p) for p in held)
    for entry in packages:
        name, pinned = split_package(entry)
        if pinned is not None and versions.get(name) != pinned:
            offered = versions.get(name) or "nothing"
            raise EngineError(
                f"{entry} is pinned, but Debian {SUITE} at {MIRROR} installed {offered}",
                f"pin the version the suite offers ({name}={offered}), or point "
                "FACTORY_DEBIAN_MIRROR at a snapshot of the suite that has the pinned one "
                "(https://snapshot.debian.org)")


def _run_debootstrap(rootfs: Path, packages: list[str], cache: Path, log: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        f"--cache-dir={cache}",
        SUITE,
        str(rootfs),
        MIRROR,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        write_text(log, output)  # all of it; the error quotes its last line
        lines = [line for line in output.splitlines() if line.strip()]
        last = one_line(lines[-1], 200) if lines else "no output"
        raise EngineError(
            f"debootstrap failed (exit {done.returncode}): {last} (log: {log})",
            f"check that {MIRROR} is reachable and the package names exist in {SUITE}",
        )


def _add_build_user(rootfs: Path) -> None:
    # Builds run as uid 1000; a passwd entry keeps getpass/pwd lookups working.
    with (rootfs / "etc/passwd").open("a", encoding="utf-8") as passwd:
        passwd.write(f"builder:x:{BUILD_UID}:{BUILD_UID}:builder:/tmp:/usr/sbin/nologin\n")
    with (rootfs / "etc/group").open("a", encoding="utf-8") as group:
        group.write(f"builder:x:{BUILD_UID}:\n")


# One line per package: "name=version architecture".
_DPKG_FORMAT = "-f=${Package}=${Version} ${Architecture}\n"


def _dpkg_packages(rootfs: Path) -> tuple[list[str], dict[str, str]]:
    done = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W", _DPKG_FORMAT],
        capture_output=True,
        text=True,
        check=False,
    )
    return _parse_dpkg(done.stdout)


def _packages_in_image(
    client: docker.DockerClient, image: str
) -> tuple[list[str], dict[str, str]]:
    try:
        out = client.containers.run(
            image, ["dpkg-query", "-W", _DPKG_FORMAT], network_mode="none", remove=True
        )
    except DockerException:
        return [], {}  # not a Debian image: nothing to list
    return _parse_dpkg(out.decode())


def _parse_dpkg(text: str) -> tuple[list[str], dict[str, str]]:
    """``name=version`` of each package, and each one's architecture."""
    packages, architectures = [], {}
    for line in text.splitlines():
        held, _, architecture = line.strip().partition(" ")
        if held:
            packages.append(held)
            architectures[held.split("=", 1)[0]] = architecture
    return sorted(packages), architectures


def _trim(rootfs: Path) -> None:
    # Package caches are neither needed nor reproducible.
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / sub).glob("*"):
            if entry.is_file():
                entry.unlink()


def _tar(rootfs: Path, tarball: Path) -> None:
    subprocess.run(
        ["tar", "--numeric-owner", "--sort=name", "-C", str(rootfs), "-cf", str(tarball), "."],
        check=True,
    )


RECORD_LIMIT = 8 << 20  # bytes of images.json read back (an image's list is ~20 KB)


def _load(settings: Settings) -> dict[str, dict[str, object]]:
    """What images.json records, by tag; a record that is a link, not a regular file,
    over ``RECORD_LIMIT``, not JSON or not a mapping of mappings counts as none (its
    images are listed again and the record rewritten): it is only a cache."""
    path = images_record(settings)
    try:
        data = Confined(path.parent, "builder image record").read_json(path.name,
                                                                        RECORD_LIMIT)
    except (OutputRefused, OSError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def _remember(settings: Settings, ref: ImageRef) -> None:
    known = _load(settings)
    if known.get(ref.tag) == asdict(ref):
        return
    known[ref.tag] = asdict(ref)
    write_json(images_record(settings), known)
