"""SLSA Provenance v1 for one wheel, as an unsigned in-toto Statement v1.

Written by the control plane from the build record alone (never from anything
the build container reported about itself beyond its output files, which the
control plane hashed). Field by field meaning: docs/provenance.md.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packageurl import PackageURL
from packaging.utils import canonicalize_name

from factory import __version__
from factory.attest.types import BUILD_TYPE, STATEMENT_TYPE
from factory.attest.types import SLSA_PREDICATE_TYPE as PREDICATE_TYPE
from factory.build.record import BuildRecord, InstalledTool
from factory.config import Settings

if TYPE_CHECKING:
    from factory.admission.model import Allowance

# in-toto media type of upstream's PEP 740 provenance object (the Integrity API)
PEP740_MEDIA_TYPE = "application/vnd.pypi.integrity.v1+json"


def split_digest(value: str, default_alg: str = "sha256") -> dict[str, str]:
    """``"sha256:abc"`` or ``"abc"`` -> ``{"sha256": "abc"}`` (a DigestSet)."""
    alg, sep, hexdigest = value.partition(":")
    return {alg.lower(): hexdigest.lower()} if sep else {default_alg: value.lower()}


def pypi_purl(name: str, version: str, filename: str | None = None) -> str:
    qualifiers = {"file_name": filename} if filename else None
    return PackageURL(
        type="pypi", name=canonicalize_name(name), version=version, qualifiers=qualifiers
    ).to_string()


def docker_purl(image: str) -> str:
    """pkg:docker purl of an image reference (``repo[:tag][@digest]``)."""
    ref, _, digest = image.partition("@")
    repo, tag = ref, None
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        repo, tag = ref[:colon], ref[colon + 1 :]
    registry, _, path = repo.partition("/")
    qualifiers = None
    if path and ("." in registry or ":" in registry or registry == "localhost"):
        qualifiers, repo = {"repository_url": registry}, path  # purl-spec: registry apart
    namespace, _, name = repo.rpartition("/")
    return PackageURL(
        type="docker",
        namespace=namespace or None,
        name=name,
        version=digest or tag,
        qualifiers=qualifiers,
    ).to_string()


@dataclass(frozen=True)
class Tool:
    """One tool file of a build, once, with every environment that held it."""

    tool: InstalledTool
    environments: tuple[str, ...]  # "build" (the build venv), "repair", "frontend"


def distinct_tools(record: BuildRecord) -> list[Tool]:
    """The record's tools, each file (name and digest) once.

    The record lists a wheel once per environment that installed it (packaging in both
    the build and the repair venv, say): one material, in two environments. Which
    copies were the repair venv's is what ``builder_settings["repair"]["tools"]``
    says; the front end's sdists are ``builder_settings["frontend"]``.
    """
    settings = record.builder_settings
    repair_entry = settings.get("repair")
    if not isinstance(repair_entry, dict):
        repair_entry = {}
    repair = Counter(str(t.get("sha256")) for t in repair_entry.get("tools") or []
                     if isinstance(t, dict))
    frontend = {str(p.get("sdist")) for p in settings.get("frontend") or []
                if isinstance(p, dict)}
    found: dict[tuple[str, str], tuple[InstalledTool, set[str]]] = {}
    for tool in record.build_tools:
        if tool.filename in frontend:
            environment = "frontend"
        elif repair[tool.sha256] > 0:
            repair[tool.sha256] -= 1
            environment = "repair"
        else:
            environment = "build"
        found.setdefault((tool.filename, tool.sha256), (tool, set()))[1].add(environment)
    return [Tool(tool, tuple(sorted(environments)))
            for tool, environments in found.values()]


def subject(record: BuildRecord) -> list[dict[str, Any]]:
    return [{"name": record.wheel_filename, "digest": {"sha256": record.wheel_sha256}}]


def external_parameters(record: BuildRecord) -> dict[str, Any]:
    src = record.source
    params: dict[str, Any] = {
        "recipe": {"name": record.recipe_name, "digest": split_digest(record.recipe_digest)},
        "source": {
            "name": canonicalize_name(src.name),
            "version": src.version,
            "filename": src.filename,
            "url": src.url,
            "digest": {"sha256": src.sha256},
            "size": src.size,
        },
    }
    if record.patches:
        params["patches"] = record.patches
    return params


def internal_parameters(record: BuildRecord) -> dict[str, Any]:
    return {"builderImage": record.builder_image, "builder": record.builder_settings}


def resolved_dependencies(record: BuildRecord) -> list[dict[str, Any]]:
    src = record.source
    deps: list[dict[str, Any]] = [
        {
            "uri": src.url,
            "name": src.filename,
            "digest": {"sha256": src.sha256},
            "annotations": {"role": "source"},
        }
    ]
    if record.upstream_provenance_sha256:
        deps.append(
            {
                "name": f"{src.filename}.provenance",
                "digest": {"sha256": record.upstream_provenance_sha256},
                "mediaType": PEP740_MEDIA_TYPE,
                "annotations": {"role": "upstream-provenance"},
            }
        )
    deps.append(
        {
            "uri": docker_purl(record.builder_image),
            "name": record.builder_image,
            "digest": split_digest(record.builder_image_id),
            "annotations": {"role": "builder-image", "digestOf": "image-id"},
        }
    )
    for entry in sorted(distinct_tools(record), key=lambda t: (
            canonicalize_name(t.tool.name), t.tool.version, t.tool.filename, t.tool.sha256)):
        tool = entry.tool
        deps.append(
            {
                "uri": pypi_purl(tool.name, tool.version, tool.filename),
                "name": tool.filename,
                "digest": {"sha256": tool.sha256},
                "annotations": {"role": "build-tool", "environments": list(entry.environments)},
            }
        )
    deps.extend(system_dependencies(record))
    deps.extend(repair_dependencies(record))
    deps.extend(interpreter_dependencies(record))
    return unique_materials(deps)


def interpreter_dependencies(record: BuildRecord) -> list[dict[str, Any]]:
    """The CPython the factory built and mounted for the build (host-known), and the
    Debian source tarball it was built from; none for the builder image's own python3
    (the image's digest and dpkg list name it)."""
    built = record.builder_settings.get("interpreter")
    source = built.get("source") if isinstance(built, dict) else None
    if not isinstance(built, dict) or not isinstance(source, dict) \
            or not isinstance(built.get("tree_sha256"), str):
        return []
    return [
        _debian_source(source, "interpreter-source"),
        {"name": f"cpython {built.get('version')} {built.get('prefix')}",
         "digest": {"sha256": built["tree_sha256"]},
         "annotations": {"role": "interpreter", "builtBy": "factory",
                         "digestOf": "the tree's manifest (every file's path, mode and sha256)",
                         "mountedAt": str(built.get("prefix"))}},
    ]


def _debian_source(source: dict[str, Any], role: str) -> dict[str, Any]:
    """The material of a Debian source tarball a tool the factory built came from."""
    package, version = str(source.get("package")), str(source.get("version"))
    return {"uri": PackageURL(type="deb", namespace="debian", name=package, version=version,
                              qualifiers={"arch": "source"}).to_string(),
            "name": str(source.get("filename")), "digest": {"sha256": str(source.get("sha256"))},
            "annotations": {"role": role, "suite": str(source.get("suite"))}}


def repair_dependencies(record: BuildRecord) -> list[dict[str, Any]]:
    """The patchelf the factory built and mounted for the repair (host-known), and the
    Debian source tarball it was built from, when the record's repair had one."""
    repair = record.builder_settings.get("repair")
    built = repair.get("patchelf_build") if isinstance(repair, dict) else None
    source = built.get("source") if isinstance(built, dict) else None
    if not isinstance(built, dict) or not isinstance(source, dict):
        return []
    return [
        _debian_source(source, "repair-tool-source"),
        {"name": f"patchelf {built.get('version')}",
         "digest": {"sha256": str(built.get("sha256"))},
         "annotations": {"role": "repair-tool", "builtBy": "factory",
                         "mountedAt": str(built.get("mounted_at"))}},
    ]


def unique_materials(deps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each material once: by name and digest (by URI when it has no digest). One file
    in two roles (packaging's sdist is the source of its own wheel and, unpacked, the
    front end that builds it) becomes one entry whose ``roles`` annotation names both;
    ``role`` stays the first one's."""
    merged: dict[str, dict[str, Any]] = {}
    for dep in deps:
        key = json.dumps([dep.get("name"), dep["digest"]] if dep.get("digest")
                         else [dep.get("uri")], sort_keys=True)
        first = merged.setdefault(key, dep)
        if first is dep:
            continue
        notes, more = first.setdefault("annotations", {}), dep.get("annotations", {})
        roles = {str(r) for r in [*notes.get("roles", []), notes.get("role"), more.get("role"),
                                  *more.get("roles", [])] if r}
        for name, value in more.items():
            notes.setdefault(name, value)
        if len(roles) > 1:
            notes["roles"] = sorted(roles)
        for name, value in dep.items():
            first.setdefault(name, value)  # a uri or media type only the second one had
    return list(merged.values())


def system_dependencies(record: BuildRecord) -> list[dict[str, Any]]:
    """The recipe's Debian packages at the exact versions the builder image held (the
    image itself is a dependency above, by its ID)."""
    return [
        {
            "uri": package.purl(),
            "name": f"{package.name}={package.version}",
            "annotations": {"role": "system-package", "image": record.builder_image_id},
        }
        for package in sorted({p.name: p for p in record.system_packages}.values(),
                              key=lambda p: p.name)
    ]


def allowance_byproducts(allowances: Sequence[Allowance]) -> list[dict[str, Any]]:
    """Files admitted only by a recipe allowance (factory.admission): an auditor sees each."""
    return [
        {
            "name": f"{a.location}:{a.path}",
            "digest": {"sha256": a.sha256},
            "annotations": {"role": "allowance", "rule": a.rule, "allowedBy": a.allowed_by,
                            "location": a.location, "what": a.what},
        }
        for a in allowances
    ]


def run_details(record: BuildRecord, settings: Settings,
                allowances: Sequence[Allowance] = ()) -> dict[str, Any]:
    return {
        "builder": {"id": builder_id(settings), "version": {"artifact-factory": __version__}},
        "metadata": {
            "invocationId": record.invocation_id,
            "startedOn": record.started_on,
            "finishedOn": record.finished_on,
        },
        "byproducts": [
            {
                "name": record.log_filename,
                "digest": {"sha256": record.log_sha256},
                "mediaType": "text/plain",
                "annotations": {"role": "build-log"},
            },
            {"name": "network", "annotations": {"role": "isolation", "mode": record.network_mode}},
            *allowance_byproducts(allowances),
        ],
    }


def builder_id(settings: Settings) -> str:
    """Our builder.id: the signing identity of the control plane (see docs)."""
    return settings.identity


def build_statement(record: BuildRecord, settings: Settings,
                    allowances: Sequence[Allowance] = ()) -> dict[str, Any]:
    """The SLSA v1 provenance Statement for ``record``'s wheel (unsigned)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": subject(record),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external_parameters(record),
                "internalParameters": internal_parameters(record),
                "resolvedDependencies": resolved_dependencies(record),
            },
            "runDetails": run_details(record, settings, allowances),
        },
    }
