"""Check the index tree on disk against its records: what `factory index check` runs.

The records are the index's account of what it serves; everything else in the
tree is derived from them or named by them. ``inspect_index`` reports, naming
the file at fault:

- records: a record that does not load (not a regular file, not JSON, wrong
  types, file paths other than where publishing puts files);
- pages: every page (Simple API project list and project pages in HTML and
  JSON, the human project pages, the home page) must be byte for byte what the
  records render; a difference is explained (factory.index.pagediff);
- files: every file a record names is a regular file with the recorded size
  (and, deep, sha256); every wheel carries its required sidecars;
- metadata: each ``.metadata`` (PEP 658) is the METADATA inside its wheel;
- unrecorded: a file in a served area that no record names and no page
  renders (injected, or left by a publish that stopped half way); under
  ``log/`` (the transparency log, which checks itself: `factory log verify`)
  anything but a file of the tlog-tiles layout.

Nothing is read through a symbolic link, nor anything but a regular file
(factory.index.tree), and every path read is one a validated record names under
the index directory (factory.index.validation), so no record can make the check
read outside it. Each page is rendered once per project, not once per file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from factory.index import pages
from factory.index.pagediff import (
    Diff,
    html_links_diff,
    html_project_diff,
    json_list_diff,
    json_project_diff,
)
from factory.index.records import (
    PRIVATE_KEY_MARK,
    REQUIRED_SIDECARS,
    SIDECAR_SUFFIXES,
    TRUST_MAX_BYTES,
    IndexCorruptError,
    Layout,
    ProjectRecord,
    Sidecars,
    StoredFile,
    list_projects,
    read_trust_manifest,
)
from factory.index.regen import home_page, project_page, read_catalog, summary
from factory.index.tree import (
    NotReadable,
    TooLarge,
    digest_regular,
    read_regular,
    walk,
    wheel_metadata,
)
from factory.index.validation import Invalid, clip, load_record, trust_entry
from factory.sign.tiles import PREFIX as LOG_PREFIX
from factory.sign.tiles import parse_path as parse_log_path
from factory.sign.tuf_paths import PREFIX as TUF_PREFIX
from factory.sign.tuf_paths import is_repository_path

# What each finding is about (also the names of the index checks of `factory verify --all`).
RECORDS, PAGES, FILES, METADATA, UNRECORDED = "records", "pages", "files", "metadata", "unrecorded"
AREAS = (RECORDS, PAGES, FILES, METADATA, UNRECORDED)

_SERVED_DIRS = ("simple", "files", "sources", "project")  # per-project areas
_PAGE_LIMIT = 64 << 20  # a page larger than this is not one the records render
_MAX_UNRECORDED = 100  # findings listed one by one; the rest are counted
_GENERATED = re.compile(r"page generated (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC)\.")


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
                                    clip(exc.message.split(": ", 1)[-1], 300)))
            continue
        if record is not None:
            records[project] = record
    found = dict(walk(root))
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
        try:
            stored = trust_entry(name, item)  # the rule `factory serve` applies
        except Invalid:
            out.append(Finding(FILES, "records/_trust.json", f"names {clip(name)!r} oddly"))
            continue
        try:
            data = read_regular(layout.root, stored.path, TRUST_MAX_BYTES)
        except NotReadable as exc:
            out.append(Finding(FILES, stored.path, f"is served as trust material, but {exc}"))
            continue
        if PRIVATE_KEY_MARK in data:
            out.append(Finding(FILES, stored.path, "holds a private key; serve refuses it"))
        elif (len(data), sha256(data).hexdigest()) != (stored.size, stored.sha256):
            out.append(Finding(FILES, stored.path, "differs from the trust manifest"))
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
            suffix = "/" + Sidecars.name(f"files/{record.name}/{entry.filename}", "provenance")
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
        (f"simple/{name}/index.json", pages.project_json(record, base_url), json_project_diff),
        (f"simple/{name}/index.html", pages.project_html(record, base_url), html_project_diff),
        (f"project/{name}/index.html", project_page(layout, record, base_url), html_links_diff),
    ]
    findings = []
    for rel, expected, diff in rendered:
        findings += _page(layout, rel, expected, diff, f"records/{name}.json")
    return findings


def _check_shared_pages(layout: Layout, records: list[ProjectRecord],
                        base_url: str) -> list[Finding]:
    names = [(r.name, r.display_name) for r in sorted(records, key=lambda r: r.name)]
    source = "the records"
    findings = _page(layout, "simple/index.json", pages.project_list_json(names),
                     json_list_diff, source, optional=not records)
    findings += _page(layout, "simple/index.html", pages.project_list_html(names),
                      html_links_diff, source, optional=not records)
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
    findings += _page(layout, "index.html", expected, html_links_diff, source,
                      actual.encode("utf-8"))
    return findings


def _page(layout: Layout, rel: str, expected: str, diff: Callable[[str, str], Diff],
          source: str, actual: bytes | None = None, optional: bool = False) -> list[Finding]:
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
    differences = diff(text, expected) or [
        (f"differs from what {source} render (outside its links)", False)]
    findings = []
    for what, fetched in differences[:20]:
        findings.append(Finding(PAGES, rel, f"{what}; `factory index rebuild` rewrites it from "
                                            f"{source}", interrupted=not fetched))
    return findings


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
                               f"{', '.join(Sidecars.suffix(k) for k in missing)}"))
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
        if top == TUF_PREFIX:  # the TUF repository: signed metadata (factory.sign.tuf_repo)
            if kind == "dir" or (kind == "file" and is_repository_path(rest)):
                continue
            out.append(Finding(UNRECORDED, rel, f"is {kind}, not a file of the index's TUF "
                                                "repository (factory.sign.tuf_repo)"))
            continue
        if top == LOG_PREFIX:  # the transparency log: self-verifying (`factory log verify`)
            if kind == "dir" or (kind == "file" and parse_log_path(rest) is not None):
                continue
            out.append(Finding(UNRECORDED, rel, f"is {kind}, not a file of the published "
                                                "transparency log (docs/transparency.md)"))
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
    if wheel is None or (len(parts) > 3 and not name.endswith(Sidecars.suffix("in-toto"))):
        return False
    try:
        if str(parse_wheel_filename(wheel)[0]) != project:
            return False
    except InvalidWheelFilename:
        return False
    return record is None or record.find(wheel) is None


def _wheel_of(name: str) -> str | None:
    """The wheel ``name`` is, or is a sidecar of (by its suffix); None if neither."""
    for kind in ("metadata", *SIDECAR_SUFFIXES):
        suffix = Sidecars.suffix(kind)
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name if name.endswith(".whl") else None
