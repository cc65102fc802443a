"""Lock files for installers, from what the index serves (``factory export pylock``).

A PEP 751 ``pylock.toml`` of the approved set (recipes.lock) or of a requirements
file: each package with every wheel the index publishes of its version (URL on the
index, size, upload time, sha256) and ``attestation-identities`` naming the
factory's signing identity, the PEP 740 publisher its provenance carries. An
installer that checks attestations (or ``factory verify pylock.toml``) then accepts
only files the factory signed. A pin the index does not serve is an error: a lock
must never name a file nobody can fetch.

    from factory.export import pylock
    text = pylock(matches, settings.index_url, factory_publisher(settings))
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import tomli_w

from factory import __version__
from factory.environment import Match
from factory.errors import FactoryError

PYLOCK_VERSION = "1.0"


class ExportError(FactoryError):
    default_hint = ("publish the missing releases (`factory build` and `factory publish`), "
                    "or drop them from the requirements")


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def pylock_data(matches: Sequence[Match], base_url: str,
                publisher: dict[str, Any]) -> dict[str, Any]:
    """The pylock.toml document as TOML-ready data; ExportError when a pin is not served."""
    missing = [m.problem or m.pin.name for m in matches if not m.files]
    if missing:
        raise ExportError(f"{len(missing)} pin(s) the index does not serve: "
                          + "; ".join(missing[:20]))
    base = base_url.rstrip("/")
    packages: dict[tuple[str, str], dict[str, Any]] = {}
    for match in matches:
        key = (match.pin.name, match.pin.version)
        if key in packages:
            continue
        wheels = []
        for item in match.files:
            wheel: dict[str, Any] = {
                "name": item.filename,
                "url": f"{base}/files/{item.project}/{item.filename}",
                "size": item.entry.size,
                "hashes": {"sha256": item.entry.sha256},
            }
            if (uploaded := _time(item.entry.upload_time)) is not None:
                wheel["upload-time"] = uploaded
            wheels.append(wheel)
        package: dict[str, Any] = {
            "name": match.pin.name,
            "version": match.files[0].entry.version,
            "index": f"{base}/simple/",
        }
        if requires := match.files[0].entry.requires_python:
            package["requires-python"] = requires
        package["attestation-identities"] = [dict(publisher)]
        package["wheels"] = wheels
        packages[key] = package
    return {
        "lock-version": PYLOCK_VERSION,
        "created-by": f"artifact-factory {__version__}",
        "packages": [packages[k] for k in sorted(packages)],
    }


def pylock(matches: Sequence[Match], base_url: str, publisher: dict[str, Any]) -> str:
    """pylock.toml's text (PEP 751)."""
    return tomli_w.dumps(pylock_data(matches, base_url, publisher))
