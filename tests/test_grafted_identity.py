"""A grafted library's Debian identity in the SBOM: inferred from its file name (the
build ran the repair and chose the name and the bytes) unless the host compared the
bytes with the image's own file (threat model, section 15). Fast: no docker."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from factory.attest.sbom import INFERRED, build_sbom, sbom_bytes, validate
from tests import factories
from tests.attest_fixtures import make_record

LIB = "tinypkg.libs/libssl-1234abcd.so.3"
PURL = "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"


def _graft(**extra: Any) -> dict[str, Any]:
    return {"path": LIB, "sha256": "a" * 64, "library": "libssl.so.3", "package": "libssl3",
            "version": "3.0.15-1~deb12u1", "purl": PURL, "found_by": "soname", **extra}


def _sbom(tmp_path: Path, graft: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    wheel = factories.wheel(tmp_path / "wheels", libs=(LIB,))
    record = replace(make_record(wheel, factories.sdist(tmp_path / "sources")),
                     builder_settings={"repair": {"tool": "auditwheel", "action": "repaired",
                                                  "grafted": [graft]}})
    document = build_sbom(wheel, record)
    assert sbom_bytes(document) == sbom_bytes(build_sbom(wheel, record))  # deterministic
    validate(document)  # the factory's validator (factory verify)
    library = JsonStrictValidator(SchemaVersion.V1_6)  # and the library's own
    assert library.validate_str(json.dumps(document)) is None
    [lib] = [c for c in document["components"] if c["bom-ref"] == f"bundled:{LIB}"]
    return document, lib


def _props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component["properties"]}


def test_a_grafted_library_named_after_a_debian_package_is_marked_inferred(
        tmp_path: Path) -> None:
    _, lib = _sbom(tmp_path, _graft())
    assert lib["purl"] == PURL  # what advisories match, still said...
    assert _props(lib)["artifact-factory:identity"] == INFERRED  # ...but as inferred
    [identity] = lib["evidence"]["identity"]
    assert identity["field"] == "purl" and identity["concludedValue"] == PURL
    assert identity["confidence"] < 0.5
    assert identity["methods"] == [{"technique": "filename", "confidence": 0.25,
                                    "value": "libssl.so.3"}]
    # The grafted file's own digest (what the wheel holds) is kept: that is verified.
    [digest] = lib["hashes"]
    assert digest["alg"] == "SHA-256"


def test_a_build_cannot_claim_verification_with_a_half_entry(tmp_path: Path) -> None:
    _, lib = _sbom(tmp_path, _graft(verified={"image_file": "/usr/lib/x/libssl.so.3"}))
    assert _props(lib)["artifact-factory:identity"] == INFERRED


def test_a_grafted_library_the_host_compared_is_marked_verified(tmp_path: Path) -> None:
    verified = {"image_file": "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                "image_file_sha256": "1234abcd" + "e" * 56}
    _, lib = _sbom(tmp_path, _graft(verified=verified))
    said = _props(lib)["artifact-factory:identity"]
    assert said.startswith("verified: ") and verified["image_file"] in said
    [identity] = lib["evidence"]["identity"]
    assert identity["confidence"] == 1 and identity["concludedValue"] == PURL
    assert sorted(m["technique"] for m in identity["methods"]) == ["binary-analysis",
                                                                   "hash-comparison"]
