"""What an index says about a project's files (PEP 691 JSON, PEP 503 HTML), checked.

Every name, hash, size and URL a listing gives is attacker-controlled data: each
file name must be a plain sdist or wheel name of the project asked for (no
separators, no ``..``, no control characters, bounded), each hash, size and URL
must have its shape, and the URL must be one the index's ``HostPolicy`` allows.
A file that fails is left out of the listing with the reason
(``ProjectListing.rejected``). The same shape checks guard what the lock pins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag

from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from factory.errors import UpstreamError, printable
from factory.upstream.transport import MAX_URL, HostPolicy, join

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
MAX_FILENAME = 255  # a file name on every filesystem we write to
MAX_TEXT = 200  # yank reasons, requires-python, upload times: shown, never trusted
MAX_FILE_BYTES = 1 << 30  # an sdist or wheel larger than this is refused outright
# PEP 792 project statuses an index may state; "active" is recorded as no status.
PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")
MAX_STATUS_REASON = 300

_PROJECT = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE)
_FILENAME = re.compile(r"[A-Za-z0-9._+!-]+")  # names, PEP 440 versions, extensions
_SHA256 = re.compile(r"[0-9a-f]{64}")


# -- what upstream may say -------------------------------------------------------------

def is_project_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= MAX_FILENAME and bool(_PROJECT.fullmatch(name))


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and bool(_SHA256.fullmatch(value))


def is_plain_file_name(value: object) -> bool:
    """A file name that stays in its directory: no separator, not . or .., nothing hidden
    or unprintable, not longer than a file system takes."""
    return (isinstance(value, str) and 0 < len(value) <= MAX_FILENAME
            and not value.startswith(".")
            and all(c.isprintable() and c not in "/\\" for c in value))


def size_problem(value: object) -> str | None:
    """Why ``value`` is not a file size we accept (a non-negative, bounded int), or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"size {printable(repr(value))[:40]} is not an integer"
    if not 0 <= value <= MAX_FILE_BYTES:
        return f"size {value} is outside 0..{MAX_FILE_BYTES}"
    return None


def _plain_name_problem(filename: object) -> str | None:
    if not isinstance(filename, str):
        return "the file name is not a string"
    if not filename or len(filename) > MAX_FILENAME:
        return f"the file name is empty or longer than {MAX_FILENAME} characters"
    if not _FILENAME.fullmatch(filename):
        return "the file name has characters other than letters, digits and ._+!-"
    if ".." in filename or filename.startswith((".", "-")):
        return "the file name has '..' or starts with '.' or '-'"
    return None


def sdist_name_problem(filename: object, project: str, version: str | None = None) -> str | None:
    """Why ``filename`` is not a plain sdist name of ``project`` (and ``version``), or None."""
    problem = _plain_name_problem(filename)
    if problem is not None:
        return problem
    assert isinstance(filename, str)
    try:
        name, parsed = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return "not an sdist file name (NAME-VERSION.tar.gz or .zip)"
    stem = filename.removesuffix(".tar.gz").removesuffix(".zip").rpartition("-")[0]
    if not _PROJECT.fullmatch(stem):
        return f"{stem!r} is not a project name"
    if name != canonicalize_name(project):
        return f"it names project {name!r}, not {canonicalize_name(project)!r}"
    if version is not None and parsed != _version(version):
        return f"it is version {parsed}, not {version}"
    return None


def wheel_name_problem(filename: object, project: str) -> str | None:
    """Why ``filename`` is not a plain wheel name of ``project``, or None."""
    problem = _plain_name_problem(filename)
    if problem is not None:
        return problem
    assert isinstance(filename, str)
    try:
        name = parse_wheel_filename(filename)[0]
    except InvalidWheelFilename:
        return "not a wheel file name"
    if name != canonicalize_name(project):
        return f"it names project {name!r}, not {canonicalize_name(project)!r}"
    return None


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _clean(value: object, limit: int = MAX_TEXT) -> str | None:
    """A string upstream gave us for display only: printable and bounded, else None."""
    if not isinstance(value, str):
        return None
    return printable(value, keep="")[:limit]


# -- listings ---------------------------------------------------------------------------

@dataclass(frozen=True)
class UpstreamFile:
    """One file a listing offers, as the index describes it: an sdist or a wheel, maybe
    yanked, maybe without a hash or size (HTML gives no size). ``Sdist.from_listing`` makes
    the pin the lock keeps of an sdist entry."""

    filename: str
    url: str
    sha256: str | None
    size: int | None
    upload_time: str | None
    yanked: bool
    yanked_reason: str | None
    requires_python: str | None
    has_provenance: bool = False
    declared_version: str | None = None  # git tags: the version comes from the tag

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip")) or self.declared_version is not None

    @property
    def version(self) -> Version | None:
        try:
            if self.declared_version is not None:
                return Version(self.declared_version)
            if self.filename.endswith(".whl"):
                return parse_wheel_filename(self.filename)[1]
            return parse_sdist_filename(self.filename)[1]
        except (InvalidSdistFilename, InvalidWheelFilename, InvalidVersion):
            return None


@dataclass(frozen=True)
class Rejected:
    """A file a listing offered that we refuse to consider, and why."""

    filename: str  # printable and bounded; the original may be anything
    reason: str


@dataclass(frozen=True)
class ProjectListing:
    name: str
    files: tuple[UpstreamFile, ...]
    etag: str | None = None
    rejected: tuple[Rejected, ...] = ()
    # What upstream says of the project (PEP 792): archived, quarantined or deprecated,
    # with its reason (printable, bounded); None: active, or nothing usable said.
    status: str | None = None
    status_reason: str | None = None

    def sdists(self) -> list[UpstreamFile]:
        return [f for f in self.files if f.is_sdist and f.version is not None]

    def offers(self, specifier: SpecifierSet) -> bool:
        """Whether an unyanked sdist ``specifier`` allows is listed, pre-releases
        included: policy takes one only when a range names it, but a human may approve
        it, so a requirement it meets is not one that can never be met."""
        return any(f.version is not None and not f.yanked
                   and specifier.contains(f.version, prereleases=True) for f in self.sdists())


def names_prerelease(spec: SpecifierSet | None) -> bool:
    """Whether ``spec`` names a pre-release (``==0.66b2``, ``>=2.0rc1``): only then is one
    taken. (packaging 26's ``contains`` no longer says this for a lone version.)"""
    return spec is not None and any(
        Version(s.version.rstrip(".*")).is_prerelease for s in spec
        if s.operator != "!=" and _parses(s.version.rstrip(".*")))


def _parses(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


_LEGACY = (".egg", ".exe", ".msi", ".rpm", ".dmg", ".tar.bz2", ".tar.xz", ".tgz", ".tar")


def _file_problem(filename: str, project: str) -> str | None:
    if isinstance(filename, str) and filename.endswith(".whl"):
        return wheel_name_problem(filename, project)
    return sdist_name_problem(filename, project)


def _check_file(project: str, file: UpstreamFile, policy: HostPolicy) -> str | None:
    """Why a listed file is refused, or None. Legacy formats are dropped silently."""
    problem = _file_problem(file.filename, project)
    if problem is None:
        problem = policy.file(file.url)
    if problem is None and file.sha256 is not None and not is_sha256(file.sha256):
        problem = "its sha256 is not 64 hex digits"
    if problem is None and file.size is not None:
        problem = size_problem(file.size)
    return problem


def _listing(name: str, candidates: list[UpstreamFile | Rejected],
             policy: HostPolicy) -> ProjectListing:
    files: list[UpstreamFile] = []
    rejected: list[Rejected] = []
    for item in candidates:
        if isinstance(item, Rejected):
            rejected.append(item)
            continue
        problem = _check_file(name, item, policy)
        if problem is None:
            files.append(item)
        elif not (_plain_name_problem(item.filename) is None and item.filename.endswith(_LEGACY)):
            rejected.append(Rejected(_shown(item.filename), problem))
    return ProjectListing(name=name, files=tuple(files), rejected=tuple(rejected))


def project_status(status: object, reason: object) -> tuple[str | None, str | None]:
    """PEP 792 status and reason as upstream gave them -> (status, reason) to record:
    one of the statuses other than active, and a reason made printable on one line and
    bounded; (None, None) for active or anything else (an unknown status, a non-string)."""
    if not isinstance(status, str) or status not in PROJECT_STATUSES or status == "active":
        return None, None
    if not isinstance(reason, str):
        return status, None
    # cut before escaping: a 1 MB reason costs no more than a short one
    shown = printable(" ".join(reason[:MAX_STATUS_REASON * 2].split()), keep="")
    return status, shown[:MAX_STATUS_REASON] or None


def _shown(value: object) -> str:
    return printable(value if isinstance(value, str) else repr(value), keep="")[:MAX_FILENAME]


_STATUS_META = ("pypi:project-status", "pypi:project-status-reason")


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self.meta: dict[str, str | None] = {}  # the first of each PEP 792 meta tag
        self._current: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            found = dict(attrs)
            name = found.get("name")
            if name in _STATUS_META and name not in self.meta:
                self.meta[name] = found.get("content")
        if tag == "a":
            self._current = dict(attrs)
            self._current["#text"] = ""

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current["#text"] = (self._current["#text"] or "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.links.append(self._current)
            self._current = None


def parse_html(name: str, base_url: str, text: str,
               policy: HostPolicy | None = None) -> ProjectListing:
    """PEP 503 page -> listing (no sizes or upload times in HTML)."""
    policy = policy or HostPolicy(base_url)
    parser = _LinkParser()
    parser.feed(text)
    candidates: list[UpstreamFile | Rejected] = []
    for link in parser.links:
        href = link.get("href")
        if not href:
            continue
        joined = join(base_url, href)
        if joined is None:
            candidates.append(Rejected(_shown(href)[:80], "its href is not a URL"))
            continue
        url, fragment = urldefrag(joined)
        algo, _, digest = fragment.partition("=")
        yanked = "data-yanked" in link
        filename = (link.get("#text") or "").strip() or unquote(url.rsplit("/", 1)[-1])
        candidates.append(UpstreamFile(
            filename=filename,
            url=url,
            sha256=digest.lower() if algo == "sha256" else None,
            size=None,
            upload_time=None,
            yanked=yanked,
            yanked_reason=_clean(link.get("data-yanked")) or None if yanked else None,
            requires_python=_clean(link.get("data-requires-python")),
            has_provenance=bool(link.get("data-provenance")),
        ))
    status, reason = project_status(*(parser.meta.get(k) for k in _STATUS_META))
    return replace(_listing(canonicalize_name(name), candidates, policy), status=status,
                   status_reason=reason)


def parse_json(name: str, base_url: str, data: Any,
               policy: HostPolicy | None = None) -> ProjectListing:
    """PEP 691 JSON -> listing."""
    policy = policy or HostPolicy(base_url)
    files = data.get("files", []) if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise UpstreamError(f"{base_url}: malformed PEP 691 JSON (no list of files)")
    found = data.get("project-status")
    status, reason = project_status(found.get("status"), found.get("reason")) \
        if isinstance(found, dict) else (None, None)
    return replace(_listing(canonicalize_name(name), [_json_file(base_url, i) for i in files],
                            policy), status=status, status_reason=reason)


def _json_file(base_url: str, item: object) -> UpstreamFile | Rejected:
    if not isinstance(item, dict):
        return Rejected(_shown(item)[:80], "a file entry is not an object")
    filename, url, hashes = item.get("filename"), item.get("url"), item.get("hashes", {})
    shown = _shown(filename)
    if not isinstance(filename, str) or not isinstance(url, str) or len(url) > MAX_URL:
        return Rejected(shown, "the entry has no string filename and url")
    if not isinstance(hashes, dict):
        return Rejected(shown, "its hashes are not an object")
    sha256, size = hashes.get("sha256"), item.get("size")
    if sha256 is not None and not isinstance(sha256, str):
        return Rejected(shown, "its sha256 is not a string")
    requires = item.get("requires-python")
    if requires is not None and not isinstance(requires, str):
        return Rejected(shown, "its requires-python is not a string")
    yanked, joined = item.get("yanked", False), join(base_url, url)
    if joined is None:
        return Rejected(shown, "its url is not a URL")
    return UpstreamFile(
        filename=filename,
        url=joined,
        sha256=sha256.lower() if isinstance(sha256, str) else None,
        size=size,
        upload_time=_clean(item.get("upload-time"), 64),
        # PEP 691: a bool or a reason; anything else is read as yanked (hidden, not taken)
        yanked=bool(yanked) if isinstance(yanked, bool | str) or yanked is None else True,
        yanked_reason=_clean(yanked) or None,
        requires_python=_clean(requires),
        has_provenance=bool(item.get("provenance")),
    )
