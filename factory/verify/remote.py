"""An index verified by URL: what the checks need, fetched over HTTP into a directory.

``factory verify --index https://index.example/ TARGET`` reads what any client of
the index can read, and nothing else: the Simple API pages (PEP 691 JSON), each
wheel, its ``.metadata``, its sidecars (Sigstore bundle, SLSA statements, SBOM,
PEP 740 provenance, build record, in-toto layout and links) and the trust
material under ``/.well-known/factory/``. They are written into a temporary
directory laid out as a published index, and the same checks run on it as on a
directory. A project is fetched the first time a target names it (``--all``:
every project the Simple API lists).

Everything the server sends is untrusted: each response is size-bounded before
it is read whole, every request has a timeout, a redirect is followed only to
the same scheme, host and port (at most a few), names and digests are checked
before they become paths, and the record assembled from the pages is validated
as a record on disk is (paths exactly where publishing puts them). A file the
page lists but the server does not send is left out, so the check that needs it
fails. The index's own records are not served: the sdist a wheel was built from is
read from its served build record (and the index's copy of the sdist fetched),
as publishing wrote it into the record; the signed provenance must agree.
The checks of the index as a whole (records, pages, unrecorded files) need the
directory itself and are reported as skipped.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from factory._internal.atomic import write_bytes
from factory.errors import FactoryError, printable
from factory.index.records import (
    SIDECAR_SUFFIXES,
    TRUST_MAX_BYTES,
    TRUST_NAME,
    ProjectRecord,
    Sidecars,
    is_normalized,
)
from factory.index.validation import Invalid, validate_record
from factory.upstream.transport import Cutoff, inflated, shown
from factory.verify.view import IndexView, Published

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
TRUST_FILES = ("trusted_root.json", "owner.pub.pem", "trust_config.json", "fingerprints.json")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_FILENAME = 238  # bytes of a wheel's name: its sidecars' (17 more) fit 255


class RemoteIndexError(FactoryError):
    """The index URL cannot be used at all (a usage error, exit 2)."""

    exit_code = 2
    default_hint = "give --index the index's base URL (http:// or https://), or a directory"


@dataclass(frozen=True)
class Limits:
    """Bounds on what one verification fetches."""

    page: int = 16 << 20  # a Simple API page (JSON)
    wheel: int = 1 << 30
    sidecar: int = 64 << 20  # a bundle, SBOM, provenance, build record, link
    layout_files: int = 32  # files in one wheel's in-toto directory
    projects: int = 100_000
    total: int = 64 << 30  # everything fetched in one run
    timeout: float = 30.0  # connect, each read, each write
    min_rate: float = 256 << 10  # bytes/s: a GET's bound is timeout + its limit / min_rate
    redirects: int = 3


def is_url(text: str | None) -> bool:
    return bool(text) and str(text).startswith(("http://", "https://"))


class Fetcher:
    """GETs below one base URL, bounded; a redirect only to the same origin."""

    def __init__(self, base_url: str, limits: Limits, client: httpx.Client | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteIndexError(f"{shown(base_url)!r} is not an http(s) URL")
        if parts.query or parts.fragment:
            raise RemoteIndexError(f"{shown(base_url)!r}: an index URL has no query or "
                                   "fragment")
        self.base = base_url.rstrip("/") + "/"
        self.origin = (parts.scheme, parts.hostname, parts.port)
        self.limits = limits
        self.client = client or httpx.Client(
            timeout=limits.timeout, follow_redirects=False,
            headers={"User-Agent": "artifact-factory-verify"})
        self.fetched = 0
        self._lock = threading.Lock()
        self.cutoff = Cutoff()  # each GET's wall-clock bound (httpx bounds each read only)

    def close(self) -> None:
        self.client.close()

    def seconds(self, limit: int) -> float:
        """The wall-clock bound of one GET whose body may be ``limit`` bytes."""
        return self.limits.timeout + limit / self.limits.min_rate

    def get(self, path: str, limit: int, accept: str | None = None) -> bytes | None:
        """The body of ``base + path`` (None for a 404 or 410); raises FactoryError for
        any other failure, a body over ``limit``, a redirect elsewhere, or an answer
        not complete within ``seconds(limit)`` (a timer shuts the index's connections
        down, so dripped headers or body end there)."""
        url = self.base + path
        seconds = self.seconds(limit)
        with self.cutoff.bound(seconds) as expired:
            for _ in range(self.limits.redirects + 1):
                headers = {"Accept": accept} if accept else {}
                try:
                    with self.client.stream("GET", url, headers=headers,
                                            extensions={"trace": self.cutoff.trace}) as response:
                        if response.is_redirect:
                            url = self._same_origin(url, response.headers.get("location", ""))
                            continue
                        if response.status_code in (404, 410):
                            return None
                        if response.status_code != 200:
                            raise FactoryError(f"GET {shown(url)}: HTTP "
                                               f"{response.status_code}")
                        return self._read(response, url, limit, time.monotonic() + seconds)
                except (httpx.HTTPError, httpx.InvalidURL) as exc:  # a redirect to "/\0"
                    if expired.is_set():
                        raise FactoryError(f"GET {shown(url)}: no complete answer within "
                                           f"{seconds:g} s") from None
                    raise FactoryError(f"GET {shown(url)} failed: "
                                       f"{type(exc).__name__}: {exc}"[:300]) from None
        raise FactoryError(f"GET {shown(self.base + path)}: more than "
                           f"{self.limits.redirects} redirects")

    def _same_origin(self, url: str, location: str) -> str:
        try:
            target = urljoin(url, location)
            parts = urlsplit(target)
            where = (parts.scheme, parts.hostname, parts.port)
        except ValueError:  # "http://[x": not a URL (an unclosed IPv6 literal, a bad port)
            raise FactoryError(f"GET {shown(url)} redirects to "
                               f"{printable(location)[:200]!r}, not a URL") from None
        if where != self.origin:
            raise FactoryError(f"GET {shown(url)} redirects off the index "
                               f"(to {shown(target)[:200]}): not followed")
        return target

    def _read(self, response: httpx.Response, url: str, limit: int, deadline: float) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FactoryError(f"GET {shown(url)}: {declared} bytes, more than {limit}")
        chunks, size = [], 0
        for chunk in inflated(response):  # one encoding, inflated in bounded pieces
            size += len(chunk)
            if size > limit:
                raise FactoryError(f"GET {shown(url)}: more than {limit} bytes")
            if time.monotonic() > deadline:
                raise FactoryError(f"GET {shown(url)}: no complete answer within "
                                   f"{self.seconds(limit):g} s")
            chunks.append(chunk)
        with self._lock:
            self.fetched += size
            if self.fetched > self.limits.total:
                raise FactoryError(f"more than {self.limits.total} bytes fetched from the index")
        return b"".join(chunks)


class RemoteIndex(IndexView):
    """The index at ``url``, mirrored into ``root`` as the checks ask for projects."""

    local = False

    def __init__(self, url: str, root: Path, limits: Limits | None = None,
                 client: httpx.Client | None = None) -> None:
        self.url = shown(url.rstrip("/"))  # what reports say: no user:password@
        self.fetcher = Fetcher(url, limits or Limits(), client)
        super().__init__(root, self.url)
        self.layout.records.mkdir(parents=True, exist_ok=True)
        self._fetch_lock = threading.Lock()

    def close(self) -> None:
        self.fetcher.close()

    def __str__(self) -> str:
        return self.url

    # -- trust ------------------------------------------------------------------------
    def fetch_trust(self) -> list[str]:
        """The public trust files the index serves, into trust/ (as published)."""
        found = []
        for name in TRUST_FILES:
            body = self.fetcher.get(f".well-known/factory/{name}", TRUST_MAX_BYTES)
            if body is not None:
                write_bytes(self.layout.trust / name, body)
                found.append(name)
        return found

    # -- projects -----------------------------------------------------------------------
    def record(self, project: str) -> ProjectRecord | None:
        key = str(canonicalize_name(project))
        with self._fetch_lock:
            if key not in self._records:
                try:
                    self._records[key] = self._fetch_project(key) if is_normalized(key) else None
                except (FactoryError, Invalid, OSError) as exc:  # per project, never a crash
                    self._records[key] = None
                    self.corrupt[key] = (exc.message if isinstance(exc, FactoryError)
                                         else f"{self.url}: {key}: {exc}"[:300])
            return self._records[key]

    def all(self) -> list[Published]:
        out: list[Published] = []
        for project in self.projects():
            record = self.record(project)
            if record is not None:
                out.extend(self.published(record, e) for e in record.files)
        return out

    def projects(self) -> list[str]:
        body = self.fetcher.get("simple/", self.fetcher.limits.page, JSON_TYPE)
        if body is None:
            raise RemoteIndexError(f"{self.url}/simple/ is not found: not an index")
        try:
            names = [str(p["name"]) for p in json.loads(body)["projects"]]
        except (ValueError, KeyError, TypeError):
            raise RemoteIndexError(f"{self.url}/simple/ is not a PEP 691 project list") \
                from None
        if len(names) > self.fetcher.limits.projects:
            raise RemoteIndexError(f"{self.url} lists {len(names)} projects, more than "
                                   f"{self.fetcher.limits.projects}")
        return sorted({str(canonicalize_name(n)) for n in names if len(n) <= 200})

    def _fetch_project(self, project: str) -> ProjectRecord | None:
        limits = self.fetcher.limits
        body = self.fetcher.get(f"simple/{project}/", limits.page, JSON_TYPE)
        if body is None:
            return None
        try:
            page = json.loads(body)
            files = page["files"]
            display = str(page.get("name") or project)
            status = page.get("project-status") or {}
            if not isinstance(files, list) or not isinstance(status, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            raise FactoryError(f"{self.url}/simple/{project}/ is not a PEP 691 page") from None
        if str(canonicalize_name(display)) != project:
            raise FactoryError(f"{self.url}/simple/{project}/ names another project "
                               f"({printable(display)[:100]!r})")
        entries = [self._fetch_file(project, item) for item in files]
        data = {
            "name": project, "display_name": display,
            "files": [e for e in entries if e is not None],
            "status": str(status.get("status") or "active"),
            "status_reason": status.get("reason"),
        }
        return validate_record(data, project)

    def _fetch_file(self, project: str, item: Any) -> dict[str, Any] | None:
        """The record entry of one file the page lists (its files fetched), or None for
        a file that is not a wheel (the index serves none; nothing to verify)."""
        if not isinstance(item, dict):
            raise FactoryError(f"{self.url}/simple/{project}/ lists a file oddly")
        hashes = item.get("hashes")
        filename = str(item.get("filename", ""))
        sha = hashes.get("sha256") if isinstance(hashes, dict) else None
        try:
            _, version, _, _ = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            return None
        if len(filename.encode()) > MAX_FILENAME:  # its sidecars' names must fit on disk
            raise FactoryError(f"{self.url}/simple/{project}/ lists a file name of "
                               f"{len(filename.encode())} bytes (at most {MAX_FILENAME})")
        if "/" in filename or not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise FactoryError(f"{self.url}/simple/{project}/: {printable(filename)[:200]!r} "
                               "has no sha256")
        limits = self.fetcher.limits
        folder = f"files/{project}"
        wheel = self.fetcher.get(f"{folder}/{filename}", limits.wheel)
        if wheel is None:
            raise FactoryError(f"{self.url}/{folder}/{filename} is listed but not served")
        write_bytes(self.root / folder / filename, wheel)
        sidecars: dict[str, list[dict[str, Any]]] = {}
        for kind in SIDECAR_SUFFIXES:
            stored = (self._layout_files(folder, filename) if Sidecars.is_directory(kind)
                      else self._fetch_stored(f"{folder}/{Sidecars.name(filename, kind)}"))
            if stored:
                sidecars[kind] = stored
        metadata = self._fetch_stored(f"{folder}/{Sidecars.name(filename, 'metadata')}")
        core = item.get("core-metadata")
        if metadata and isinstance(core, dict) and core.get("sha256") != metadata[0]["sha256"]:
            metadata[0]["sha256"] = str(core.get("sha256"))[:64]  # the page's, to be checked
        yanked = item.get("yanked")
        build = sidecars.get("build")
        return {
            "filename": filename, "version": str(version), "sha256": sha,
            "size": len(wheel), "upload_time": str(item.get("upload-time") or ""),
            "requires_python": item.get("requires-python"),
            "metadata": metadata[0] if metadata else
            {"path": f"{folder}/{filename}.metadata", "sha256": "0" * 64, "size": 0},
            "sidecars": sidecars, "built_from": {}, "signer": None,
            "source": self._source(project, build[0]["path"]) if build else None,
            "yanked": bool(yanked), "yanked_reason": yanked if isinstance(yanked, str) else None,
            "advisories": None, "advisories_checked": None,
        }

    def _source(self, project: str, build_record: str) -> dict[str, Any] | None:
        """The sdist the served build record names (as the index's record would: the
        signed provenance must agree), and the index's copy of it when it serves one."""
        try:
            source = json.loads((self.root / build_record).read_bytes())["source"]
            filename, sha, size = str(source["filename"]), str(source["sha256"]), \
                int(source["size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not TRUST_NAME.fullmatch(filename) or not _SHA256.fullmatch(sha):
            return None
        rel = f"sources/{project}/{filename}"
        body = self.fetcher.get(rel, self.fetcher.limits.wheel)
        if body is not None:
            write_bytes(self.root / rel, body)
        url = source.get("url")
        return {"filename": filename, "sha256": sha, "size": size,
                "upstream_url": url if isinstance(url, str) else None,
                "stored": rel if body is not None else None}

    def _fetch_stored(self, rel: str) -> list[dict[str, Any]]:
        body = self.fetcher.get(rel, self.fetcher.limits.sidecar)
        if body is None:
            return []
        write_bytes(self.root / rel, body)
        return [{"path": rel, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}]

    def _layout_files(self, folder: str, filename: str) -> list[dict[str, Any]]:
        directory = f"{folder}/{Sidecars.name(filename, 'in-toto')}"
        body = self.fetcher.get(f"{directory}/", self.fetcher.limits.page)
        if body is None:
            return []
        try:
            names = [str(n) for n in json.loads(body)["files"]]
        except (ValueError, KeyError, TypeError):
            raise FactoryError(f"{self.url}/{directory}/ is not a listing") from None
        if len(names) > self.fetcher.limits.layout_files:
            raise FactoryError(f"{self.url}/{directory}/ lists {len(names)} files, more than "
                               f"{self.fetcher.limits.layout_files}")
        out = []
        for name in sorted(set(names)):
            if not TRUST_NAME.fullmatch(name):  # a plain file name: no separator, no ..
                raise FactoryError(f"{self.url}/{directory}/ lists {printable(name)[:100]!r}")
            out += self._fetch_stored(f"{directory}/{name}")
        return out
