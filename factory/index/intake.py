"""What a publish is given, checked before anything is placed in the index.

The wheel's name and core metadata must agree; every required sidecar must be
there; the provenance must be a PEP 740 object; the build record gives the facts
a page shows (builder image, finish time, the sdist), and the first attestation's
Fulcio certificate names who signed it. Each refusal is one PublishError naming
the file.
"""

from __future__ import annotations

import base64
import json
import zipfile
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from cryptography import x509
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from factory.errors import PublishError
from factory.index.records import SIDECAR_SUFFIXES, Sidecars, normalize

# Fulcio certificate extensions naming the OIDC issuer (v2 is DER-encoded).
_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
# The build record's facts kept in the index record (and shown on the project page).
_BUILD_FACTS = ("finished_on", "builder_image", "builder_image_id", "invocation_id",
                "recipe_name", "network_mode", "source")


def parse_wheel_name(wheel: Path) -> tuple[str, str]:
    """(normalized project, version) from the wheel's file name."""
    try:
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as exc:
        raise PublishError(f"{wheel.name} is not a valid wheel file name ({exc})") from None
    return str(name), str(version)


def check_sidecars(wheel: Path, sidecars: dict[str, Path], required: frozenset[str]) -> None:
    if not wheel.is_file():
        raise PublishError(f"wheel {wheel} does not exist")
    unknown = sorted(set(sidecars) - set(SIDECAR_SUFFIXES))
    if unknown:
        raise PublishError(
            f"unknown sidecar kind(s) {', '.join(unknown)} for {wheel.name}",
            f"known kinds: {', '.join(sorted(SIDECAR_SUFFIXES))}",
        )
    missing = sorted(required - set(sidecars))
    if missing:
        raise PublishError(
            f"{wheel.name} lacks its {', '.join(missing)}: the index never shows a wheel "
            "without its attestations",
            "run the attest and sign stages first",
        )
    for kind, path in sidecars.items():
        ok = path.is_dir() if Sidecars.is_directory(kind) else path.is_file()
        if not ok:
            raise PublishError(f"{kind} sidecar {path} for {wheel.name} does not exist")


def read_core_metadata(wheel: Path) -> bytes:
    """The wheel's ``*.dist-info/METADATA`` bytes (served as PEP 658 metadata)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [
                n
                for n in archive.namelist()
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            if len(names) != 1:
                raise PublishError(f"{wheel.name} has {len(names)} .dist-info/METADATA files")
            return archive.read(names[0])
    except zipfile.BadZipFile:
        raise PublishError(f"{wheel.name} is not a zip archive") from None


def check_metadata(
    wheel: Path, metadata: bytes, project: str, version: str
) -> tuple[str, str | None]:
    """(display name, Requires-Python) from METADATA that names this project and version."""
    headers = BytesHeaderParser().parsebytes(metadata)
    name, meta_version = headers.get("Name"), headers.get("Version")
    if not name or normalize(name) != project:
        raise PublishError(f"{wheel.name}: METADATA names project {name!r}, not {project!r}")
    if not meta_version or Version(meta_version) != Version(version):
        raise PublishError(f"{wheel.name}: METADATA version {meta_version!r} != {version!r}")
    requires = headers.get("Requires-Python")
    return str(name), (str(requires).strip() if requires else None)


def read_provenance(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise PublishError(f"provenance {path} is not JSON") from None
    if (
        not isinstance(data, dict)
        or data.get("version") != 1
        or not isinstance(data.get("attestation_bundles"), list)
    ):
        raise PublishError(
            f"provenance {path} is not a PEP 740 provenance object",
            'expected {"version": 1, "attestation_bundles": [...]}',
        )
    return data


def built_from(build_record: Path | None, given: dict[str, Any] | None) -> dict[str, Any]:
    """What the wheel was built from: the build record's facts, then the caller's."""
    info: dict[str, Any] = {}
    if build_record is not None:
        try:
            data = json.loads(build_record.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise PublishError(f"build record {build_record} is not JSON") from None
        info.update((key, data[key]) for key in _BUILD_FACTS if key in data)
    info.update(given or {})
    return info


def signer_of(provenance: dict[str, Any] | None) -> dict[str, str] | None:
    """The signing identity in the first attestation's certificate, if readable."""
    if not provenance:
        return None
    for bundle in provenance["attestation_bundles"]:
        for attestation in bundle.get("attestations", []):
            cert_b64 = attestation.get("verification_material", {}).get("certificate")
            if cert_b64:
                found = _identity_of(cert_b64)
                if found:
                    return found
        publisher = bundle.get("publisher")
        if isinstance(publisher, dict) and publisher.get("kind"):
            return {"identity": json.dumps(publisher, sort_keys=True), "issuer": ""}
    return None


def _identity_of(cert_b64: str) -> dict[str, str] | None:
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(cert_b64))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.UniformResourceIdentifier) or san.get_values_for_type(
            x509.RFC822Name
        )
    except (ValueError, x509.ExtensionNotFound):
        return None
    if not names:
        return None
    return {"identity": names[0], "issuer": _issuer_of(cert)}


def _issuer_of(cert: x509.Certificate) -> str:
    for oid in (_ISSUER_V2, _ISSUER_V1):
        try:
            raw = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        value = raw.value if isinstance(raw, x509.UnrecognizedExtension) else b""
        if oid == _ISSUER_V2 and len(value) > 2 and value[0] == 0x0C:
            value = value[2:]  # DER UTF8String: tag, short length, text
        return value.decode("utf-8", "replace")
    return ""
