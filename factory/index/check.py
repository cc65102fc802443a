"""Check the index tree on disk against its records: what `factory index check` runs.

The records are the index's account of what it serves; everything else in the
tree is derived from them or named by them. ``inspect_index`` reports, naming
the file at fault:

- records: a record that does not load (not a regular file, not JSON, wrong
  types, file paths other than where publishing puts files);
- pages: every page (Simple API project list and project pages in HTML and
  JSON, the human project pages, the home page) must be byte for byte what the
  records render; a difference is explained (a hash, a yank, a link no record
  names);
- files: every file a record names is a regular file with the recorded size
  (and, deep, sha256); every wheel carries its required sidecars;
- metadata: each ``.metadata`` (PEP 658) is the METADATA inside its wheel;
- unrecorded: a file in a served area that no record names and no page
  renders (injected, or left by a publish that stopped half way).

Nothing is read through a symbolic link, nor anything but a regular file, and
every path read is one a validated record names under the index directory
(factory.index.records), so no record can make the check read outside it.
Each page is rendered once per project, not once per file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import sha256
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from factory.index import human, pages
from factory.index.records import (
    METADATA_SUFFIX,
    PRIVATE_KEY_MARK,
    REQUIRED_SIDECARS,
    SIDECAR_SUFFIXES,
    TRUST_MAX_BYTES,
    TRUST_NAME,
    IndexCorruptError,
    Layout,
    ProjectRecord,
    StoredFile,
    list_projects,
    load_record,
    read_trust_manifest,
)

# What each finding is about (also the names of the index checks of `factory verify --all`).
RECORDS, PAGES, FILES, METADATA, UNRECORDED = "records", "pages", "files", "metadata", "unrecorded"
AREAS = (RECORDS, PAGES, FILES, METADATA, UNRECORDED)

_SERVED_DIRS = ("simple", "files", "sources", "project")  # per-project areas
_TOP = {"index.html", "records", "trust", *_SERVED_DIRS}
_CHUNK = 1 << 20
_PAGE_LIMIT = 64 << 20  # a page larger than this is not one the records render
_MAX_UNRECORDED = 100  # findings listed one by one; the rest are counted
_GENERATED = re.compile(r"page generated (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC)\.")
# Page attributes (JSON keys, HTML attributes) that decide which bytes an
# installer fetches and trusts: a difference there is never an interrupted publish.
_LINK_KEYS = frozenset({"url", "hashes", "core-metadata", "dist-info-metadata", "provenance",
                        "href", "data-core-metadata", "data-dist-info-metadata",
                        "data-provenance"})
_ACTIVE_TAGS = frozenset({"base", "script", "iframe", "form", "object", "embed", "link"})


@dataclass(frozen=True)
class Finding:
    """One problem, naming the file at fault (a path relative to the index directory)."""

    area: str
    path: str
    message: str
    # Also what a publish that stopped half way leaves (a page behind its record, a
    # file no record names yet); never a page that names other bytes than recorded.
    interrupted: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def shown(text: str, limit: int = 100) -> str:
    """``text`` from disk made safe to print: no control characters, bounded length."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return out + ("…" if len(text) > limit else "")


# -- reading under the index, never through a link -------------------------------------
class NotReadable(Exception):
    """Why a path under the index cannot be read as a regular file (a few words)."""


class TooLarge(NotReadable):
    """Longer than the caller's limit."""


def open_regular(root: Path, rel: str) -> int:
    """A descriptor of the regular file ``rel`` under ``root``.

    Every component is opened relative to its parent with O_NOFOLLOW: a symbolic
    link anywhere below ``root`` is refused, not followed; a FIFO or device is
    refused without blocking.
    """
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise NotReadable("is not a plain path under the index")
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise NotReadable(f"cannot be read (index directory: {exc.strerror})") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, flags | os.O_DIRECTORY, dir_fd=directory)
            os.close(directory)
            directory = inner
        fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=directory)
    except FileNotFoundError:
        raise NotReadable("is missing") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotReadable("is reached through a symbolic link (or a non-directory)") from None
        raise NotReadable(f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotReadable("is not a regular file")
    return fd


def read_regular(root: Path, rel: str, limit: int) -> bytes:
    """The bytes of ``rel`` (see open_regular); NotReadable past ``limit`` bytes."""
    with os.fdopen(open_regular(root, rel), "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"is larger than {limit} bytes")
    return data


def digest_regular(root: Path, rel: str) -> tuple[str, int]:
    digest, size = sha256(), 0
    with os.fdopen(open_regular(root, rel), "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def wheel_metadata(root: Path, wheel_rel: str, limit: int) -> bytes:
    """The wheel's ``*.dist-info/METADATA``, read no further than ``limit`` bytes.

    NotReadable when the wheel is not a zip with exactly one such member, or the
    member is larger than ``limit`` (a member's declared size is not trusted).
    """
    with os.fdopen(open_regular(root, wheel_rel), "rb") as handle:
        return metadata_in(handle, limit)


def metadata_in(handle: Any, limit: int) -> bytes:
    """``wheel_metadata`` of an open wheel file."""
    try:
        with zipfile.ZipFile(handle) as archive:
            names = [n for n in archive.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise NotReadable(f"holds {len(names)} .dist-info/METADATA files, not 1")
            with archive.open(names[0]) as member:
                data: bytes = member.read(limit + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError,
            NotImplementedError, RuntimeError, OSError) as exc:
        raise NotReadable(f"is not a readable wheel ({type(exc).__name__})") from None
    if len(data) > limit:
        raise TooLarge(f"holds a METADATA larger than {limit} bytes")
    return data


# -- the check --------------------------------------------------------------------------------
Loader = Callable[[str], "ProjectRecord | None"]  # a project's record; IndexCorruptError


def inspect_index(root: Path, base_url: str | None = None, *, deep: bool = True,
                  wheels: bool = True, load: Loader | None = None) -> list[Finding]:
    """Every problem of the index at ``root``, in a stable order.

    ``base_url``: the index's public URL the pages were rendered with (None: read
    it from the pages, which must all agree). ``deep``: hash every recorded file
    and compare each ``.metadata`` with its wheel (else: type and size only).
    ``wheels=False`` leaves the wheels' own digests and metadata to the caller.
    ``load``: how records are read (`factory verify` passes its cached reader).
    """
    layout = Layout(root)
    load = load or (lambda project: load_record(layout, project))
    findings: list[Finding] = []
    records: dict[str, ProjectRecord] = {}
    corrupt: set[str] = set()
    try:
        projects = list_projects(layout)
    except OSError as exc:
        return [Finding(RECORDS, "records", f"cannot be listed ({exc.strerror})")]
    for project in projects:
        try:
            record = load(project)
        except IndexCorruptError as exc:
            corrupt.add(project)
            findings.append(Finding(RECORDS, f"records/{project}.json",
                                    shown(exc.message.split(": ", 1)[-1], 300)))
            continue
        if record is not None:
            records[project] = record
    found = dict(_walk(root))
    if not records and not corrupt and not layout.records.is_dir():
        return findings + _unrecorded(found, records, corrupt)  # nothing published yet
    base = base_url if base_url is not None else infer_base_url(layout, records)
    for record in records.values():
        findings += _project_pages(layout, record, base)
        findings += _recorded_files(layout, record, found, deep, wheels)
    findings += _check_shared_pages(layout, list(records.values()), base)
    findings += _trust_files(layout, found)
    findings += _unrecorded(found, records, corrupt)
    return findings


def _trust_files(layout: Layout, found: dict[str, tuple[str, int]]) -> list[Finding]:
    """What /.well-known/factory/ serves: each file the trust manifest names is a small
    regular file with the recorded digest and no private key; trust/ holds nothing else."""
    out: list[Finding] = []
    manifest = read_trust_manifest(layout)
    for name, item in sorted(manifest.items()):
        rel = f"trust/{name}"
        try:
            stored = StoredFile(**item)
        except TypeError:
            stored = None
        if stored is None or not TRUST_NAME.fullmatch(name) or stored.path != rel:
            out.append(Finding(FILES, "records/_trust.json", f"names {shown(name)!r} oddly"))
            continue
        try:
            data = read_regular(layout.root, rel, TRUST_MAX_BYTES)
        except NotReadable as exc:
            out.append(Finding(FILES, rel, f"is served as trust material, but {exc}"))
            continue
        if PRIVATE_KEY_MARK in data:
            out.append(Finding(FILES, rel, "holds a private key; serve refuses it"))
        elif (len(data), sha256(data).hexdigest()) != (stored.size, stored.sha256):
            out.append(Finding(FILES, rel, "differs from the trust manifest"))
    for rel, (kind, _) in sorted(found.items()):
        top, _, name = rel.partition("/")
        if top == "trust" and kind == "file" and name not in manifest:
            out.append(Finding(UNRECORDED, rel, "is in trust/ but the trust manifest does "
                                                "not name it (serve never sends it)"))
    return out


_INSTALL = re.compile(r"--index-url (\S+?)/simple/ ")


def infer_base_url(layout: Layout, records: dict[str, ProjectRecord]) -> str:
    """The base URL the pages were rendered with, read from a provenance link.

    Used when the checker is not the index's own (an auditor's copy): every page
    is then compared with pages rendered from this one URL, so pages that
    disagree about it are still reported.
    """
    for record in records.values():
        for entry in pages.offered_files(record):
            if "provenance" not in entry.sidecars:
                continue
            try:
                data = json.loads(read_regular(layout.root, f"simple/{record.name}/index.json",
                                               _PAGE_LIMIT))
                files = {f.get("filename"): f for f in data["files"]}
                url = files[entry.filename]["provenance"]
            except (NotReadable, ValueError, KeyError, TypeError, AttributeError):
                break  # this page is broken: its own check says so; try another
            suffix = f"/files/{record.name}/{entry.filename}.provenance"
            if isinstance(url, str) and url.endswith(suffix):
                return url[: -len(suffix)]
            break
    try:
        home = read_regular(layout.root, "index.html", _PAGE_LIMIT).decode("utf-8", "replace")
    except NotReadable:
        home = ""
    found = _INSTALL.search(home)
    return found.group(1) if found else "http://127.0.0.1:8700"


# -- pages -----------------------------------------------------------------------------------
def _project_pages(layout: Layout, record: ProjectRecord, base_url: str) -> list[Finding]:
    name = record.name
    rendered = [
        (f"simple/{name}/index.json", pages.project_json(record, base_url), _json_project_diff),
        (f"simple/{name}/index.html", pages.project_html(record, base_url), _html_project_diff),
        (f"project/{name}/index.html", human.render_project(record, base_url), _html_links_diff),
    ]
    findings = []
    for rel, expected, diff in rendered:
        findings += _page(layout, rel, expected, diff, f"records/{name}.json")
    return findings


def _check_shared_pages(layout: Layout, records: list[ProjectRecord],
                        base_url: str) -> list[Finding]:
    from factory.index.regen import home_page, read_catalog, summary

    names = [(r.name, r.display_name) for r in sorted(records, key=lambda r: r.name)]
    source = "the records"
    findings = _page(layout, "simple/index.json", pages.project_list_json(names),
                     _json_list_diff, source, optional=not records)
    findings += _page(layout, "simple/index.html", pages.project_list_html(names),
                      _html_links_diff, source, optional=not records)
    catalog = {r.name: summary(r) for r in records}
    if read_catalog(layout) != catalog:
        findings.append(Finding(PAGES, "records/_catalog.json", "differs from the records (the "
                                "home page is made from it); run `factory index rebuild`",
                                interrupted=True))
    try:
        actual = read_regular(layout.root, "index.html", _PAGE_LIMIT).decode("utf-8", "replace")
    except NotReadable as exc:
        if str(exc) != "is missing" or records:
            findings.append(Finding(PAGES, "index.html", str(exc), interrupted=True))
        return findings
    found = _GENERATED.search(actual)
    try:
        expected = home_page(layout, catalog, base_url, found.group(1) if found else "?")
    except Exception as exc:  # the status rows are data too: a broken file is a finding
        findings.append(Finding(PAGES, "records/_status.json", "cannot be rendered on the home "
                                f"page ({type(exc).__name__})"))
        return findings
    findings += _page(layout, "index.html", expected, _html_links_diff, source,
                      actual.encode("utf-8"))
    return findings


Diff = list[tuple[str, bool]]  # (what differs, whether it touches what installers fetch)


def _page(layout: Layout, rel: str, expected: str, diff: Any, source: str,
          actual: bytes | None = None, optional: bool = False) -> list[Finding]:
    if actual is None:
        try:
            actual = read_regular(layout.root, rel, _PAGE_LIMIT)
        except NotReadable as exc:
            if str(exc) == "is missing" and optional:
                return []
            if str(exc) == "is missing":
                return [Finding(PAGES, rel, f"is missing; {source} publish it (run `factory "
                                            "index rebuild`)", interrupted=True)]
            return [Finding(PAGES, rel, str(exc))]
    if actual == expected.encode("utf-8"):
        return []
    text = actual.decode("utf-8", "replace")
    differences: Diff = diff(text, expected) or [
        (f"differs from what {source} render (outside its links)", False)]
    findings = []
    for what, fetched in differences[:20]:
        findings.append(Finding(PAGES, rel, f"{what}; `factory index rebuild` rewrites it from "
                                            f"{source}", interrupted=not fetched))
    return findings


def _json_project_diff(text: str, expected: str) -> Diff:
    want = json.loads(expected)
    try:
        data = json.loads(text)
        files = data["files"]
        got = {str(f["filename"]): f for f in files}
    except (ValueError, RecursionError, KeyError, TypeError):
        return [("is not a Simple API project page (JSON)", True)]
    out: Diff = []
    if len(got) != len(files):
        out.append(("names a file twice", True))
    wanted = {f["filename"]: f for f in want["files"]}
    for filename in sorted(set(got) - set(wanted)):
        out.append((f"names {shown(filename)}, which the record does not offer", True))
    for filename in sorted(set(wanted) - set(got)):
        out.append((f"does not name {filename}, which the record offers", False))
    for filename in sorted(set(got) & set(wanted)):
        a, b = got[filename], wanted[filename]
        if not isinstance(a, dict):
            out.append((f"{shown(filename)}: is not an object", True))
            continue
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                out.append((f"{filename}: {shown(str(key))} is {_value(a.get(key))}, the record "
                            f"gives {_value(b.get(key))}", str(key) in _LINK_KEYS or key not in b))
    for key in sorted((set(data) | set(want)) - {"files"}, key=str):
        if data.get(key) != want.get(key):
            out.append((f"{shown(str(key))} is {_value(data.get(key))}, the record gives "
                        f"{_value(want.get(key))}", key not in want))
    return out


def _json_list_diff(text: str, expected: str) -> Diff:
    want = json.loads(expected)
    try:
        data = json.loads(text)
        got = Counter(str(p["name"]) for p in data["projects"])
    except (ValueError, RecursionError, KeyError, TypeError):
        return [("is not a Simple API project list (JSON)", True)]
    wanted = Counter(p["name"] for p in want["projects"])
    out: Diff = [(f"lists {shown(n)}, which no record publishes", True)
                 for n in sorted(got - wanted)]
    out += [(f"does not list {n}", False) for n in sorted(wanted - got)]
    for key in sorted((set(data) | set(want)) - {"projects"}, key=str):
        if data.get(key) != want.get(key):
            out.append((f"{shown(str(key))} differs", key not in want))
    return out


class _Links(HTMLParser):
    """The anchors of a page (href without fragment -> attributes) and its other tags."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[str, dict[str, str]]] = []
        self.tags: Counter[tuple[str, str]] = Counter()
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "a":
            self.anchors.append((values.get("href", ""), values))
        else:
            self.tags[(tag, json.dumps(sorted(values.items())))] += 1


def _links(text: str) -> _Links:
    return _Links(text)


def _html_links_diff(text: str, expected: str) -> Diff:
    got, want = _links(text), _links(expected)
    out: Diff = []
    got_hrefs = Counter(h for h, _ in got.anchors)
    want_hrefs = Counter(h for h, _ in want.anchors)
    out += [(f"links to {shown(h)}, which the records do not give", True)
            for h in sorted(got_hrefs - want_hrefs)]
    out += [(f"has no link to {shown(h)}", False) for h in sorted(want_hrefs - got_hrefs)]
    out += _tag_diff(got, want)
    return out


def _tag_diff(got: _Links, want: _Links) -> Diff:
    out: Diff = []
    for tag, attrs in sorted(got.tags - want.tags):
        out.append((f"holds a <{shown(tag)}> element the records do not give ({shown(attrs)})",
                    tag in _ACTIVE_TAGS or (tag == "meta" and "http-equiv" in attrs)))
    return out


def _file_key(href: str) -> str:
    return unquote(urlsplit(href).path.rsplit("/", 1)[-1])


def _html_project_diff(text: str, expected: str) -> Diff:
    got, want = _links(text), _links(expected)
    by_file: dict[str, dict[str, str]] = {}
    out: Diff = []
    for href, attrs in got.anchors:
        key = _file_key(href)
        if key in by_file:
            out.append((f"links to {shown(key)} twice", True))
        by_file[key] = attrs
    wanted = {_file_key(h): attrs for h, attrs in want.anchors}
    for key in sorted(set(by_file) - set(wanted)):
        out.append((f"links to {shown(by_file[key].get('href', ''))}, which the record does "
                    "not offer", True))
    for key in sorted(set(wanted) - set(by_file)):
        out.append((f"has no link to {key}, which the record offers", False))
    for key in sorted(set(by_file) & set(wanted)):
        a, b = by_file[key], wanted[key]
        for attr in sorted(set(a) | set(b)):
            if a.get(attr) != b.get(attr):
                out.append((f"{key}: {shown(attr)} is {_attr(a.get(attr))}, the record gives "
                            f"{_attr(b.get(attr))}", attr in _LINK_KEYS or attr not in b))
    return out + _tag_diff(got, want)


def _value(value: Any) -> str:
    return shown(json.dumps(value, sort_keys=True), 80)


def _attr(value: str | None) -> str:
    return "absent" if value is None else repr(shown(value, 80))


# -- recorded files ------------------------------------------------------------------------------
def _recorded_files(layout: Layout, record: ProjectRecord, found: dict[str, tuple[str, int]],
                    deep: bool, wheels: bool) -> list[Finding]:
    root, out = layout.root, []
    wheel_paths = {f"files/{record.name}/{e.filename}" for e in record.files}
    intact: set[str] = set()
    for stored in record.served().values():
        hashed = deep and (wheels or stored.path not in wheel_paths)
        problem = _stored_problem(root, stored, found.get(stored.path), hashed)
        if problem:
            out.append(Finding(FILES, stored.path, problem))
        else:
            intact.add(stored.path)
    for entry in record.files:
        wheel = f"files/{record.name}/{entry.filename}"
        missing = sorted(REQUIRED_SIDECARS - set(entry.sidecars))
        if missing:
            out.append(Finding(FILES, f"records/{record.name}.json",
                               f"{entry.filename} is published without its "
                               f"{', '.join(SIDECAR_SUFFIXES[k] for k in missing)}"))
        if deep and wheels and {wheel, entry.metadata.path} <= intact:
            out += _metadata(root, wheel, entry.metadata)
    return out


def _stored_problem(root: Path, stored: StoredFile, seen: tuple[str, int] | None,
                    hashed: bool) -> str | None:
    """``seen``: what the walk of the tree found there (kind, size), never through a link."""
    if seen is None:
        return "recorded, but is missing (or is reached through a symbolic link)"
    kind, size = seen
    if kind != "file":
        return f"recorded, but is {kind}"
    digest = stored.sha256
    if hashed:
        try:
            digest, size = digest_regular(root, stored.path)
        except NotReadable as exc:
            return f"recorded, but {exc}"
    if size != stored.size:
        return f"differs from the record: {size} bytes, recorded {stored.size}"
    if digest != stored.sha256:
        return f"differs from the record: sha256 {digest[:16]}…, recorded {stored.sha256[:16]}…"
    return None


def _metadata(root: Path, wheel: str, metadata: StoredFile) -> list[Finding]:
    try:
        inside: bytes | None = wheel_metadata(root, wheel, metadata.size)
    except TooLarge:
        inside = None  # longer than the served file: not the same bytes
    except NotReadable as exc:
        return [Finding(METADATA, wheel, str(exc))]
    try:
        served = read_regular(root, metadata.path, metadata.size)
    except NotReadable as exc:
        return [Finding(METADATA, metadata.path, str(exc))]
    if inside != served:
        name = wheel.rsplit("/", 1)[-1]
        return [Finding(METADATA, metadata.path, f"is not the METADATA inside {name} (PEP 658 "
                                                 "metadata must be the wheel's own)")]
    return []


# -- files no record names -----------------------------------------------------------------------
def _unrecorded(found: dict[str, tuple[str, int]], records: dict[str, ProjectRecord],
                corrupt: set[str]) -> list[Finding]:
    expected = {"index.html", "simple/index.html", "simple/index.json"}
    for name, record in records.items():
        expected |= set(record.served())
        expected |= {f"simple/{name}/index.html", f"simple/{name}/index.json",
                     f"project/{name}/index.html"}
    out: list[Finding] = []
    for rel, (kind, _) in found.items():
        top, _, rest = rel.partition("/")
        if top == "records" or (top in _SERVED_DIRS and rest.split("/")[0] in corrupt):
            continue  # not served / reported as its record
        if top == "trust":
            if kind not in ("file", "dir"):
                out.append(Finding(FILES, rel, f"is {kind}: trust material is plain files"))
            continue
        if kind == "dir" or rel in expected:
            continue  # a recorded file that is not regular: the files check says so
        out.append(_orphan(rel, kind, records))
    if len(out) > _MAX_UNRECORDED:
        more = len(out) - _MAX_UNRECORDED
        out = out[:_MAX_UNRECORDED] + [Finding(UNRECORDED, "files/", f"and {more} more files "
                                               "no record names", all(f.interrupted
                                                                      for f in out))]
    return out


def _orphan(rel: str, kind: str, records: dict[str, ProjectRecord]) -> Finding:
    if kind != "file":
        return Finding(UNRECORDED, rel, f"is {kind}, and no record names it")
    return Finding(UNRECORDED, rel, "no record names this file (put there, or left by a "
                                    "publish that stopped): `factory serve` never sends it, a "
                                    "static web server does; remove it",
                   interrupted=_left_by_publish(rel, records))


def _left_by_publish(rel: str, records: dict[str, ProjectRecord]) -> bool:
    """Whether ``rel`` is a file a publish places before its record names it."""
    parts = rel.split("/")
    if len(parts) < 3 or parts[0] not in ("files", "sources"):
        return False
    project, name = parts[1], parts[2]
    record = records.get(project)
    if parts[0] == "sources":
        try:
            return len(parts) == 3 and str(parse_sdist_filename(name)[0]) == project
        except InvalidSdistFilename:
            return False
    wheel = _wheel_of(name)
    if wheel is None or (len(parts) > 3 and not name.endswith(SIDECAR_SUFFIXES["in-toto"])):
        return False
    try:
        if str(parse_wheel_filename(wheel)[0]) != project:
            return False
    except InvalidWheelFilename:
        return False
    return record is None or record.find(wheel) is None


def _wheel_of(name: str) -> str | None:
    for suffix in ("", METADATA_SUFFIX, *SIDECAR_SUFFIXES.values()):
        if suffix and name.endswith(suffix):
            return name[: -len(suffix)]
    return name if name.endswith(".whl") else None


def _walk(root: Path) -> Iterator[tuple[str, tuple[str, int]]]:
    """(path, (kind, size)) of every entry below ``root``, never through a link; dot
    names skipped (no server sends them: temporary files, the publish lock)."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(root / rel if rel else root) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = f"{rel}/{entry.name}" if rel else entry.name
            shown_path = shown(path, 300)
            try:
                if entry.is_symlink():
                    yield shown_path, ("a symbolic link", 0)
                elif entry.is_dir(follow_symlinks=False):
                    yield shown_path, ("dir", 0)
                    if shown_path == path:
                        stack.append(path)
                elif entry.is_file(follow_symlinks=False):
                    yield shown_path, ("file", entry.stat(follow_symlinks=False).st_size)
                else:
                    yield shown_path, ("a special file (FIFO, device or socket)", 0)
            except OSError:
                yield shown_path, ("unreadable", 0)
