"""Fixtures for the attest tests: tiny wheels and sdists, fabricated build records."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

from factory._internal.atomic import sha256_file
from factory.attest.keys import find_key_material
from factory.build.record import BuildRecord, InstalledTool, SourceRef
from factory.config import Settings

BUILDER_IMAGE_ID = "sha256:" + "ab" * 32
TOOLS = [
    InstalledTool("setuptools", "80.9.0", "setuptools-80.9.0-py3-none-any.whl", "11" * 32),
    InstalledTool("wheel", "0.45.1", "wheel-0.45.1-py3-none-any.whl", "22" * 32),
]


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(
    directory: Path,
    name: str = "tinypkg",
    version: str = "1.0.0",
    requires: tuple[str, ...] = (),
    license_expression: str | None = "MIT",
    libs: tuple[str, ...] = (),
    tag: str = "py3-none-any",
    extra_metadata: tuple[str, ...] = (),
) -> Path:
    """A small but well-formed wheel (METADATA, WHEEL, RECORD), written by hand."""
    dist_info = f"{name}-{version}.dist-info"
    meta = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}", "Summary: tiny"]
    if license_expression:
        meta.append(f"License-Expression: {license_expression}")
    meta += [f"Requires-Dist: {r}" for r in requires]
    meta += list(extra_metadata)
    files: dict[str, bytes] = {
        f"{name}/__init__.py": b"VALUE = 1\n",
        f"{dist_info}/METADATA": ("\n".join(meta) + "\n\n").encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    for lib in libs:
        files[lib] = b"\x7fELF fake shared object " + lib.encode()
    record = [_record_line(n, d) for n, d in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = directory / f"{name}-{version}-{tag}.whl"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in files.items():
            zf.writestr(zipfile.ZipInfo(member, (2024, 1, 1, 0, 0, 0)), data)
    return path


def make_sdist(directory: Path, name: str = "tinypkg", version: str = "1.0.0") -> Path:
    path = directory / f"{name}-{version}.tar.gz"
    directory.mkdir(parents=True, exist_ok=True)
    data = f"[project]\nname = '{name}'\nversion = '{version}'\n".encode()
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(f"{name}-{version}/pyproject.toml")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


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
        source=SourceRef(
            name=name,
            version=version,
            filename=sdist.name,
            url=f"https://files.example.invalid/packages/{sdist.name}",
            sha256=sha256_file(sdist),
            size=sdist.stat().st_size,
            upstream_provenance_sha256=upstream_provenance_sha256,
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
    )


def assert_no_key_material(record: BuildRecord, settings: Settings) -> None:
    """Fail if a private key, any encoding of its secret, or its path is in ``record``."""
    text = json.dumps(record.to_dict(), sort_keys=True)
    found = find_key_material(text, settings)
    assert not found, f"build record carries key material or a private key path: {found}"
