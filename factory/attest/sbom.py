"""CycloneDX 1.6 SBOM of one wheel, with the build environment as ``formulation``.

The BOM is built with cyclonedx-python-lib from what the wheel itself says (its
core metadata and its files) and from the build record. The library has no
model for ``formulation`` (CycloneDX 1.5+), so that part is added to the JSON
and the whole document is checked against the strict 1.6 schema before anyone
sees it.

What a scanner matches: the wheel's dependencies carry versioned purls
(``pkg:pypi/NAME@VERSION``, the version the approved set pins, the requirement's
range kept as a property); the wheel names its authors and supplier from its core
metadata; the formulation holds the builder image's whole dpkg list
(``pkg:deb/debian/NAME@VERSION?arch=...``), its operating system and interpreter;
libraries auditwheel grafted say so, with their Debian purl marked in
``evidence.identity`` as compared with the builder image's file by the host, or as
inferred from the file name only (the build chose both name and bytes). The same
inputs always give the same bytes.

Every ``bom-ref`` names one thing once in the whole document: a file the build
record lists twice (a wheel in both the build and the repair venv), a library the
wheel holds twice, an allowance listed twice each become one entry that keeps what
each said (``unique_refs``); two different things never share a reference.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from email.utils import parseaddr
from datetime import datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.contrib.this.builders import this_component
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentScope, ComponentType
from cyclonedx.model.component_evidence import (
    AnalysisTechnique,
    ComponentEvidence,
    Identity,
    IdentityField,
    Method,
)
from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
from cyclonedx.model.license import License, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL
from packaging.metadata import RawMetadata, parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from factory import __version__
from factory._internal.atomic import canonical_json, sha256_file, write_bytes
from factory.attest.provenance import (
    STATEMENT_TYPE,
    distinct_tools,
    docker_purl,
    pypi_purl,
    split_digest,
)
from factory.attest.types import SBOM_PREDICATE_TYPE as PREDICATE_TYPE
from factory.build.record import BuildRecord
from factory.errors import BuildError, VerificationError, one_line
from factory.index.records import Sidecars

if TYPE_CHECKING:

    from factory.admission.model import Allowance

PROP = "artifact-factory"  # our namespace for CycloneDX property names
# Shared libraries vendored into a wheel by auditwheel (pkg.libs/), delocate
# (.dylibs/) or delvewheel (pkg.libs/ with .dll); extension modules are not these.
_LIB_DIR = re.compile(r"(^|/)[^/]*\.(libs|dylibs)/")
_SHARED_LIB = re.compile(r"(^|/)lib[^/]*\.so(\.\d+)*$|\.(so(\.\d+)*|dylib|dll)$")
# The version the approved set pins for a requirement (name, its specifiers), or None.
Pins = Callable[[str, SpecifierSet], "str | None"]
# An e-mail address the schema's idn-email format takes, plainly (anything else is
# kept as a name: an SBOM must never fail on what upstream wrote in its metadata).
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}"
                    r"(\.[A-Za-z0-9-]{1,63}){1,8}")
MAX_CONTACTS = 10  # people named in Author/Maintainer fields, each
MAX_CONTACT_NAME = 200


def sbom_path_for(wheel: Path) -> Path:
    return Sidecars(wheel).path("sbom")


# -- reading the wheel --------------------------------------------------------
def read_core_metadata(wheel: Path) -> RawMetadata:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(names) != 1:
            raise BuildError(f"{wheel.name}: expected one .dist-info/METADATA, found {len(names)}")
        raw, _unparsed = parse_email(zf.read(names[0]))
    if "name" not in raw or "version" not in raw:
        raise BuildError(f"{wheel.name}: core metadata lacks Name or Version")
    return raw


def bundled_libraries(wheel: Path) -> list[tuple[str, str]]:
    """(path in wheel, sha256) of every vendored shared library."""
    found = []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir() or not _SHARED_LIB.search(name):
                continue
            if _LIB_DIR.search(name) or PurePosixPath(name).name.startswith("lib"):
                found.append((name, hashlib.sha256(zf.read(info)).hexdigest()))
    return sorted(found)


# -- the model ------------------------------------------------------------------
def _licenses(raw: RawMetadata) -> list[License]:
    factory = LicenseFactory()
    if expression := raw.get("license_expression"):
        return [LicenseExpression(expression)]
    text = (raw.get("license") or "").strip()
    if text and "\n" not in text and len(text) <= 100:  # a name, not a licence text
        return [factory.make_from_string(text)]
    names = [
        c.split("::")[-1].strip() for c in raw.get("classifiers", []) if c.startswith("License ::")
    ]
    return [factory.make_with_name(n) for n in names]


def _sha256(hexdigest: str) -> HashType:
    return HashType(alg=HashAlgorithm.SHA_256, content=hexdigest)


def contacts(names: str | None, emails: str | None) -> list[OrganizationalContact]:
    """The people of a core metadata pair (Author and Author-email, or Maintainer and
    Maintainer-email): ``Name <address>`` entries parsed, bounded, each once, in order."""
    found: list[tuple[str | None, str | None]] = []
    for entry in (emails or "").split(",")[:MAX_CONTACTS]:
        name, address = parseaddr(entry)
        name = one_line(name, MAX_CONTACT_NAME) if name.strip() else ""
        if _EMAIL.fullmatch(address):
            found.append((name or None, address))
        elif entry.strip():  # not an address: the whole entry is a name
            found.append((one_line(entry.strip(), MAX_CONTACT_NAME), None))
    for name in re.split(r",|\band\b", names or "") if names and "\n" not in names else []:
        name = one_line(name.strip(), MAX_CONTACT_NAME)
        if name and not any(n == name for n, _ in found):
            found.append((name, None))
    unique = list(dict.fromkeys(found))[:MAX_CONTACTS]
    return [OrganizationalContact(name=n, email=e) for n, e in unique]


def _people(raw: RawMetadata) -> tuple[list[OrganizationalContact], OrganizationalEntity | None]:
    """The authors (Author, Author-email) and the supplier (the maintainers, else the
    authors) the core metadata names."""
    authors = contacts(raw.get("author"), raw.get("author_email"))
    maintainers = contacts(raw.get("maintainer"), raw.get("maintainer_email")) or authors
    if not maintainers:
        return authors, None
    first = maintainers[0]
    return authors, OrganizationalEntity(name=first.name or first.email, contacts=maintainers)


def _root_component(wheel: Path, raw: RawMetadata, sha256: str) -> Component:
    purl = PackageURL.from_string(pypi_purl(raw["name"], raw["version"], wheel.name))
    authors, supplier = _people(raw)
    return Component(
        authors=authors,
        supplier=supplier,
        type=ComponentType.LIBRARY,
        name=canonicalize_name(raw["name"]),
        version=raw["version"],
        description=raw.get("summary"),
        bom_ref=purl.to_string(),
        purl=purl,
        hashes=[_sha256(sha256)],
        licenses=_licenses(raw),
    )


def pinned_version(pins: Pins | None, name: str, reqs: Sequence[Requirement]) -> str | None:
    """The version the approved set pins for ``name``: the newest that meets every
    requirement line, else the newest that meets any one; None when nothing pins one."""
    if pins is None:
        return None
    both = SpecifierSet(",".join(str(r.specifier) for r in reqs if str(r.specifier)))
    for spec in [both, *(r.specifier for r in reqs)]:
        if (version := pins(name, spec)) is not None:
            return version
    return None


def _requirement_components(raw: RawMetadata, pins: Pins | None = None) -> list[Component]:
    lines: dict[str, list[Requirement]] = defaultdict(list)
    for line in raw.get("requires_dist", []):
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise BuildError(f"invalid Requires-Dist {one_line(repr(line), 120)}: "
                             f"{one_line(str(exc), 120)}") from None
        lines[canonicalize_name(req.name)].append(req)
    components = []
    for name, reqs in sorted(lines.items()):
        # only wanted through an extra -> optional; otherwise always installed
        optional = all(r.marker is not None and "extra" in str(r.marker) for r in reqs)
        props = [Property(name=f"{PROP}:requirement", value=str(r)) for r in reqs]
        version = pinned_version(pins, name, reqs)
        if version is not None:
            props.append(Property(name=f"{PROP}:version-from", value="approved set"))
        components.append(
            Component(
                type=ComponentType.LIBRARY,
                name=name,
                version=version,
                bom_ref=f"requirement:{name}",
                purl=PackageURL(type="pypi", name=name, version=version),
                scope=ComponentScope.OPTIONAL if optional else ComponentScope.REQUIRED,
                properties=props,
            )
        )
    return components


def _grafted_by(record: BuildRecord) -> list[Property]:
    """What the record says grafted the wheel's libraries (auditwheel repair), if it did."""
    repair = record.builder_settings.get("repair")
    if not isinstance(repair, dict) or repair.get("action") != "repaired":
        return []
    props = [Property(name=f"{PROP}:grafted-by", value=one_line(str(repair.get("tool")), 60))]
    if isinstance(repair.get("policy"), str):
        props.append(Property(name=f"{PROP}:repair-policy", value=one_line(repair["policy"], 60)))
    return props


def _grafted_packages(record: BuildRecord) -> dict[str, dict[str, str]]:
    """Wheel path -> the Debian package a grafted library came from, as the host
    recorded it at repair time (``repair.grafted``): name, version, purl, original file,
    and ``verified`` (the image's file it was compared with) only when the host compared
    the bytes (``repair.verify_grafted``); without it the package is only what the
    grafted file's NAME says, which the build chose."""
    repair = record.builder_settings.get("repair")
    entries = repair.get("grafted") if isinstance(repair, dict) else None
    found = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in
                                           ("path", "package", "version", "purl", "library")):
            found[entry["path"]] = {k: one_line(entry[k], 200) for k in
                                    ("package", "version", "purl", "library")}
            verified = entry.get("verified")
            if (isinstance(verified, dict) and isinstance(verified.get("image_file"), str)
                    and isinstance(verified.get("image_file_sha256"), str)):
                found[entry["path"]]["verified"] = one_line(verified["image_file"], 200)
                found[entry["path"]]["verified_sha256"] = one_line(
                    verified["image_file_sha256"], 64)
    return found


# What the SBOM says of a grafted library's Debian identity: inferred from the file's
# name (the build chose the name and the bytes: it ran the repair) unless the host
# compared the bytes with the image's own file (threat model, section 15).
INFERRED = "inferred from file name, bytes not compared with the image's file"
LOW_CONFIDENCE = Decimal("0.25")


def _identity(package: dict[str, str]) -> tuple[ComponentEvidence, Property]:
    """The evidence and the ``identity`` property for a grafted library's purl."""
    if "verified" in package:
        image_file = package["verified"]
        methods = [
            Method(technique=AnalysisTechnique.HASH_COMPARISON, confidence=Decimal(1),
                   value=f"the grafted name's 8 hex digits are the sha256 prefix of the "
                         f"image's {image_file} (sha256 {package['verified_sha256']})"),
            Method(technique=AnalysisTechnique.BINARY_ANALYSIS, confidence=Decimal(1),
                   value="ELF sections equal the image's file's, but for what patchelf "
                         "rewrites (.dynamic, .dynstr, headers)"),
        ]
        said = (f"verified: bytes compared with the image's {image_file} (sha256 "
                f"{package['verified_sha256']}), ELF sections equal but for what patchelf "
                "rewrites")
        confidence = Decimal(1)
    else:
        methods = [Method(technique=AnalysisTechnique.FILENAME, confidence=LOW_CONFIDENCE,
                          value=package["library"])]
        said, confidence = INFERRED, LOW_CONFIDENCE
    evidence = ComponentEvidence(identity=[Identity(
        field=IdentityField.PURL, confidence=confidence,
        concluded_value=package["purl"], methods=methods)])
    return evidence, Property(name=f"{PROP}:identity", value=said)


def _deb_purl(text: str) -> PackageURL | None:
    try:
        found = PackageURL.from_string(text)
    except ValueError:
        return None
    return found if found.type == "deb" else None


def _library_components(wheel: Path, grafted: Sequence[Property] = (),
                        packages: dict[str, dict[str, str]] | None = None) -> list[Component]:
    # One component per path: a wheel (a zip) may hold two members of one name, and
    # the library would give the second a random reference (the SBOM would differ
    # from run to run): one component with both digests instead.
    digests: dict[str, list[str]] = defaultdict(list)
    for path, digest in bundled_libraries(wheel):
        if digest not in digests[path]:
            digests[path].append(digest)
    packages = packages or {}
    components = []
    for path, found in sorted(digests.items()):
        package = packages.get(path)
        identity = _identity(package) if package is not None else None
        components.append(Component(
            type=ComponentType.LIBRARY,
            name=PurePosixPath(path).name,
            bom_ref=f"bundled:{path}",
            # The file as the wheel holds it: verified (the host hashed it).
            hashes=[_sha256(d) for d in found],
            # A grafted library is a Debian package's file, patched by auditwheel: the
            # package by purl (what advisories name), with how that was concluded
            # (evidence.identity: from the file name only, unless the host compared it).
            version=package["version"] if package is not None else None,
            purl=_deb_purl(package["purl"]) if package is not None else None,
            evidence=identity[0] if identity is not None else None,
            properties=[Property(name=f"{PROP}:wheel-path", value=path),
                        *(grafted if _LIB_DIR.search(path) else ()),
                        *([Property(name=f"{PROP}:debian-package", value=package["package"]),
                           Property(name=f"{PROP}:grafted-from", value=package["library"]),
                           identity[1]]
                          if package is not None and identity is not None else [])],
        ))
    return components


def _bom(wheel: Path, record: BuildRecord, raw: RawMetadata, pins: Pins | None = None) -> Bom:
    bom = Bom(
        serial_number=uuid.uuid5(
            uuid.NAMESPACE_URL, f"{record.wheel_sha256}/{record.invocation_id}"
        )
    )
    bom.metadata.timestamp = datetime.fromisoformat(record.finished_on.replace("Z", "+00:00"))
    root = _root_component(wheel, raw, record.wheel_sha256)
    bom.metadata.component = root
    factory_tool = Component(
        type=ComponentType.APPLICATION,
        name="artifact-factory",
        version=__version__,
        bom_ref="tool:artifact-factory",
    )
    bom.metadata.tools.components.update([factory_tool, this_component()])
    requirements = _requirement_components(raw, pins)
    libraries = _library_components(wheel, _grafted_by(record), _grafted_packages(record))
    bom.components.update(requirements + libraries)
    bom.register_dependency(root, requirements + libraries)
    for component in requirements + libraries:
        bom.register_dependency(component)
    return bom


# -- formulation (added to the JSON) ---------------------------------------------
def _hashes(digest: dict[str, str]) -> list[dict[str, str]]:
    names = {"sha256": "SHA-256", "sha512": "SHA-512", "sha384": "SHA-384"}
    return [{"alg": names[a], "content": v} for a, v in digest.items() if a in names]


def allowance_components(allowances: Sequence[Allowance]) -> list[dict[str, Any]]:
    """Files admitted only by a recipe allowance (factory.admission), as file components."""
    return [
        {
            "type": "file",
            "bom-ref": f"allowance:{a.location}:{a.path}",
            "name": a.path,
            "hashes": _hashes({"sha256": a.sha256}),
            "properties": [
                {"name": f"{PROP}:allowance", "value": a.rule},
                {"name": f"{PROP}:allowed-by", "value": a.allowed_by},
                {"name": f"{PROP}:location", "value": a.location},
                {"name": f"{PROP}:what", "value": a.what},
            ],
        }
        for a in allowances
    ]


def _tool_components(record: BuildRecord) -> list[dict[str, Any]]:
    """Each tool file once (``distinct_tools``), with the environments that held it."""
    tools = sorted(distinct_tools(record), key=lambda t: (t.tool.filename, t.tool.sha256))
    names = Counter(t.tool.filename for t in tools)
    components = []
    for entry in tools:
        t = entry.tool
        ref = f"build-tool:{t.filename}"
        if names[t.filename] > 1:  # two different files of one name: both, apart
            ref += f"@sha256:{t.sha256}"
        components.append({
            "type": "library",
            "bom-ref": ref,
            "name": canonicalize_name(t.name),
            "version": t.version,
            "purl": pypi_purl(t.name, t.version, t.filename),
            "hashes": _hashes({"sha256": t.sha256}),
            "properties": [{"name": f"{PROP}:environment", "value": e}
                           for e in entry.environments],
        })
    return components


def system_components(record: BuildRecord) -> list[dict[str, Any]]:
    """The builder image's Debian packages (its whole dpkg list, when the record has it),
    at the versions it held; those the recipe asked for say so."""
    asked = {p.name for p in record.system_packages}
    packages = {p.name: p for p in [*record.image_packages, *record.system_packages]}
    return [
        {
            "type": "library",
            "bom-ref": f"system-package:{package.name}",
            "name": package.name,
            "version": package.version,
            "purl": package.purl(),
            "properties": [{"name": f"{PROP}:held-by-image", "value": record.builder_image_id}]
            + ([{"name": f"{PROP}:asked-by-recipe", "value": record.recipe_name}]
               if package.name in asked else []),
        }
        for package in sorted(packages.values(), key=lambda p: p.name)
    ]


_INTERPRETER = re.compile(r"python3\.\d+")  # Debian's interpreter package: python3.11


def platform_components(record: BuildRecord) -> list[dict[str, Any]]:
    """The builder image's operating system and the interpreter the build ran, from
    its dpkg list: nothing when the record has none."""
    packages = {p.name: p for p in record.image_packages}
    found: list[dict[str, Any]] = []
    if packages:
        distro = next(iter(packages.values())).distro  # debian-12
        name, _, release = distro.partition("-")
        found.append({"type": "operating-system", "bom-ref": "builder-os", "name": name,
                      "version": release, "properties": [
                          {"name": f"{PROP}:held-by-image", "value": record.builder_image_id}]})
    for name in sorted(n for n in packages if _INTERPRETER.fullmatch(n)):
        package = packages[name]
        upstream = package.version.partition(":")[2] or package.version  # drop an epoch
        upstream = upstream.rsplit("-", 1)[0]  # and the Debian revision
        found.append({
            "type": "application", "bom-ref": f"interpreter:{name}", "name": "cpython",
            "version": upstream,
            "purl": PackageURL(type="generic", name="cpython", version=upstream).to_string(),
            "properties": [{"name": f"{PROP}:debian-package", "value": package.purl()}],
        })
    found.extend(_built_interpreter(record))
    return found


def _built_interpreter(record: BuildRecord) -> list[dict[str, Any]]:
    """The CPython the factory built from Debian's source and the build ran, when it was
    not the image's own python3: version, tree digest and the tarball it came from."""
    built = record.builder_settings.get("interpreter")
    source = built.get("source") if isinstance(built, dict) else None
    if not isinstance(built, dict) or not isinstance(source, dict) \
            or not isinstance(built.get("tree_sha256"), str):
        return []
    version = one_line(str(built.get("version")), 40)
    tag = one_line(str(built.get("tag")), 20)
    deb = PackageURL(type="deb", namespace="debian", name=str(source.get("package")),
                     version=str(source.get("version")), qualifiers={"arch": "source"})
    return [{
        "type": "application", "bom-ref": f"interpreter:{tag}", "name": "cpython",
        "version": version,
        "purl": PackageURL(type="generic", name="cpython", version=version).to_string(),
        "properties": [
            {"name": f"{PROP}:built-by", "value": "factory"},
            {"name": f"{PROP}:ran-the-build", "value": "true"},
            {"name": f"{PROP}:prefix", "value": one_line(str(built.get("prefix")), 80)},
            {"name": f"{PROP}:tree-sha256", "value": one_line(built["tree_sha256"], 64)},
            {"name": f"{PROP}:debian-source", "value": deb.to_string()},
            {"name": f"{PROP}:source-tarball", "value": one_line(
                f"{source.get('filename')} sha256:{source.get('sha256')}", 200)},
        ]}]


def formulation(record: BuildRecord, root_ref: str,
                allowances: Sequence[Allowance] = ()) -> list[dict[str, Any]]:
    src = record.source
    source_ref = f"source:{src.filename}"
    image = {
        "type": "container",
        "bom-ref": "builder-image",
        "name": record.builder_image,
        "purl": docker_purl(record.builder_image),
        "hashes": _hashes(split_digest(record.builder_image_id)),
        "properties": [{"name": f"{PROP}:digest-of", "value": "image-id"}],
    }
    source = {
        "type": "library",
        "bom-ref": source_ref,
        "name": canonicalize_name(src.name),
        "version": src.version,
        "purl": pypi_purl(src.name, src.version, src.filename),
        "hashes": _hashes({"sha256": src.sha256}),
        "externalReferences": [{"type": "distribution", "url": src.url}],
    }
    tools = _tool_components(record)
    packages = system_components(record)
    platform = platform_components(record)
    workflow = {
        "bom-ref": f"workflow:{record.invocation_id}",
        "uid": record.invocation_id,
        "name": f"build {record.wheel_filename}",
        "taskTypes": ["build"],
        "timeStart": record.started_on,
        "timeEnd": record.finished_on,
        "inputs": [{"resource": {"ref": source_ref}}, {"resource": {"ref": "builder-image"}}]
        + [{"resource": {"ref": t["bom-ref"]}} for t in [*platform, *tools, *packages]],
        "outputs": [{"type": "artifact", "resource": {"ref": root_ref}}],
        "properties": [
            {"name": f"{PROP}:network-mode", "value": record.network_mode},
            {"name": f"{PROP}:build-log-sha256", "value": record.log_sha256},
            {"name": f"{PROP}:recipe", "value": record.recipe_name},
        ],
    }
    return [
        {
            "bom-ref": f"formula:{record.invocation_id}",
            "components": [image, *platform, source, *tools, *packages,
                           *allowance_components(allowances)],
            "workflows": [workflow],
        }
    ]


def validate(sbom: dict[str, Any]) -> None:
    """Raise VerificationError unless ``sbom`` is valid CycloneDX 1.6 JSON; its message
    is one line: where in the document, and what is wrong there.

    The validator `factory verify` uses (factory.verify.sbom): the library's strict
    schema and format checks, compiled once per process, with ASCII IRIs checked by the
    RFC 3986 regular expression instead of an Earley parse each (about 1 s an SBOM);
    the result is the library's."""
    from factory.verify.sbom import strict_validator

    document = json.loads(json.dumps(sbom))  # what is written: JSON types only
    error = next(iter(strict_validator().iter_errors(document)), None)
    if error is not None:
        raise VerificationError(f"SBOM is not valid CycloneDX 1.6: {schema_summary(error)}")


SUMMARY_LIMIT = 200  # characters of the schema's complaint quoted


def schema_summary(error: Any) -> str:
    """A jsonschema ValidationError in one line: its JSON path, and its message with the
    offending value (which jsonschema quotes whole: kilobytes) shortened."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                   for p in getattr(error, "absolute_path", ())) or "(root)"
    message = str(getattr(error, "message", error))
    instance = getattr(error, "instance", None)
    if instance is not None and message.startswith(repr(instance)):
        message = _describe(instance) + message[len(repr(instance)):]
    if getattr(error, "validator", None) == "uniqueItems" and isinstance(instance, list):
        message += f" (repeated: {_first_repeat(instance)})"
    return one_line(f"{path}: {message}", SUMMARY_LIMIT)


def _describe(value: Any) -> str:
    """A value named in a few words: its bom-ref or name, else its short repr."""
    if isinstance(value, dict):
        named = value.get("bom-ref") or value.get("name") or value.get("ref")
        return f"the object {named!r}" if named else f"an object with {len(value)} keys"
    if isinstance(value, list):
        return f"the array of {len(value)} items"
    return one_line(repr(value), 60)


def _first_repeat(items: list[Any]) -> str:
    seen: set[str] = set()
    for item in items:
        key = json.dumps(item, sort_keys=True, default=str)
        if key in seen:
            return _describe(item)
        seen.add(key)
    return "none found"


# -- one entry per bom-ref ------------------------------------------------------------
def unique_refs(doc: Any) -> Any:
    """``doc`` with, in every array, exact repeats dropped and objects of one
    ``bom-ref`` merged into the first (lists joined, objects merged, a differing
    value kept as an ``also-`` property): nothing any of them said is lost.

    Raises BuildError when one reference still names things in two places (two
    different things: a bug in how references are made, never to be papered over).
    """
    doc = _unique(doc)
    seen: set[str] = set()
    for ref in _refs(doc):
        if ref in seen:
            raise BuildError(f"the SBOM would name two things {one_line(ref, 120)!r}",
                             "a bug in the SBOM writer: report it with the build record")
        seen.add(ref)
    return doc


def _unique(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _unique(item) for key, item in value.items()}
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    by_ref: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for item in (_unique(v) for v in value):
        ref = item.get("bom-ref") if isinstance(item, dict) else None
        if isinstance(ref, str) and ref in by_ref:
            _merge(by_ref[ref], item)
            continue
        key = json.dumps(item, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        if isinstance(ref, str):
            by_ref[ref] = item
        out.append(item)
    return out


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        mine = into.get(key)
        if key not in into:
            into[key] = value
        elif mine == value:
            continue
        elif isinstance(mine, list) and isinstance(value, list):
            into[key] = _unique(mine + value)
        elif isinstance(mine, dict) and isinstance(value, dict):
            _merge(mine, value)
        else:  # two values of one field: the first stays, the other is said
            into["properties"] = _unique([*into.get("properties", []), {
                "name": f"{PROP}:also-{key}", "value": json.dumps(value, sort_keys=True)}])


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["bom-ref"]] if isinstance(value.get("bom-ref"), str) else []
        return own + [r for item in value.values() for r in _refs(item)]
    if isinstance(value, list):
        return [r for item in value for r in _refs(item)]
    return []


def build_sbom(wheel: Path, record: BuildRecord, allowances: Sequence[Allowance] = (),
               pins: Pins | None = None) -> dict[str, Any]:
    """The wheel's CycloneDX 1.6 SBOM as a JSON object, schema-validated.

    ``pins``: the version the approved set pins for a requirement (factory.lock's
    ``Lock.find``), so each dependency is a versioned purl; without it, unversioned."""
    actual = sha256_file(wheel)
    if actual != record.wheel_sha256:
        raise VerificationError(
            f"{wheel.name}: sha256 {actual} differs from the build record's {record.wheel_sha256}",
            "the wheel changed after it was built; rebuild it",
        )
    raw = read_core_metadata(wheel)
    bom = _bom(wheel, record, raw, pins)
    doc: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    doc["formulation"] = formulation(record, doc["metadata"]["component"]["bom-ref"],
                                     allowances)
    doc = unique_refs(doc)
    validate(doc)
    return doc


def sbom_bytes(sbom: dict[str, Any]) -> bytes:
    """The sidecar's exact bytes: the project's canonical JSON of the predicate."""
    return canonical_json(sbom).encode("utf-8")


def write_sbom(wheel: Path, sbom: dict[str, Any]) -> Path:
    path = sbom_path_for(wheel)
    write_bytes(path, sbom_bytes(sbom))
    return path


def sbom_statement(wheel: Path, sbom: dict[str, Any]) -> dict[str, Any]:
    """An unsigned in-toto Statement v1 carrying the SBOM as its predicate."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": wheel.name, "digest": {"sha256": sha256_file(wheel)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": sbom,
    }
