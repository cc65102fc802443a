"""Known advisories in OSV format: is this version of this package affected?

Sources: a directory of OSV files (YAML or JSON, e.g. the PyPA advisory
database, laid out one folder per package or flat), an OSV export zip, the
URL of one (by default OSV's published archive of every PyPI advisory,
``OSV_PYPI_ARCHIVE``: fetched conditionally, cached in the state directory), or
the online OSV API (``https://api.osv.dev``). Only the PyPI ecosystem is read.

``open_advisories`` is how a command gets one: the database, or why advisories
cannot be checked ("<source> unreachable (<reason>)"), never a silent nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from factory._internal.atomic import write_json
from factory.config import (
    OSV_PYPI_ARCHIVE,  # noqa: F401 - re-exported: the default source
    Settings,
)
from factory.errors import ConfigError, FactoryError, UpstreamError, printable
from factory.upstream.transport import shown

if TYPE_CHECKING:  # the HTTP client is imported only to fetch an online source
    import httpx

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


ID_MAX = 200  # an advisory id or alias (OSV's are tens of characters)
ALIASES_MAX = 64


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _texts(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, str | int | float)] \
        if isinstance(value, list) else []


def _affected(entry: dict[str, Any]) -> dict[str, Any] | None:
    """One OSV ``affected`` entry in the shape the lookups read (every field its JSON
    type, scalars only where scalars go), or None when it names no package."""
    package = entry.get("package")
    if not isinstance(package, dict) or not isinstance(package.get("name"), str) \
            or not isinstance(package.get("ecosystem"), str):
        return None
    ranges = [{"type": rng.get("type"),
               "events": [{k: str(v) for k, v in event.items()
                           if isinstance(k, str) and isinstance(v, str | int | float)}
                          for event in _dicts(rng.get("events"))]}
              for rng in _dicts(entry.get("ranges"))]
    return {**entry, "package": {**package}, "ranges": ranges,
            "versions": _texts(entry.get("versions"))}


def _yaml(text: str) -> Any:
    """``text`` read by PyYAML's safe loader (the C one, about ten times faster on a few
    thousand files); ValueError for what it cannot read. PyYAML is imported here: a
    process that reads no YAML advisory (an OSV zip, the API, the index checks of
    `verify --all`'s early child) never loads it."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def _parse(text: str, origin: str) -> Advisory | None:
    """An OSV advisory, its fields coerced to OSV's types (a mirror's malformed entry
    must not stop every lookup), or None when it is not one (no string id)."""
    try:
        data = json.loads(text) if origin.endswith(".json") else _yaml(text)
    except (ValueError, RecursionError):  # (yaml.YAMLError is a ValueError here: _yaml)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) \
            or not 0 < len(data["id"]) <= ID_MAX:
        return None
    affected = [a for e in _dicts(data.get("affected")) if (a := _affected(e))]
    summary = data.get("summary") or data.get("details") or ""
    return Advisory(id=data["id"],
                    aliases=tuple(a[:ID_MAX] for a in _texts(data.get("aliases"))[:ALIASES_MAX]),
                    summary=str(summary).strip().split("\n")[0][:200] if isinstance(
                        summary, str) else "",
                    data={**data, "affected": affected})


class AdvisoryDatabase:
    """Advisories from a directory, an OSV zip, or the OSV API."""

    def __init__(self, source: str | Path, cache_dir: Path | None = None) -> None:
        self.source = str(source)
        self.cache_dir = cache_dir or default_cache(self.source)
        self._by_name: dict[str, list[Advisory]] = {}
        # An archive URL read from a cached copy the source has not renewed for over
        # STALE_SECONDS: why, and since when (a lookup finding nothing in it is no PASS).
        self.stale: str | None = None
        if not self.source.startswith(("http://", "https://")) and not Path(source).exists():
            raise ConfigError(f"advisory source {shown(str(source))} does not exist",
                              "set [factory] advisories in factory.toml or FACTORY_ADVISORIES")

    def for_package(self, name: str) -> list[Advisory]:
        key = canonicalize_name(name)
        if key not in self._by_name:
            self._by_name[key] = [a for a in self._load(key) if any(a._entries(key))]
        return self._by_name[key]

    def affecting(self, name: str, version: str) -> list[Advisory]:
        return [a for a in self.for_package(name) if a.affects(name, version)]

    def _load(self, key: str) -> Iterable[Advisory]:
        if is_archive_url(self.source):  # fetched (conditionally) once, then a zip
            return self._all_from_zip.get(key, [])
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
            if file.suffix in _SUFFIXES and file.is_file():
                with open(file, "rb") as f:
                    text = f.read(MEMBER_MAX_BYTES).decode("utf-8", "replace")
                if adv := _parse(text, file.name):
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
        path = (fetch_archive(self.source, self.cache_dir) if is_archive_url(self.source)
                else Path(self.source))
        try:
            return self._index(_read_zip(path))
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                RuntimeError) as exc:  # encrypted, an unknown method, truncated
            raise AdvisoriesUnavailable(f"{shown(self.source)} is not a readable OSV archive "
                                        f"({type(exc).__name__}: {exc})"[:300]) from None

    def prepare(self) -> None:
        """Import now what reading this source's advisories will (PyYAML, for a directory
        of YAML files): a process about to fork workers loads it once for them."""
        if not self.source.startswith(("http://", "https://")) and Path(self.source).is_dir():
            import yaml  # noqa: F401

    def load(self) -> None:
        """Read a zip source now (open_advisories: a bad archive is a reason, not a crash)."""
        if is_archive_url(self.source) or (Path(self.source).is_file()
                                           and zipfile.is_zipfile(self.source)):
            self._all_from_zip  # noqa: B018 - the cached read

    def _query_api(self, key: str) -> list[Advisory]:
        """One package's advisories from the OSV API: the answer bounded (API_MAX_BYTES,
        API_SECONDS in all, headers included) and checked for shape; any failure is
        AdvisoriesUnavailable (NOT CHECKED), never a crash or a wait without end."""
        import httpx  # the HTTP client only when a source is online (verify reads files)

        from factory.upstream.transport import Deadline, inflated

        url = self.source.rstrip("/") + "/v1/query"
        body = bytearray()
        with Deadline(API_SECONDS, url) as deadline, httpx.Client(
                timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            try:
                with client.stream("POST", url, json={"package": {"name": key,
                                                                  "ecosystem": "PyPI"}},
                                   extensions={"trace": deadline.trace}) as response:
                    if response.status_code != 200:
                        raise AdvisoriesUnavailable(f"the OSV API at {shown(self.source)} answered "
                                                    f"HTTP {response.status_code}")
                    for chunk in inflated(response):
                        body += chunk
                        if len(body) > API_MAX_BYTES:
                            raise AdvisoriesUnavailable(f"the OSV API at {shown(self.source)} sent "
                                                        f"more than {API_MAX_BYTES} bytes")
            except (httpx.HTTPError, UpstreamError) as exc:  # UpstreamError: its encoding
                why = f"no answer within {API_SECONDS:g} s" if deadline.expired else \
                    exc.message if isinstance(exc, UpstreamError) else \
                    (str(exc).split("\n")[0][:200] or type(exc).__name__)
                raise AdvisoriesUnavailable(f"the OSV API at {shown(self.source)} failed: {why}") \
                    from None
        try:
            vulns = json.loads(body).get("vulns") or []
            if not isinstance(vulns, list):
                raise TypeError
        except (ValueError, TypeError, AttributeError, RecursionError):
            raise AdvisoriesUnavailable(f"the OSV API at {shown(self.source)} answered with no "
                                        "list of vulns") from None
        return [a for v in vulns if isinstance(v, dict) and (a := _parse(json.dumps(v),
                                                                         "api.json"))]


API_MAX_BYTES = 32 << 20  # one package's answer from the OSV API
API_SECONDS = 60.0


# -- reading an OSV zip, bounded ---------------------------------------------------------
MEMBER_MAX_BYTES = 4 << 20  # one advisory (OSV's are a few KiB)
MEMBERS_MAX = 1_000_000  # PyPI's all.zip holds tens of thousands
UNPACKED_MAX_BYTES = 4 << 30  # every advisory, read


def _read_zip(path: Path) -> list[Advisory]:
    """The advisories of an OSV zip, read member by member and bounded however the
    members declare their sizes (a zip bomb is refused, not inflated); names are only
    matched by suffix, never used as paths."""
    found, total = [], 0
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) > MEMBERS_MAX:
            raise AdvisoriesUnavailable(f"{path.name} has {len(members)} members, more than "
                                        f"{MEMBERS_MAX}")
        for info in members:
            if info.is_dir() or not info.filename.endswith(_SUFFIXES):
                continue
            with archive.open(info) as member:
                data = member.read(MEMBER_MAX_BYTES + 1)
            if len(data) > MEMBER_MAX_BYTES:
                raise AdvisoriesUnavailable(f"{printable(info.filename)[:100]!r} unpacks to "
                                            f"more than {MEMBER_MAX_BYTES} bytes: refused")
            total += len(data)
            if total > UNPACKED_MAX_BYTES:
                raise AdvisoriesUnavailable(f"{path.name} unpacks to more than "
                                            f"{UNPACKED_MAX_BYTES} bytes: refused")
            if adv := _parse(data.decode("utf-8", "replace"), info.filename):
                found.append(adv)
    return found


# -- OSV's published archive, fetched conditionally --------------------------------------
ARCHIVE_MAX_BYTES = 1 << 30  # PyPI's all.zip is tens of MiB
ARCHIVE_SECONDS = 300.0  # one whole download, at most
RECHECK_SECONDS = 3600.0  # asked again (conditionally) at most once an hour


class AdvisoriesUnavailable(UpstreamError):
    """The advisory source cannot be read: advisories are NOT CHECKED (said, never hidden)."""

    default_hint = ("set [factory] advisories to a reachable OSV archive URL, a mirror, or "
                    "a local copy (directory or zip)")


def is_archive_url(source: str) -> bool:
    return source.startswith(("http://", "https://")) and source.split("?")[0].endswith(".zip")


def fetch_archive(url: str, cache_dir: Path, *, client: httpx.Client | None = None,
                  max_bytes: int = ARCHIVE_MAX_BYTES, seconds: float = ARCHIVE_SECONDS,
                  recheck: float = RECHECK_SECONDS) -> Path:
    """The OSV archive at ``url``, cached in ``cache_dir`` (archive.zip and meta.json).

    Asked at most once per ``recheck`` seconds, with If-None-Match / If-Modified-Since
    from the last answer (304: the cached copy stands). A download is bounded by
    ``max_bytes`` and ``seconds``, must be a zip, and replaces the cache atomically.
    Raises AdvisoriesUnavailable when the source cannot be reached and nothing is
    cached; a stale cached copy is used when it cannot (meta.json says since when).
    """
    archive, meta_path = cache_dir / "archive.zip", cache_dir / "meta.json"
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
        meta = meta if isinstance(meta, dict) and meta.get("url") == url else {}
    except (OSError, ValueError):
        meta = {}
    cached = archive.is_file() and bool(meta)
    if cached and time.time() - float(meta.get("checked", 0)) < recheck:
        return archive
    headers = {}
    if cached and (etag := _validator(meta.get("etag"))):
        headers["If-None-Match"] = etag
    if cached and (since := _validator(meta.get("last_modified"))):
        headers["If-Modified-Since"] = since
    cache_dir.mkdir(parents=True, exist_ok=True)
    own = client is None
    import httpx

    # No kept-alive connection: the deadline owns the socket it shuts down.
    client = client or httpx.Client(timeout=30, follow_redirects=True, max_redirects=3,
                                    limits=httpx.Limits(max_keepalive_connections=0))
    try:
        meta = _download(client, url, archive, headers, max_bytes, seconds, meta, cached)
    except AdvisoriesUnavailable as exc:
        if not cached:
            raise
        meta["problem"] = exc.message  # the copy is used, and how old it is is said
        meta["checked"] = time.time()
        write_json(meta_path, meta)
        return archive
    finally:
        if own:
            client.close()
    write_json(meta_path, meta)
    return archive


def _validator(value: Any) -> str | None:
    """An ETag or Last-Modified worth sending back: printable ASCII, at most 512
    characters. A server's other bytes (latin-1, controls) are not kept: sent back they
    made every later conditional request fail before it left (UnicodeEncodeError)."""
    if isinstance(value, str) and 0 < len(value) <= 512 and value.isascii() \
            and value.isprintable():
        return value
    return None


def _download(client: httpx.Client, url: str, archive: Path, headers: dict[str, str],
              max_bytes: int, seconds: float, meta: dict[str, Any],
              cached: bool = True) -> dict[str, Any]:
    import httpx

    from factory.upstream.transport import Deadline

    part = archive.with_name(archive.name + ".part")
    # httpx bounds each read only: the timer shuts the socket down at the deadline, so a
    # server dripping its headers or body cannot hold the fetch open for longer.
    with Deadline(seconds, url) as deadline:
        try:
            with client.stream("GET", url, headers=headers,
                               extensions={"trace": deadline.trace}) as response:
                return _answer(response, url, part, archive, max_bytes, seconds, deadline,
                               meta, cached)
        except AdvisoriesUnavailable:
            raise
        except UpstreamError as exc:  # a stacked or corrupt Content-Encoding
            raise AdvisoriesUnavailable(f"{shown(url)} unreachable ({exc.message})") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: a redirect to
            if deadline.expired:  # "javascript:x" is built, then refused
                raise AdvisoriesUnavailable(f"{shown(url)} unreachable (slower than "
                                            f"{seconds:g} s)") from None
            reason = str(exc).split("\n")[0][:200] or type(exc).__name__
            raise AdvisoriesUnavailable(f"{shown(url)} unreachable ({reason})") from None
        finally:
            part.unlink(missing_ok=True)


def _answer(response: httpx.Response, url: str, part: Path, archive: Path, max_bytes: int,
            seconds: float, deadline: Any, meta: dict[str, Any],
            cached: bool) -> dict[str, Any]:
    if url.startswith("https://") and response.url.scheme != "https":
        raise AdvisoriesUnavailable(f"{shown(url)} unreachable (redirected to plain http "
                                    f"{printable(str(response.url))[:100]}: refused)")
    if response.status_code == 304:
        if not cached:  # nothing was asked conditionally: there is no copy to stand
            raise AdvisoriesUnavailable(f"{shown(url)} unreachable (answered 304 Not Modified "
                                        "to an unconditional request)")
        return {**meta, "checked": time.time(), "problem": None}
    if response.status_code != 200:
        raise AdvisoriesUnavailable(f"{shown(url)} unreachable (HTTP {response.status_code})")
    from factory.upstream.transport import inflated

    size = 0
    with open(part, "wb") as out:
        for chunk in inflated(response):
            size += len(chunk)
            if size > max_bytes:
                raise AdvisoriesUnavailable(f"{shown(url)} unreachable (larger than "
                                            f"{max_bytes} bytes)")
            if deadline.remaining() <= 0:
                raise AdvisoriesUnavailable(f"{shown(url)} unreachable (slower than "
                                            f"{seconds:g} s)")
            out.write(chunk)
    if not zipfile.is_zipfile(part):
        raise AdvisoriesUnavailable(f"{shown(url)} unreachable (not a zip archive)")
    os.replace(part, archive)
    return {"url": url, "etag": _validator(response.headers.get("etag")),
            "last_modified": _validator(response.headers.get("last-modified")),
            "fetched": time.time(), "checked": time.time(), "size": size,
            "problem": None}


def open_advisories(source: str | None, cache_dir: Path,
                    **fetch: Any) -> tuple[AdvisoryDatabase | None, str | None]:
    """The advisory database of ``source``, or None and why advisories are NOT CHECKED.

    An archive URL is fetched into ``cache_dir`` (``fetch_archive``); other sources
    are opened as they are; a zip is read at once (bounded: a bad one is the reason).
    """
    if not source:
        return None, "no advisory source configured"
    try:
        if is_archive_url(source):
            fetch_archive(source, cache_dir, **fetch)
        database = AdvisoryDatabase(source, cache_dir)
        database.load()
        if is_archive_url(source):
            database.stale = stale_copy(cache_dir)
        return database, None
    except FactoryError as exc:
        return None, exc.message


def for_settings(settings: Settings) -> tuple[AdvisoryDatabase | None, str | None]:
    """The factory's advisory database (an archive URL cached in its state directory),
    or None and why advisories are NOT CHECKED (the source is unset or unreachable)."""
    return open_advisories(settings.advisories, settings.state_dir / "advisories")


def default_cache(source: str) -> Path:
    """Where an archive URL is cached when the caller names no place (the user's cache)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "artifact-factory" / "osv" / hashlib.sha256(source.encode()).hexdigest()[:16]


STALE_SECONDS = 86400.0  # a cached archive not renewed for a day no longer passes a check


def stale_copy(cache_dir: Path, now: float | None = None) -> str | None:
    """Why the cached archive is stale (the source failed since, and it was fetched more
    than STALE_SECONDS ago), or None: a source kept unreachable cannot freeze the
    advisories a verification sees at an old copy."""
    try:
        meta = json.loads((cache_dir / "meta.json").read_text("utf-8"))
        fetched = float(meta.get("fetched") or 0)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    problem = meta.get("problem")
    if not problem or (now or time.time()) - fetched <= STALE_SECONDS:
        return None
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(fetched)) if fetched else "unknown"
    return f"{printable(str(problem))[:300]}; the cached copy is of {when}"


def archive_problem(cache_dir: Path) -> str | None:
    """What the last fetch of the archive said (a stale copy in use), if anything."""
    try:
        meta = json.loads((cache_dir / "meta.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return meta.get("problem") if isinstance(meta, dict) else None
