"""The builder image: made offline from Debian packages, pinned by image ID.

No container registry is reachable on the factory's machines, so the default
image is made with ``debootstrap --variant=minbase`` and ``docker import``. The
configuration may instead name a registry image by digest
(``python:3.12-slim@sha256:...``); then it is pulled once and used as is.
Recipes that need extra Debian packages get a derived image per package set,
tagged ``<builder_image>-<hash of the set>``. Every image used is recorded in
``<state>/builder/images.json`` with its ID and the Debian packages it holds,
so provenance and SBOMs can name them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound

from factory._internal.atomic import write_json
from factory.build.engine import connect
from factory.config import Settings
from factory.errors import EngineError

SUITE = "bookworm"
# Overridable so a site can use its own Debian mirror.
MIRROR = os.environ.get("FACTORY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# patchelf: auditwheel grafts shared libraries with it. It must be >= 0.14.5; bookworm's
# 0.14.3 is older, so there only wheels that need no grafted library are repaired.
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python3-dev", "gcc", "libc6-dev",
                 "patchelf")
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


def images_record(settings: Settings) -> Path:
    return settings.state_dir / "builder" / "images.json"


def is_registry_ref(reference: str) -> bool:
    return "@sha256:" in reference


def tag_for(settings: Settings, extra_packages: Iterable[str] = ()) -> str:
    """The tag of the image holding the base packages plus ``extra_packages``."""
    extra = sorted(set(extra_packages) - set(BASE_PACKAGES))
    if not extra:
        return settings.builder_image
    digest = hashlib.sha256("\n".join(extra).encode()).hexdigest()[:12]
    return f"{settings.builder_image}-{digest}"


def bootstrap_image(settings: Settings, extra_packages: Iterable[str] = ()) -> ImageRef:
    """The builder image for ``extra_packages``: made once, then found by its tag."""
    extra = sorted(set(extra_packages) - set(BASE_PACKAGES))
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
    ref = _existing(settings, client, tag)
    if ref is not None and not _holds(ref, [*BASE_PACKAGES, *extra]):
        ref = None  # made before a package joined the list: make it again, same tag
    if ref is None:
        ref = _debootstrap_image(settings, client, tag, [*BASE_PACKAGES, *extra])
    _remember(settings, ref)
    return ref


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
    recorded = known.get("packages") if known.get("id") == found.id else None
    packages = [str(p) for p in recorded] if isinstance(recorded, list) else []
    if not packages:
        packages = _packages_in_image(client, str(found.id))
    return ImageRef(tag=tag, id=str(found.id), origin="debootstrap", packages=packages)


def _holds(ref: ImageRef, packages: list[str]) -> bool:
    """Whether the image holds every package (an image we cannot list is taken as is)."""
    held = {p.split("=", 1)[0] for p in ref.packages}
    return not held or set(packages) <= held


def _registry_image(settings: Settings, client: docker.DockerClient) -> ImageRef:
    reference = settings.builder_image
    try:
        found = client.images.get(reference)
    except ImageNotFound:
        try:
            found = client.images.pull(reference)
        except DockerException as exc:
            raise EngineError(
                f"cannot pull the builder image {reference}: {str(exc)[:200]}",
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
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=work) as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run_debootstrap(rootfs, packages, work / "debs")
        _add_build_user(rootfs)
        held = _dpkg_packages(rootfs)
        _trim(rootfs)
        tarball = Path(tmp) / "rootfs.tar"
        _tar(rootfs, tarball)
        repository, _, version = tag.rpartition(":")
        client.api.import_image_from_file(
            str(tarball), repository=repository or tag, tag=version or "latest", changes=_CHANGES
        )
    image = client.images.get(tag)
    return ImageRef(tag=tag, id=str(image.id), origin="debootstrap", packages=held)


def _run_debootstrap(rootfs: Path, packages: list[str], cache: Path) -> None:
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
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-5:])
        raise EngineError(
            f"debootstrap failed (exit {done.returncode}): {tail}",
            f"check that {MIRROR} is reachable and the package names exist in {SUITE}",
        )


def _add_build_user(rootfs: Path) -> None:
    # Builds run as uid 1000; a passwd entry keeps getpass/pwd lookups working.
    with (rootfs / "etc/passwd").open("a", encoding="utf-8") as passwd:
        passwd.write(f"builder:x:{BUILD_UID}:{BUILD_UID}:builder:/tmp:/usr/sbin/nologin\n")
    with (rootfs / "etc/group").open("a", encoding="utf-8") as group:
        group.write(f"builder:x:{BUILD_UID}:\n")


def _dpkg_packages(rootfs: Path) -> list[str]:
    done = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W", "-f=${Package}=${Version}\n"],
        capture_output=True,
        text=True,
        check=False,
    )
    return sorted(line for line in done.stdout.splitlines() if line)


def _packages_in_image(client: docker.DockerClient, image: str) -> list[str]:
    try:
        out = client.containers.run(
            image,
            ["dpkg-query", "-W", "-f=${Package}=${Version}\n"],
            network_mode="none",
            remove=True,
        )
    except DockerException:
        return []  # not a Debian image: nothing to list
    return sorted(line for line in out.decode().splitlines() if line)


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


def _load(settings: Settings) -> dict[str, dict[str, object]]:
    path = images_record(settings)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _remember(settings: Settings, ref: ImageRef) -> None:
    known = _load(settings)
    if known.get(ref.tag) == asdict(ref):
        return
    known[ref.tag] = asdict(ref)
    write_json(images_record(settings), known)
