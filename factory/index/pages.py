"""Simple Repository API documents (PEP 503 HTML, PEP 691 JSON) from records.

API version 1.4: hashes and ``requires-python`` (PEP 503/345), yanked with a
reason (PEP 592), core metadata (PEP 658/714), ``versions``/``size``/
``upload-time`` (PEP 700), provenance URLs (PEP 740) and project status
markers (PEP 792). File URLs are relative to the page, so the static tree works
behind any web server and under any host name; the provenance URL must be
fully qualified (PEP 740), so it is built from the index's public base URL.

Source distributions are deliberately absent: installers must never fall
back to building from source on a developer's machine.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from factory.errors import printable
from factory.index.records import FileEntry, ProjectRecord, Sidecars

API_VERSION = "1.4"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


def _file_url(project: str, filename: str) -> str:
    return f"../../files/{project}/{filename}"


def provenance_url(base_url: str, project: str, entry: FileEntry) -> str | None:
    if "provenance" not in entry.sidecars:
        return None
    wheel = f"files/{project}/{entry.filename}"
    return f"{base_url.rstrip('/')}/{Sidecars.name(wheel, 'provenance')}"


def offered_files(record: ProjectRecord) -> list[FileEntry]:
    """Files installers may see: none for a quarantined project (PEP 792)."""
    if record.status == "quarantined":
        return []
    return sorted(record.files, key=lambda f: f.filename)


def _shown(text: str | None) -> str | None:
    """Free text from a record (a yank or status reason, Requires-Python, a time), with
    control and bidi characters escaped: installers print it on their user's terminal."""
    return printable(text, keep="") if isinstance(text, str) else text


def _status_json(record: ProjectRecord) -> dict[str, str]:
    status = {"status": record.status}
    if record.status_reason:
        status["reason"] = str(_shown(record.status_reason))
    return status


def project_json(record: ProjectRecord, base_url: str) -> str:
    files = offered_files(record)
    data: dict[str, Any] = {
        "meta": {"api-version": API_VERSION},
        "name": record.name,
        "project-status": _status_json(record),
        "versions": [v for v in record.versions() if any(f.version == v for f in files)],
        "files": [_file_json(record.name, f, base_url) for f in files],
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _file_json(project: str, entry: FileEntry, base_url: str) -> dict[str, Any]:
    metadata = {"sha256": entry.metadata.sha256}
    yanked: bool | str = (_shown(entry.yanked_reason) or True) if entry.yanked else False
    return {
        "filename": entry.filename,
        "url": _file_url(project, entry.filename),
        "hashes": {"sha256": entry.sha256},
        "requires-python": _shown(entry.requires_python),
        "core-metadata": metadata,
        "dist-info-metadata": metadata,  # the pre-PEP 714 name, for older clients
        "yanked": yanked,
        "size": entry.size,
        "upload-time": _shown(entry.upload_time),
        "provenance": provenance_url(base_url, project, entry),
    }


def project_html(record: ProjectRecord, base_url: str) -> str:
    name = escape(record.name)
    head = [f'<meta name="pypi:repository-version" content="{API_VERSION}">']
    head.append(f'<meta name="pypi:project-status" content="{escape(record.status)}">')
    if record.status_reason:
        reason = escape(str(_shown(record.status_reason)))
        head.append(f'<meta name="pypi:project-status-reason" content="{reason}">')
    links = [_file_anchor(record.name, f, base_url) for f in offered_files(record)]
    return _html_document(f"Links for {name}", head, links)


def _file_anchor(project: str, entry: FileEntry, base_url: str) -> str:
    href = f"{_file_url(project, entry.filename)}#sha256={entry.sha256}"
    attrs = [f'href="{escape(href)}"']
    if entry.requires_python:
        attrs.append(f'data-requires-python="{escape(str(_shown(entry.requires_python)))}"')
    meta = f"sha256={entry.metadata.sha256}"
    attrs.append(f'data-dist-info-metadata="{meta}" data-core-metadata="{meta}"')
    provenance = provenance_url(base_url, project, entry)
    if provenance:
        attrs.append(f'data-provenance="{escape(provenance)}"')
    if entry.yanked:
        attrs.append(f'data-yanked="{escape(_shown(entry.yanked_reason) or "")}"')
    return f"<a {' '.join(attrs)}>{escape(entry.filename)}</a><br>"


def project_list_json(names: list[tuple[str, str]]) -> str:
    """``names``: (normalized, display) pairs."""
    data = {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": display} for _, display in names],
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def project_list_html(names: list[tuple[str, str]]) -> str:
    head = [f'<meta name="pypi:repository-version" content="{API_VERSION}">']
    links = [f'<a href="{escape(n)}/">{escape(display)}</a><br>' for n, display in names]
    return _html_document("Simple index", head, links)


def _html_document(title: str, head: list[str], body: list[str]) -> str:
    lines = ["<!DOCTYPE html>", "<html>", "<head>", *head, f"<title>{title}</title>", "</head>"]
    lines += ["<body>", f"<h1>{title}</h1>", *body, "</body>", "</html>", ""]
    return "\n".join(lines)
