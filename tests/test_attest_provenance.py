"""SLSA Provenance v1 statements built from a build record."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from sigstore.dsse import Statement

from factory.attest import attest_wheel
from factory.attest.keys import find_key_material, init_keys, private_key_path
from factory.attest.provenance import BUILD_TYPE, PREDICATE_TYPE, build_statement, docker_purl
from factory.build.record import BuildRecord
from factory.config import Settings, load_settings
from factory.errors import SigningError
from tests import factories
from tests.attest_fixtures import BUILDER_IMAGE_ID, TOOLS, make_record


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings(root=tmp_path, identity="https://factory.example/builders/docker")
    init_keys(s)
    return s


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path, BuildRecord]:
    wheel = factories.wheel(tmp_path / "wheels")
    sdist = factories.sdist(tmp_path / "sources")
    return wheel, sdist, make_record(wheel, sdist, upstream_provenance_sha256="44" * 32)


def _deps(statement: dict, role: str) -> list[dict]:
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    return [d for d in deps if d["annotations"]["role"] == role]


def test_statement_is_an_in_toto_v1_statement_about_the_wheel(settings, built) -> None:
    wheel, _, record = built
    st = build_statement(record, settings)
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == PREDICATE_TYPE == "https://slsa.dev/provenance/v1"
    assert st["subject"] == [{"name": wheel.name, "digest": {"sha256": record.wheel_sha256}}]
    # the signing module hands exactly such bytes to sigstore's DSSE signer
    Statement(json.dumps(st).encode())


def test_build_definition_names_recipe_source_and_settings(settings, built) -> None:
    _, sdist, record = built
    bd = build_statement(record, settings)["predicate"]["buildDefinition"]
    assert bd["buildType"] == BUILD_TYPE
    ext = bd["externalParameters"]
    assert ext["recipe"] == {"name": "tinypkg", "digest": {"sha256": "cd" * 32}}
    assert ext["source"]["url"] == record.source.url
    assert ext["source"]["digest"] == {"sha256": record.source.sha256}
    assert ext["source"]["filename"] == sdist.name
    assert bd["internalParameters"]["builder"] == record.builder_settings
    assert bd["internalParameters"]["builderImage"] == "factory-builder:bookworm"


def test_resolved_dependencies_cover_sdist_image_tools_and_upstream_provenance(
    settings, built
) -> None:
    _, sdist, record = built
    st = build_statement(record, settings)
    [source] = _deps(st, "source")
    assert source == {
        "uri": record.source.url,
        "name": sdist.name,
        "digest": {"sha256": record.source.sha256},
        "annotations": {"role": "source"},
    }
    [upstream] = _deps(st, "upstream-provenance")
    assert upstream["digest"] == {"sha256": "44" * 32}
    [image] = _deps(st, "builder-image")
    assert image["digest"] == {"sha256": BUILDER_IMAGE_ID.removeprefix("sha256:")}
    assert image["uri"] == "pkg:docker/factory-builder@bookworm"
    tools = _deps(st, "build-tool")
    assert {t["name"]: t["digest"]["sha256"] for t in tools} == {
        t.filename: t.sha256 for t in TOOLS
    }
    assert (
        tools[0]["uri"] == "pkg:pypi/setuptools@80.9.0?file_name=setuptools-80.9.0-py3-none-any.whl"
    )


def test_no_upstream_provenance_no_entry(settings, built) -> None:
    _, _, record = built
    plain = replace(record, upstream_provenance_sha256=None)
    assert _deps(build_statement(plain, settings), "upstream-provenance") == []


def test_run_details(settings, built) -> None:
    _, _, record = built
    rd = build_statement(record, settings)["predicate"]["runDetails"]
    assert rd["builder"]["id"] == "https://factory.example/builders/docker"
    assert rd["metadata"] == {
        "invocationId": record.invocation_id,
        "startedOn": "2026-01-02T03:04:05Z",
        "finishedOn": "2026-01-02T03:04:12Z",
    }
    by = {b["annotations"]["role"]: b for b in rd["byproducts"]}
    assert by["build-log"]["digest"] == {"sha256": record.log_sha256}
    assert by["build-log"]["name"] == record.log_filename
    assert by["isolation"]["annotations"]["mode"] == "none"


def test_patches_are_external_parameters(settings, built) -> None:
    _, _, record = built
    patched = replace(record, patches=[{"name": "fix.patch", "sha256": "55" * 32}])
    ext = build_statement(patched, settings)["predicate"]["buildDefinition"]["externalParameters"]
    assert ext["patches"] == [{"name": "fix.patch", "sha256": "55" * 32}]


@pytest.mark.parametrize(
    ("image", "purl"),
    [
        ("factory-builder:bookworm", "pkg:docker/factory-builder@bookworm"),
        ("python:3.12-slim@sha256:" + "ab" * 32, "pkg:docker/python@sha256:" + "ab" * 32),
        (
            "quay.io/pypa/manylinux_2_28_x86_64",
            "pkg:docker/pypa/manylinux_2_28_x86_64?repository_url=quay.io",
        ),
        ("localhost:5000/builder:1", "pkg:docker/builder@1?repository_url=localhost:5000"),
    ],
)
def test_docker_purl(image: str, purl: str) -> None:
    assert docker_purl(image) == purl


def test_statements_carry_no_key_material(settings, built) -> None:
    wheel, _, record = built
    att = attest_wheel(settings, record, wheel)
    for statement in att.statements:
        assert not find_key_material(json.dumps(statement), settings)


def test_leaking_record_is_refused(settings, built) -> None:
    wheel, _, record = built
    leak = str(private_key_path(settings, "builder"))
    leaky = replace(record, builder_settings={"mounts": [leak]})
    with pytest.raises(SigningError, match="private key"):
        attest_wheel(settings, leaky, wheel)
    assert not wheel.with_name(wheel.name + ".cdx.json").exists()
