"""Write the pages derived from records, each atomically.

``write_project_pages`` touches one project: its own pages, and its entry in each
document that lists every project (the catalog, the project list, the home page),
put into the text as last written (factory.index.splice), so a publish costs the
same whatever the size of the index: no other record is read, no other entry
parsed or rendered. ``rebuild_all`` regenerates everything from the records
(recovery, or a new base URL). A corrupt record stops only its own project: the
others are listed and rebuilt.

A change first names its project in the pending note (``begin``; .pending.json at
the index root, never served) and removes it when every page is written
(``finish``). A change killed in between leaves the note: the next change of any
project (``recover``) sweeps the temporary files and rewrites the noted projects'
pages and entries from their records. The caller holds the publisher's lock
(factory.index.changes.Index).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from factory._internal.atomic import canonical_json, write_json, write_text
from factory.index import about, human, pages, splice
from factory.index.records import (
    IndexCorruptError,
    Layout,
    ProjectRecord,
    Sidecars,
    is_normalized,
    list_projects,
)
from factory.index.store import clean_leftovers
from factory.index.tree import NotReadable, read_regular
from factory.index.validation import load_catalog, load_record


def write_project_pages(layout: Layout, record: ProjectRecord, base_url: str) -> None:
    """The project's pages, then its entry in the catalog, the project list and the home.

    A project's first pages also rewrite the pages of the projects that depend on it
    (``dependents``): they said it is not on this index."""
    first = not (layout.human_project(record.name) / "index.html").is_file()
    waiting = dependents(layout, record.name) if first else []
    if waiting:
        begin(layout, waiting)  # a kill from here on: `recover` rewrites them too
    _write_pages(layout, record, base_url)
    for project in waiting:
        try:
            other = load_record(layout, project)
        except IndexCorruptError:
            continue  # its pages stay as they are: `factory index check` names it
        if other is not None:
            write_text(layout.human_project(project) / "index.html",
                       project_page(layout, other, base_url))
    line = summary(record)
    _put_catalog(layout, record.name, line)
    _put_listed(layout, record)
    _put_home(layout, base_url, (record.name, line))


def _write_pages(layout: Layout, record: ProjectRecord, base_url: str) -> None:
    simple = layout.simple_project(record.name)
    write_text(simple / "index.json", pages.project_json(record, base_url))
    write_text(simple / "index.html", pages.project_html(record, base_url))
    facts = _facts(layout, record)
    _note_dependent(layout, record.name, about.dependencies_of(facts))
    write_text(layout.human_project(record.name) / "index.html",
               human.render_project(record, base_url, facts))


def project_page(layout: Layout, record: ProjectRecord, base_url: str) -> str:
    """The human page of ``record``, with what the index knows about it (factory.index.about;
    `factory index check` renders it the same way)."""
    return human.render_project(record, base_url, _facts(layout, record))


def _facts(layout: Layout, record: ProjectRecord) -> about.About:
    return about.gather(record, about.reader(layout.root), about.served_in(layout.root))


# -- who depends on whom -------------------------------------------------------------------
# records/_dependents/<name>.json: the projects whose page names <name> as a dependency
# (a superset: a project that dropped the dependency stays listed, and rewriting its
# page then changes nothing). Read when <name> gets its first pages, so a publish reads
# no other project's record to find them.
DEPENDENTS = "_dependents"
_DEPENDENTS_LIMIT = 4 << 20


def dependents(layout: Layout, project: str) -> list[str]:
    """The projects noted as naming ``project`` among their dependencies."""
    text = _read_own(layout, f"records/{DEPENDENTS}/{project}.json", _DEPENDENTS_LIMIT)
    try:
        names = json.loads(text) if text is not None else []
    except ValueError:
        return []
    if not isinstance(names, list):
        return []
    return sorted({n for n in names if isinstance(n, str) and is_normalized(n)} - {project})


def _note_dependent(layout: Layout, project: str, names: list[str]) -> None:
    for name in names:
        if name == project or not about.is_record_name(name):
            continue
        noted = dependents(layout, name)
        if project not in noted:
            write_json(layout.records / DEPENDENTS / f"{name}.json", sorted([*noted, project]))


def write_project_list(layout: Layout) -> None:
    """The project list, whole, from every record (the rebuild)."""
    names = [(r.name, r.display_name) for r in readable_records(layout)[0]]
    # HTML then JSON, in the order a publish puts its project in them (``_put_listed``).
    write_text(layout.simple / "index.html", pages.project_list_html(names))
    write_text(layout.simple / "index.json", pages.project_list_json(names))


def readable_records(layout: Layout) -> tuple[list[ProjectRecord], list[IndexCorruptError]]:
    """Every record that loads, and the error of each that does not (in name order)."""
    records, corrupt = [], []
    for project in list_projects(layout):
        try:
            record = load_record(layout, project)
        except IndexCorruptError as exc:
            corrupt.append(exc)
            continue
        if record is not None:
            records.append(record)
    return records, corrupt


def summary(record: ProjectRecord) -> dict[str, Any]:
    """The record's line in the catalog (and on the home page)."""
    checked = [f for f in record.files if f.advisories is not None]
    return {
        "name": record.name,
        "display_name": record.display_name,
        "latest": record.latest(),
        "files": len(record.files),
        "yanked": sum(1 for f in record.files if f.yanked),
        "status": record.status,
        "advisories": (
            sum(1 for f in checked if f.advisories) if len(checked) == len(record.files) else None
        ),
        "updated": max((f.upload_time for f in record.files), default=None),
        # the PEP 792 reason, for the 404 and `factory why` (only when there is one: an
        # index published before it was recorded here stays consistent)
        **({"status_reason": record.status_reason} if record.status_reason else {}),
    }


def _put_catalog(layout: Layout, name: str, line: dict[str, Any]) -> None:
    text = _read_own(layout, _CATALOG)
    spliced = splice.catalog_put(text, name, line) if text is not None else None
    if spliced is None:  # none yet, or not as written here: made again from the records
        catalog = {r.name: summary(r) for r in readable_records(layout)[0]}
        catalog[name] = line
        spliced = canonical_json(catalog)
    if spliced != text:
        write_text(layout.catalog, spliced)


def _put_listed(layout: Layout, record: ProjectRecord) -> None:
    """The project in the project list (HTML, then JSON: see write_project_list)."""
    names = [(record.name, record.display_name)]
    line = _between(pages.project_list_html(names), '<a href="', "\n")
    entry = _between(pages.project_list_json(names), "  {\n", "\n ]")
    html, data = _read_own(layout, "simple/index.html"), _read_own(layout, "simple/index.json")
    new_html = splice.list_html_put(html, record.name, line) if html is not None else None
    new_data = splice.list_json_put(data, record.name, entry) if data is not None else None
    if new_html is None or new_data is None:
        listed = [(row["name"], row["display_name"]) for row in _catalog_rows(layout)]
        new_html, new_data = pages.project_list_html(listed), pages.project_list_json(listed)
    if new_html != html:
        write_text(layout.simple / "index.html", new_html)
    if new_data != data:
        write_text(layout.simple / "index.json", new_data)


def _between(text: str, start: str, end: str) -> str:
    """The one entry of a document rendered for one project (as the whole one renders it)."""
    at = text.index(start)
    return text[at:text.index(end, at)]


_DOCUMENT_LIMIT = 64 << 20  # as `factory index check` reads pages


def _read_own(layout: Layout, rel: str, limit: int = _DOCUMENT_LIMIT) -> str | None:
    """A document this module writes, as text; None if missing or not one it wrote.

    Read as the check reads pages (factory.index.tree): never through a link, never
    a FIFO (which would block the publisher), bounded."""
    try:
        return read_regular(layout.root, rel, limit).decode("utf-8")
    except (NotReadable, UnicodeDecodeError):
        return None


def _catalog_rows(layout: Layout) -> list[dict[str, Any]]:
    """The catalog's rows in name order (from the records if it does not load)."""
    try:
        return load_catalog(layout)
    except IndexCorruptError:
        return [summary(r) for r in readable_records(layout)[0]]


def read_catalog(layout: Layout) -> dict[str, dict[str, Any]]:
    try:
        data: dict[str, dict[str, Any]] = json.loads(layout.catalog.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data


_CATALOG = "records/_catalog.json"  # layout.catalog
STATUS_FILE = "_status.json"  # in records/: the watch cycle's view of upstream and policy


def read_status(layout: Layout) -> list[dict[str, Any]]:
    try:
        rows: list[dict[str, Any]] = json.loads(
            (layout.records / STATUS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    return rows


def write_status(layout: Layout, rows: list[dict[str, Any]], base_url: str) -> None:
    """records/_status.json (the data the server renders), then the static home page."""
    write_json(layout.records / STATUS_FILE, rows)
    _put_home(layout, base_url, None)


GENERATED_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def _now() -> str:
    return datetime.now(UTC).strftime(GENERATED_FORMAT)


def write_home(layout: Layout, catalog: dict[str, dict[str, Any]], base_url: str) -> None:
    write_text(layout.root / "index.html", home_page(layout, catalog, base_url, _now()))


def _put_home(layout: Layout, base_url: str, change: tuple[str, dict[str, Any]] | None) -> None:
    """The home page with one project's row put in (``change``), and the status as recorded.

    The other rows are kept as written; a page that is missing or not as written here
    is rendered whole from the catalog (which the caller has updated already)."""
    page = _read_own(layout, "index.html")
    rows = splice.home_rows_of(page, human.EMPTY_ROWS) if page is not None else None
    if rows is not None and change is not None:
        rows = splice.rows_put(rows, change[0], human.home_rows([change[1]]))
    if rows is None:
        write_home(layout, {row["name"]: row for row in _catalog_rows(layout)}, base_url)
        return
    page = human.render_home_page(splice.row_count(rows), rows, base_url, _now(),
                                  read_status(layout))
    write_text(layout.root / "index.html", page)


def home_page(layout: Layout, catalog: dict[str, dict[str, Any]], base_url: str,
              generated: str) -> str:
    """The home page as written at ``generated`` (`factory index check` re-renders it)."""
    projects = [catalog[name] for name in sorted(catalog)]
    return human.render_home(projects, base_url, generated, read_status(layout))


# -- the pending note --------------------------------------------------------------------
PENDING = ".pending.json"  # at the index root: a dot name, which no server sends
_PENDING_LIMIT = 1 << 20


def _pending_path(layout: Layout) -> Path:
    return layout.root / PENDING


def read_pending(layout: Layout) -> list[str] | None:
    """The projects a change that did not finish was writing (None: no note)."""
    try:
        names = json.loads(read_regular(layout.root, PENDING, _PENDING_LIMIT))
    except NotReadable as exc:
        return None if str(exc) == "is missing" else []
    except ValueError:
        return []  # not a note this module wrote: still sweep, rewrite no project
    if not isinstance(names, list):
        return []
    return sorted({n for n in names if isinstance(n, str) and is_normalized(n)})


def begin(layout: Layout, projects: list[str]) -> None:
    """Note ``projects`` (with any noted before) as being written; before the first write."""
    noted = read_pending(layout) or []
    write_json(_pending_path(layout), sorted(set(noted) | set(projects)))


def finish(layout: Layout) -> None:
    """Every page of the noted change is written."""
    _pending_path(layout).unlink(missing_ok=True)


def sweep(layout: Layout, project: str) -> None:
    """Temporary files a killed change of ``project`` left in its own directories (those
    in records/ and simple/, which hold every project, are swept by ``recover`` only:
    listing them costs as much as the index is large)."""
    files = layout.files(project)
    clean_leftovers(layout.root, files, *files.glob("*" + Sidecars.suffix("in-toto")),
                    layout.sources(project), layout.simple_project(project),
                    layout.human_project(project))


def recover(layout: Layout, base_url: str) -> list[str]:
    """Complete what a killed change left (see the module's note); the projects redone.

    Without a note (the common case) this reads nothing else. A noted project whose
    record does not load is left to `factory index check` (its pages stay as they are).
    """
    noted = read_pending(layout)
    if noted is None:
        return []
    clean_leftovers(layout.root, layout.records, layout.records / DEPENDENTS, layout.simple)
    done = []
    for project in noted:
        sweep(layout, project)
        try:
            record = load_record(layout, project)
        except IndexCorruptError:
            continue
        if record is not None:
            write_project_pages(layout, record, base_url)
            done.append(project)
    finish(layout)
    return done


def rebuild_all(layout: Layout, base_url: str) -> int:
    """Regenerate every page from the records; returns the number of projects.

    A corrupt record is skipped (its old pages are left as they are) and, once
    every other project is done, raised as IndexCorruptError.
    """
    catalog: dict[str, dict[str, Any]] = {}
    records, corrupt = readable_records(layout)
    for record in records:
        _write_pages(layout, record, base_url)
        catalog[record.name] = summary(record)
    write_json(layout.catalog, catalog)
    write_home(layout, catalog, base_url)
    write_project_list(layout)
    if corrupt:
        more = f" (and {len(corrupt) - 1} more)" if len(corrupt) > 1 else ""
        raise IndexCorruptError(f"{corrupt[0].message}{more}; the pages of the other "
                                f"{len(records)} projects were regenerated", corrupt[0].hint)
    return len(records)
