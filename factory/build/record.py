"""The build record: what one build consumed and produced.

The builder writes it next to the wheel (``<wheel>.build.json``) from the
control plane, outside the container. Attestation, signing, publishing and the
ledger read it; nothing in it is secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packageurl import PackageURL
from packaging.utils import canonicalize_name

from factory._internal.atomic import write_json
from factory.errors import FactoryError
from factory.index.records import Sidecars
from factory.upstream.cache import Sdist

RECORD_SUFFIX = Sidecars.suffix("build")  # the record is published beside the wheel


@dataclass(frozen=True)
class InstalledTool:
    """One wheel installed in the build environment."""

    name: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class SystemPackage:
    """One Debian package a recipe asked for, as the builder image holds it."""

    name: str
    version: str  # exactly as dpkg says (epoch:upstream-revision)
    architecture: str  # dpkg's: amd64, arm64, all ... ("" when the image did not say)
    distro: str  # the purl's distro qualifier: debian-12

    def purl(self) -> str:
        """``pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=DISTRO`` (purl-spec, type deb)."""
        qualifiers = {"distro": self.distro}
        if self.architecture:
            qualifiers["arch"] = self.architecture
        return PackageURL(type="deb", namespace="debian", name=self.name, version=self.version,
                          qualifiers=qualifiers).to_string()


@dataclass(frozen=True)
class BuildRecord:
    invocation_id: str
    component: str
    version: str
    wheel_filename: str
    wheel_sha256: str
    source: Sdist  # the verified upstream sdist the wheel was built from
    recipe_name: str
    recipe_digest: str
    builder_image: str
    builder_image_id: str
    builder_settings: dict[str, Any]
    build_tools: list[InstalledTool]
    started_on: str
    finished_on: str
    log_filename: str
    log_sha256: str
    network_mode: str = "none"
    patches: list[dict[str, str]] = field(default_factory=list)
    # the digest of upstream's own provenance (PEP 740) of the source, when it has one
    upstream_provenance_sha256: str | None = None
    # the recipe's Debian packages with the exact versions the builder image held
    system_packages: list[SystemPackage] = field(default_factory=list)
    # every Debian package the builder image held (its dpkg list: compiler, libc, Python),
    # for the SBOM's formulation; empty for a registry image or a record made before
    image_packages: list[SystemPackage] = field(default_factory=list)
    # what the user should know of a build that succeeded (factory.build.missing.skipped:
    # a C extension it went without); written only when there is one, so a record
    # without warnings has the bytes it had before the field existed
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not data["warnings"]:
            del data["warnings"]
        # The record's "source" is the sdist without its upload time (the lock's
        # business) and with upstream's provenance digest: the file's format since v1.
        data["source"] = {key: value for key, value in data["source"].items()
                          if key != "upload_time"}
        data["source"]["upstream_provenance_sha256"] = data.pop("upstream_provenance_sha256")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildRecord:
        data = dict(data)
        source = dict(data["source"])
        data["upstream_provenance_sha256"] = source.pop("upstream_provenance_sha256", None)
        data["source"] = Sdist(**source)
        data["build_tools"] = [InstalledTool(**t) for t in data["build_tools"]]
        data["system_packages"] = [SystemPackage(**p) for p in data.get("system_packages", [])]
        data["image_packages"] = [SystemPackage(**p) for p in data.get("image_packages", [])]
        data["warnings"] = _warnings(data.get("warnings", []), data.get("component"),
                                     data.get("version"))
        return cls(**data)

    def save(self, directory: Path) -> Path:
        path = record_path_for(directory / self.wheel_filename)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: Path) -> BuildRecord:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


MAX_WARNINGS = 8
MAX_WARNING = 2000


class MalformedRecord(FactoryError, ValueError):
    """A build record this factory's builder did not write as it reads (a worker's, one
    on disk, one published in an index being verified): one line for the CLI, and a
    ValueError to the callers that refuse a malformed record as such (ticket.collect)."""

    default_hint = ("the record was not written by this factory's builder, or was changed "
                    "since: rebuild the wheel, or look at the worker that sent it")


def _warnings(value: object, component: object = None, version: object = None
              ) -> list[str]:
    """A record's warnings: a short list of one-line texts (a worker's record is read
    with this too); ValueError otherwise. A warning the factory makes is printable
    (``missing.skipped`` escapes what it quotes), so one holding a control, a bidi
    override or a line separator (CR, U+2028, NEL) is a forgery: refused, as it would
    reach a terminal raw through a JSON printer. The CLI still prints them escaped."""
    if not (isinstance(value, list) and len(value) <= MAX_WARNINGS
            and all(isinstance(w, str) and len(w) <= MAX_WARNING and w.strip()
                    and w.isprintable() for w in value)):
        raise MalformedRecord("the build record's warnings are not a short list of "
                              "printable one-line texts")
    # Each is about its own build ("pyyaml 6.0.4 built without ..."): the CLI and the
    # flow's summary list them without the record's name, so a worker's warning about
    # another project would pass for that project's.
    if not all(_about(w, component, version) for w in value):
        raise MalformedRecord("a warning of the build record is about another build")
    return list(value)


def _about(warning: str, component: object, version: object) -> bool:
    name, _, rest = warning.partition(" ")
    return (isinstance(component, str) and isinstance(version, str)
            and canonicalize_name(name) == component
            and rest.startswith(version) and rest[len(version):len(version) + 1] in (" ", ":"))


def record_path_for(wheel: Path) -> Path:
    return Sidecars(wheel).path("build")
