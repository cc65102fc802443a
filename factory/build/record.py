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

from factory._internal.atomic import write_json

RECORD_SUFFIX = ".build.json"


@dataclass(frozen=True)
class SourceRef:
    """The verified upstream sdist a wheel was built from."""

    name: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int
    upstream_provenance_sha256: str | None = None


@dataclass(frozen=True)
class InstalledTool:
    """One wheel installed in the build environment."""

    name: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class BuildRecord:
    invocation_id: str
    component: str
    version: str
    wheel_filename: str
    wheel_sha256: str
    source: SourceRef
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildRecord:
        data = dict(data)
        data["source"] = SourceRef(**data["source"])
        data["build_tools"] = [InstalledTool(**t) for t in data["build_tools"]]
        return cls(**data)

    def save(self, directory: Path) -> Path:
        path = directory / (self.wheel_filename + RECORD_SUFFIX)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: Path) -> BuildRecord:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def record_path_for(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + RECORD_SUFFIX)
