"""Fixtures for the attest tests: fabricated build records (tests.factories makes the files)."""

from __future__ import annotations

import json
from pathlib import Path

from factory._internal.atomic import sha256_file
from factory.attest.keys import find_key_material
from factory.build.record import BuildRecord, InstalledTool
from factory.config import Settings
from factory.upstream.cache import Sdist

BUILDER_IMAGE_ID = "sha256:" + "ab" * 32
TOOLS = [
    InstalledTool("setuptools", "80.9.0", "setuptools-80.9.0-py3-none-any.whl", "11" * 32),
    InstalledTool("wheel", "0.45.1", "wheel-0.45.1-py3-none-any.whl", "22" * 32),
]


def make_record(
    wheel: Path, sdist: Path, upstream_provenance_sha256: str | None = None
) -> BuildRecord:
    name, version = sdist.name.removesuffix(".tar.gz").rsplit("-", 1)
    return BuildRecord(
        invocation_id="2d1f6c1e-0000-4000-8000-000000000001",
        component=name,
        version=version,
        wheel_filename=wheel.name,
        wheel_sha256=sha256_file(wheel),
        source=Sdist(
            name=name,
            version=version,
            filename=sdist.name,
            url=f"https://files.example.invalid/packages/{sdist.name}",
            sha256=sha256_file(sdist),
            size=sdist.stat().st_size,
        ),
        recipe_name=name,
        recipe_digest="sha256:" + "cd" * 32,
        builder_image="factory-builder:bookworm",
        builder_image_id=BUILDER_IMAGE_ID,
        builder_settings={"memory": "2g", "pids": 512, "cpus": 2.0, "read_only": True},
        build_tools=list(TOOLS),
        started_on="2026-01-02T03:04:05Z",
        finished_on="2026-01-02T03:04:12Z",
        log_filename=f"{wheel.name}.log",
        log_sha256="33" * 32,
        upstream_provenance_sha256=upstream_provenance_sha256,
    )


def assert_no_key_material(record: BuildRecord, settings: Settings) -> None:
    """Fail if a private key, any encoding of its secret, or its path is in ``record``."""
    text = json.dumps(record.to_dict(), sort_keys=True)
    found = find_key_material(text, settings)
    assert not found, f"build record carries key material or a private key path: {found}"
