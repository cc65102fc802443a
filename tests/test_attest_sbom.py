"""CycloneDX 1.6 SBOMs of wheels, with formulation, checked against the schema."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest

from factory._internal.atomic import canonical_json, sha256_file
from factory.attest import attest_wheel
from factory.attest.keys import init_keys
from factory.attest.sbom import (
    PREDICATE_TYPE,
    build_sbom,
    bundled_libraries,
    sbom_bytes,
    sbom_path_for,
    sbom_statement,
    validate,
)
from factory.build.record import BuildRecord, SystemPackage
from factory.config import load_settings
from factory.errors import VerificationError
from tests import factories
from tests.attest_fixtures import BUILDER_IMAGE_ID, TOOLS, make_record

REQUIRES = (
    "idna<4,>=2.5",
    "charset_normalizer<4,>=2",
    "PySocks!=1.5.7,>=1.5.6; extra == 'socks'",
)
LIB = "tinypkg.libs/libfoo-1234abcd.so.1.2"


def _sbom(tmp_path: Path, **wheel_args) -> tuple[Path, dict]:
    wheel = factories.wheel(tmp_path / "wheels", **wheel_args)
    record = make_record(wheel, factories.sdist(tmp_path / "sources"))
    return wheel, build_sbom(wheel, record)


def _components(sbom: dict) -> dict[str, dict]:
    return {c["bom-ref"]: c for c in sbom.get("components", [])}


def test_root_component_is_the_wheel(tmp_path: Path) -> None:
    wheel, sbom = _sbom(tmp_path, license="MIT OR Apache-2.0")
    assert sbom["specVersion"] == "1.6" and sbom["bomFormat"] == "CycloneDX"
    root = sbom["metadata"]["component"]
    assert root["name"] == "tinypkg" and root["version"] == "1.0.0"
    assert root["purl"] == f"pkg:pypi/tinypkg@1.0.0?file_name={wheel.name}"
    assert root["hashes"] == [{"alg": "SHA-256", "content": sha256_file(wheel)}]
    assert root["licenses"] == [{"expression": "MIT OR Apache-2.0"}]


def test_runtime_requirements_are_components_and_dependencies(tmp_path: Path) -> None:
    _, sbom = _sbom(tmp_path, requires=REQUIRES)
    comps = _components(sbom)
    assert comps["requirement:idna"]["scope"] == "required"
    assert comps["requirement:charset-normalizer"]["purl"] == "pkg:pypi/charset-normalizer"
    assert comps["requirement:pysocks"]["scope"] == "optional"  # only through an extra
    assert comps["requirement:idna"]["properties"] == [
        {"name": "artifact-factory:requirement", "value": "idna<4,>=2.5"}
    ]
    root_ref = sbom["metadata"]["component"]["bom-ref"]
    [root_dep] = [d for d in sbom["dependencies"] if d["ref"] == root_ref]
    assert set(root_dep["dependsOn"]) == {
        "requirement:idna",
        "requirement:charset-normalizer",
        "requirement:pysocks",
    }


def test_bundled_native_libraries_are_components(tmp_path: Path) -> None:
    wheel, sbom = _sbom(tmp_path, libs=(LIB, "tinypkg/_speedups.cpython-311-x86_64-linux-gnu.so"))
    [(path, digest)] = bundled_libraries(wheel)  # the extension module is not bundled
    lib = _components(sbom)[f"bundled:{LIB}"]
    assert path == LIB and lib["name"] == "libfoo-1234abcd.so.1.2"
    assert lib["hashes"] == [{"alg": "SHA-256", "content": digest}]


def test_pure_wheel_has_no_native_components(tmp_path: Path) -> None:
    _, sbom = _sbom(tmp_path)
    assert not [r for r in _components(sbom) if r.startswith("bundled:")]


def test_formulation_lists_image_source_and_build_tools(tmp_path: Path) -> None:
    _, sbom = _sbom(tmp_path)
    [formula] = sbom["formulation"]
    comps = {c["bom-ref"]: c for c in formula["components"]}
    image = comps["builder-image"]
    assert image["type"] == "container"
    assert image["hashes"] == [{"alg": "SHA-256", "content": BUILDER_IMAGE_ID[7:]}]
    for tool in TOOLS:
        entry = comps[f"build-tool:{tool.filename}"]
        assert entry["hashes"] == [{"alg": "SHA-256", "content": tool.sha256}]
        assert entry["version"] == tool.version
    assert comps["source:tinypkg-1.0.0.tar.gz"]["externalReferences"][0]["type"] == "distribution"
    [workflow] = formula["workflows"]
    assert workflow["outputs"] == [
        {"type": "artifact", "resource": {"ref": sbom["metadata"]["component"]["bom-ref"]}}
    ]
    props = {p["name"]: p["value"] for p in workflow["properties"]}
    assert props["artifact-factory:network-mode"] == "none"


def test_sbom_passes_the_strict_1_6_schema_and_broken_ones_fail(tmp_path: Path) -> None:
    _, sbom = _sbom(tmp_path, requires=REQUIRES, libs=(LIB,))
    validate(sbom)  # raises when invalid
    broken = copy.deepcopy(sbom)
    broken["formulation"][0]["workflows"][0].pop("taskTypes")
    with pytest.raises(VerificationError, match="CycloneDX 1.6"):
        validate(broken)
    broken = copy.deepcopy(sbom)
    broken["metadata"]["component"]["hashes"][0]["alg"] = "SHA-1024"
    with pytest.raises(VerificationError):
        validate(broken)


@pytest.mark.parametrize(
    ("metadata", "licenses"),
    [
        ((), None),  # nothing declared, nothing claimed
        (("License: BSD-3-Clause",), [{"license": {"id": "BSD-3-Clause"}}]),
        (("License: Some Custom Licence",), [{"license": {"name": "Some Custom Licence"}}]),
        (
            ("Classifier: License :: OSI Approved :: MIT License",),
            [{"license": {"name": "MIT License"}}],
        ),
    ],
)
def test_licence_without_expression_falls_back(tmp_path: Path, metadata, licenses) -> None:
    _, sbom = _sbom(tmp_path, license=None, metadata=metadata)
    assert sbom["metadata"]["component"].get("licenses") == licenses


def test_wheel_changed_since_build_is_refused(tmp_path: Path) -> None:
    wheel = factories.wheel(tmp_path / "wheels")
    record = make_record(wheel, factories.sdist(tmp_path / "sources"))
    with wheel.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(VerificationError, match="differs from the build record"):
        build_sbom(wheel, record)


def test_sbom_is_deterministic(tmp_path: Path) -> None:
    wheel = factories.wheel(tmp_path / "wheels", requires=REQUIRES)
    record = make_record(wheel, factories.sdist(tmp_path / "sources"))
    assert sbom_bytes(build_sbom(wheel, record)) == sbom_bytes(build_sbom(wheel, record))
    other = build_sbom(wheel, replace(record, invocation_id="another-build"))
    assert other["serialNumber"] != build_sbom(wheel, record)["serialNumber"]


def test_sidecar_is_byte_identical_to_the_statement_predicate(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path)
    init_keys(settings)
    wheel = factories.wheel(tmp_path / "wheels", requires=REQUIRES)
    record = make_record(wheel, factories.sdist(tmp_path / "sources"))
    att = attest_wheel(settings, record, wheel)
    assert att.sbom_path == sbom_path_for(wheel) == wheel.with_name(wheel.name + ".cdx.json")
    statement = att.sbom_statement
    assert statement["predicateType"] == PREDICATE_TYPE == "https://cyclonedx.org/bom"
    assert statement["subject"] == [{"name": wheel.name, "digest": {"sha256": sha256_file(wheel)}}]
    # what a verifier does: re-serialise the signed predicate, compare with the file
    on_disk = att.sbom_path.read_bytes()
    assert canonical_json(json.loads(json.dumps(statement["predicate"]))).encode() == on_disk
    validate(json.loads(on_disk))


def test_sbom_statement_subject_follows_the_file(tmp_path: Path) -> None:
    wheel, sbom = _sbom(tmp_path)
    assert sbom_statement(wheel, sbom)["subject"][0]["digest"]["sha256"] == sha256_file(wheel)


DEFERRED = """
import sys, json
from pathlib import Path
import factory.cli.verify, factory.verify, factory.verify.checks, factory.attest.sbom
from factory.verify.sbom import schema_error
sbom = json.loads(Path(sys.argv[1]).read_text())
assert schema_error(sbom) is None
module = sys.modules.get("rfc3987_syntax")
print("real" if module is not None and not getattr(module, "_factory_stand_in", False)
      else "deferred")
"""


def test_verifying_an_ascii_sbom_never_loads_the_costly_iri_parser(tmp_path: Path) -> None:
    """rfc3987-syntax builds an Earley parser at import (seconds per `factory verify`):
    verify must keep it a stand-in until a non-ASCII IRI needs it, whatever the import
    order (an import sorter once moved the deferral after the imports it guards)."""
    import subprocess
    import sys

    _, sbom = _sbom(tmp_path, requires=REQUIRES, libs=(LIB,))
    path = tmp_path / "sbom.json"
    path.write_text(json.dumps(sbom))
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", DEFERRED, str(path)], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "deferred"


# -- what scanners match: versions, people, the builder's OS packages ----------------------
IMAGE_PACKAGES = [
    SystemPackage("gcc-12", "12.2.0-14", "amd64", "debian-12"),
    SystemPackage("libc6", "2.36-9+deb12u10", "amd64", "debian-12"),
    SystemPackage("libffi-dev", "3.4.4-1", "amd64", "debian-12"),
    SystemPackage("python3.11", "3.11.2-6+deb12u6", "amd64", "debian-12"),
]
PINS = {"idna": ["3.10", "2.4"], "charset-normalizer": ["3.4.2"], "pysocks": ["1.7.1"]}


def _pins(name: str, specifier) -> str | None:
    versions = [v for v in PINS.get(name, []) if specifier.contains(v, prereleases=True)]
    return versions[0] if versions else None


def _rich_record(tmp_path: Path, **wheel_args) -> tuple[Path, BuildRecord]:
    wheel = factories.wheel(tmp_path / "wheels", requires=REQUIRES, **wheel_args)
    record = replace(
        make_record(wheel, factories.sdist(tmp_path / "sources")),
        recipe_name="tinypkg",
        image_packages=IMAGE_PACKAGES,
        system_packages=[IMAGE_PACKAGES[2]],
    )
    return wheel, record


def _rich_sbom(tmp_path: Path, **wheel_args) -> tuple[Path, dict]:
    wheel, record = _rich_record(tmp_path, **wheel_args)
    return wheel, build_sbom(wheel, record, pins=_pins)


def test_dependencies_are_versioned_purls_of_the_approved_set(tmp_path: Path) -> None:
    _, sbom = _rich_sbom(tmp_path)
    comps = _components(sbom)
    idna = comps["requirement:idna"]
    assert idna["purl"] == "pkg:pypi/idna@3.10" and idna["version"] == "3.10"
    assert {"name": "artifact-factory:requirement", "value": "idna<4,>=2.5"} in idna["properties"]
    assert comps["requirement:pysocks"]["purl"] == "pkg:pypi/pysocks@1.7.1"
    versioned = [c for c in comps.values() if c["bom-ref"].startswith("requirement:")]
    assert all("@" in c["purl"] for c in versioned)


def test_authors_and_supplier_come_from_core_metadata(tmp_path: Path) -> None:
    _, sbom = _rich_sbom(tmp_path, metadata=(
        "Author: Kenneth Reitz",
        "Author-email: Kenneth Reitz <me@kennethreitz.org>, not an address",
        "Maintainer-email: PSF <psf@python.example>",
    ))
    root = sbom["metadata"]["component"]
    assert {"name": "Kenneth Reitz", "email": "me@kennethreitz.org"} in root["authors"]
    assert {"name": "not an address"} in root["authors"]
    assert root["supplier"]["name"] == "PSF"
    assert root["supplier"]["contact"] == [{"name": "PSF", "email": "psf@python.example"}]


def test_formulation_holds_the_image_packages_os_and_interpreter(tmp_path: Path) -> None:
    _, sbom = _rich_sbom(tmp_path)
    [formula] = sbom["formulation"]
    comps = {c["bom-ref"]: c for c in formula["components"]}
    libc = comps["system-package:libc6"]
    assert libc["purl"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12"
    asked = {p["name"] for p in comps["system-package:libffi-dev"]["properties"]}
    assert "artifact-factory:asked-by-recipe" in asked
    assert comps["builder-os"] == {**comps["builder-os"], "type": "operating-system",
                                   "name": "debian", "version": "12"}
    python = comps["interpreter:python3.11"]
    assert python["name"] == "cpython" and python["version"] == "3.11.2"
    inputs = {i["resource"]["ref"] for i in formula["workflows"][0]["inputs"]}
    assert {"system-package:gcc-12", "interpreter:python3.11", "builder-os"} <= inputs


def test_grafted_libraries_say_who_grafted_them(tmp_path: Path) -> None:
    wheel = factories.wheel(tmp_path / "wheels", libs=(LIB,))
    record = make_record(wheel, factories.sdist(tmp_path / "sources"))
    record = replace(record, builder_settings={
        "repair": {"tool": "auditwheel", "action": "repaired", "policy": "manylinux_2_34_x86_64"}})
    lib = _components(build_sbom(wheel, record))[f"bundled:{LIB}"]
    assert {"name": "artifact-factory:grafted-by", "value": "auditwheel"} in lib["properties"]


def test_the_rich_sbom_is_deterministic_and_valid(tmp_path: Path) -> None:
    metadata = ("Author-email: A <a@example.org>, B <b@example.org>",)
    # The same wheel and record (a fixture sdist made twice differs in its gzip header's
    # time, so it is made once): the same bytes, whatever the run.
    wheel, record = _rich_record(tmp_path / "one", metadata=metadata)
    first = build_sbom(wheel, record, pins=_pins)
    second = build_sbom(wheel, record, pins=_pins)
    assert sbom_bytes(first) == sbom_bytes(second)
    validate(first)


def test_record_keeps_image_packages_across_json(tmp_path: Path) -> None:
    wheel = factories.wheel(tmp_path / "wheels")
    record = replace(make_record(wheel, factories.sdist(tmp_path / "sources")),
                     image_packages=IMAGE_PACKAGES)
    assert BuildRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
