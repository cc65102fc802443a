"""Known advisories in OSV format: is this version of this package affected?

Sources: a directory of OSV files (YAML or JSON, e.g. the PyPA advisory
database, laid out one folder per package or flat), an OSV export zip, or the
online OSV API (``https://api.osv.dev``). Only the PyPI ecosystem is read.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from factory.errors import ConfigError, UpstreamError

try:  # the C loader is ~10x faster on a few thousand files
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    data: dict[str, Any]

    def _entries(self, name: str) -> Iterator[dict[str, Any]]:
        key = canonicalize_name(name)
        for entry in self.data.get("affected", []):
            package = entry.get("package", {})
            if package.get("ecosystem") == "PyPI" and canonicalize_name(
                package.get("name", "")
            ) == key:
                yield entry

    def affects(self, name: str, version: str) -> bool:
        if self.data.get("withdrawn"):
            return False
        return any(_entry_affects(entry, version) for entry in self._entries(name))

    def fixed_versions(self, name: str) -> list[Version]:
        fixed = []
        for entry in self._entries(name):
            for rng in entry.get("ranges", []):
                for event in rng.get("events", []):
                    if "fixed" in event and (v := _version(event["fixed"])) is not None:
                        fixed.append(v)
        return sorted(fixed)


def _version(text: str) -> Version | None:
    try:
        return Version(str(text))
    except InvalidVersion:
        return None


def _entry_affects(entry: dict[str, Any], version: str) -> bool:
    if version in {str(v) for v in entry.get("versions", [])}:
        return True
    target = _version(version)
    if target is None:
        return False
    return any(_range_affects(rng, target) for rng in entry.get("ranges", [])
               if rng.get("type") == "ECOSYSTEM")


def _range_affects(rng: dict[str, Any], target: Version) -> bool:
    """OSV range semantics: walk the events in version order."""
    events: list[tuple[Version, str]] = []
    for event in rng.get("events", []):
        for kind, raw in event.items():
            v = Version("0") if (kind == "introduced" and str(raw) == "0") else _version(raw)
            if v is not None and kind in ("introduced", "fixed", "last_affected"):
                events.append((v, kind))
    affected = False
    for v, kind in sorted(events, key=lambda e: (e[0], e[1] != "introduced")):
        if target < v:
            break
        if kind == "introduced":
            affected = True
        elif kind == "fixed":
            affected = False
        elif kind == "last_affected":
            affected = target == v
    return affected


def _parse(text: str, origin: str) -> Advisory | None:
    try:
        data = json.loads(text) if origin.endswith(".json") else yaml.load(text, Loader=_Loader)
    except (ValueError, yaml.YAMLError):
        return None
    if not isinstance(data, dict) or "id" not in data:
        return None
    return Advisory(id=str(data["id"]), aliases=tuple(data.get("aliases") or ()),
                    summary=str(data.get("summary") or data.get("details", "")).strip()
                    .split("\n")[0][:200], data=data)


class AdvisoryDatabase:
    """Advisories from a directory, an OSV zip, or the OSV API."""

    def __init__(self, source: str | Path) -> None:
        self.source = str(source)
        self._by_name: dict[str, list[Advisory]] = {}
        if not self.source.startswith(("http://", "https://")) and not Path(source).exists():
            raise ConfigError(f"advisory source {source} does not exist",
                              "set [factory] advisories in factory.toml or FACTORY_ADVISORIES")

    def for_package(self, name: str) -> list[Advisory]:
        key = canonicalize_name(name)
        if key not in self._by_name:
            self._by_name[key] = [a for a in self._load(key) if any(a._entries(key))]
        return self._by_name[key]

    def affecting(self, name: str, version: str) -> list[Advisory]:
        return [a for a in self.for_package(name) if a.affects(name, version)]

    def _load(self, key: str) -> Iterable[Advisory]:
        if self.source.startswith(("http://", "https://")):
            return self._query_api(key)
        path = Path(self.source)
        if path.is_file() and zipfile.is_zipfile(path):
            return self._all_from_zip.get(key, [])
        if (path / "vulns").is_dir():  # the PyPA layout: vulns/<package>/<id>.yaml
            folders = self._folders.get(key, [])
            return self._read_files(f for folder in folders for f in sorted(folder.iterdir()))
        return self._all_from_dir.get(key, [])

    @cached_property
    def _folders(self) -> dict[str, list[Path]]:
        """Package folders by normalized name: a listing, no parsing (names vary in form)."""
        folders: dict[str, list[Path]] = {}
        for folder in sorted((Path(self.source) / "vulns").iterdir()):
            if folder.is_dir():
                folders.setdefault(canonicalize_name(folder.name), []).append(folder)
        return folders

    @staticmethod
    def _read_files(files: Iterable[Path]) -> list[Advisory]:
        found = []
        for file in files:
            if file.suffix in _SUFFIXES and (adv := _parse(file.read_text("utf-8"), file.name)):
                found.append(adv)
        return found

    @staticmethod
    def _index(advisories: Iterable[Advisory]) -> dict[str, list[Advisory]]:
        index: dict[str, list[Advisory]] = {}
        for adv in advisories:
            for entry in adv.data.get("affected", []):
                package = entry.get("package", {})
                if package.get("ecosystem") == "PyPI":
                    index.setdefault(canonicalize_name(package.get("name", "")), []).append(adv)
        return index

    @cached_property
    def _all_from_dir(self) -> dict[str, list[Advisory]]:
        files = sorted(p for p in Path(self.source).rglob("*") if p.suffix in _SUFFIXES)
        return self._index(self._read_files(files))

    @cached_property
    def _all_from_zip(self) -> dict[str, list[Advisory]]:
        found = []
        with zipfile.ZipFile(self.source) as archive:
            for member in archive.namelist():
                if member.endswith(_SUFFIXES):
                    text = archive.read(member).decode("utf-8", "replace")
                    if adv := _parse(text, member):
                        found.append(adv)
        return self._index(found)

    def _query_api(self, key: str) -> list[Advisory]:
        url = self.source.rstrip("/") + "/v1/query"
        try:
            response = httpx.post(url, json={"package": {"name": key, "ecosystem": "PyPI"}},
                                  timeout=30)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the OSV API at {self.source} failed: {exc}") from None
        return [a for v in response.json().get("vulns", [])
                if (a := _parse(json.dumps(v), "api.json"))]
