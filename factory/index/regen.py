"""Write the pages derived from records, each atomically.

``write_project_pages`` touches one project's pages, its line in the catalog
and the home page; ``write_project_list`` is needed only when a project is
new. ``rebuild_all`` regenerates everything (recovery, or a new base URL), and
``check_index`` verifies that every page names only complete, recorded files.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from factory.atomic import sha256_file, write_json, write_text
from factory.config import Settings
from factory.index import human, pages
from factory.index.records import (
    REQUIRED_SIDECARS,
    SIDECAR_SUFFIXES,
    Layout,
    ProjectRecord,
    list_projects,
    load_record,
)
from factory.index.store import publish_lock


def write_project_pages(layout: Layout, record: ProjectRecord, base_url: str) -> None:
    simple = layout.simple_project(record.name)
    write_text(simple / "index.json", pages.project_json(record, base_url))
    write_text(simple / "index.html", pages.project_html(record, base_url))
    write_text(
        layout.human_project(record.name) / "index.html", human.render_project(record, base_url)
    )
    _update_catalog(layout, record, base_url)


def write_project_list(layout: Layout) -> None:
    names = []
    for project in list_projects(layout):
        record = load_record(layout, project)
        if record is not None:
            names.append((record.name, record.display_name))
    write_text(layout.simple / "index.json", pages.project_list_json(names))
    write_text(layout.simple / "index.html", pages.project_list_html(names))


def _summary(record: ProjectRecord) -> dict[str, Any]:
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
    catalog[record.name] = _summary(record)
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


def write_status(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Record each component's status (as `factory status` shows it) on the home page."""
    layout = Layout(settings.index_dir)
    with publish_lock(layout.lock):
        write_json(layout.records / STATUS_FILE, rows)
        write_home(layout, read_catalog(layout), settings.index_url)


def write_home(layout: Layout, catalog: dict[str, dict[str, Any]], base_url: str) -> None:
    projects = [catalog[name] for name in sorted(catalog)]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    write_text(layout.root / "index.html",
               human.render_home(projects, base_url, generated, read_status(layout)))


def rebuild_all(settings: Settings) -> int:
    """Regenerate every page from the records; returns the number of projects."""
    layout = Layout(settings.index_dir)
    with publish_lock(layout.lock):
        catalog: dict[str, dict[str, Any]] = {}
        projects = list_projects(layout)
        for project in projects:
            record = load_record(layout, project)
            if record is None:
                continue
            simple = layout.simple_project(record.name)
            write_text(simple / "index.json", pages.project_json(record, settings.index_url))
            write_text(simple / "index.html", pages.project_html(record, settings.index_url))
            write_text(
                layout.human_project(record.name) / "index.html",
                human.render_project(record, settings.index_url),
            )
            catalog[record.name] = _summary(record)
        write_json(layout.catalog, catalog)
        write_home(layout, catalog, settings.index_url)
        write_project_list(layout)
    return len(projects)


def check_index(settings: Settings, *, deep: bool = True) -> list[str]:
    """Problems found: pages naming missing, incomplete or unrecorded files."""
    layout = Layout(settings.index_dir)
    problems: list[str] = []
    paged = {p.parent.name for p in layout.simple.glob("*/index.json")}
    for project in sorted(paged | set(list_projects(layout))):
        record = load_record(layout, project)
        served = record.served() if record else {}
        for stored in served.values():
            problems += _check_stored(layout.root, stored.path, stored.sha256, stored.size, deep)
        problems += _check_page(layout, project, served)
    return problems


def _check_stored(root: Path, rel: str, sha256: str, size: int, deep: bool) -> list[str]:
    path = root / rel
    if not path.is_file():
        return [f"{rel}: recorded but missing"]
    if path.stat().st_size != size:
        return [f"{rel}: size {path.stat().st_size} != recorded {size}"]
    if deep and sha256_file(path) != sha256:
        return [f"{rel}: sha256 differs from the record"]
    return []


def _check_page(layout: Layout, project: str, served: dict[str, Any]) -> list[str]:
    page = layout.simple_project(project) / "index.json"
    if not page.is_file():
        return []  # not yet visible: consistent
    data = json.loads(page.read_text(encoding="utf-8"))
    problems = []
    for item in data["files"]:
        rel = f"files/{project}/{item['filename']}"
        stored = served.get(rel)
        if stored is None or stored.sha256 != item["hashes"]["sha256"]:
            problems.append(f"{page}: names {item['filename']}, which is not recorded as is")
        for suffix in [".metadata", *(SIDECAR_SUFFIXES[k] for k in sorted(REQUIRED_SIDECARS))]:
            if served.get(rel + suffix) is None:
                problems.append(f"{page}: {item['filename']} has no recorded {suffix} file")
    return problems
