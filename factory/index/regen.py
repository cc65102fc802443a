"""Write the pages derived from records, each atomically.

``write_project_pages`` touches one project's pages, its line in the catalog
and the home page; ``write_project_list`` is needed only when a project is
new. ``rebuild_all`` regenerates everything (recovery, or a new base URL).
A corrupt record stops only its own project: the others are listed and rebuilt.
The caller holds the publisher's lock (factory.index.changes.Index).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from factory._internal.atomic import write_json, write_text
from factory.index import human, pages
from factory.index.records import IndexCorruptError, Layout, ProjectRecord, list_projects
from factory.index.validation import load_record


def write_project_pages(layout: Layout, record: ProjectRecord, base_url: str) -> None:
    _write_pages(layout, record, base_url)
    _update_catalog(layout, record, base_url)


def _write_pages(layout: Layout, record: ProjectRecord, base_url: str) -> None:
    simple = layout.simple_project(record.name)
    write_text(simple / "index.json", pages.project_json(record, base_url))
    write_text(simple / "index.html", pages.project_html(record, base_url))
    write_text(
        layout.human_project(record.name) / "index.html", human.render_project(record, base_url)
    )


def write_project_list(layout: Layout) -> None:
    names = [(r.name, r.display_name) for r in readable_records(layout)[0]]
    # JSON last: a publish finds the project listed in it and then rewrites no list,
    # so a run killed between the two renames must not leave the HTML list behind.
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
    }


def _update_catalog(layout: Layout, record: ProjectRecord, base_url: str) -> None:
    catalog = read_catalog(layout)
    catalog[record.name] = summary(record)
    write_json(layout.catalog, catalog)
    write_home(layout, catalog, base_url)


def read_catalog(layout: Layout) -> dict[str, dict[str, Any]]:
    try:
        data: dict[str, dict[str, Any]] = json.loads(layout.catalog.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data


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
    write_home(layout, read_catalog(layout), base_url)


GENERATED_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def write_home(layout: Layout, catalog: dict[str, dict[str, Any]], base_url: str) -> None:
    generated = datetime.now(UTC).strftime(GENERATED_FORMAT)
    write_text(layout.root / "index.html", home_page(layout, catalog, base_url, generated))


def home_page(layout: Layout, catalog: dict[str, dict[str, Any]], base_url: str,
              generated: str) -> str:
    """The home page as written at ``generated`` (`factory index check` re-renders it)."""
    projects = [catalog[name] for name in sorted(catalog)]
    return human.render_home(projects, base_url, generated, read_status(layout))


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
