"""How a page on disk differs from the page its records render, said line by line.

Each explainer compares a page as found with the page expected and returns
what differs, each with whether it touches what installers fetch and trust (a
file URL, a hash, a metadata or provenance link, an active HTML element): such
a difference is never what a publish that stopped half way leaves.
"""

from __future__ import annotations

import json
from collections import Counter
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urlsplit

from factory.index.validation import clip

Diff = list[tuple[str, bool]]  # (what differs, whether it touches what installers fetch)

# Page attributes (JSON keys, HTML attributes) that decide which bytes an
# installer fetches and trusts: a difference there is never an interrupted publish.
_LINK_KEYS = frozenset({"url", "hashes", "core-metadata", "dist-info-metadata", "provenance",
                        "href", "data-core-metadata", "data-dist-info-metadata",
                        "data-provenance"})
_ACTIVE_TAGS = frozenset({"base", "script", "iframe", "form", "object", "embed", "link"})


def json_project_diff(text: str, expected: str) -> Diff:
    """A Simple API project page (PEP 691 JSON), file by file and key by key."""
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
        out.append((f"names {clip(filename)}, which the record does not offer", True))
    for filename in sorted(set(wanted) - set(got)):
        out.append((f"does not name {filename}, which the record offers", False))
    for filename in sorted(set(got) & set(wanted)):
        a, b = got[filename], wanted[filename]
        if not isinstance(a, dict):
            out.append((f"{clip(filename)}: is not an object", True))
            continue
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                out.append((f"{filename}: {clip(str(key))} is {_value(a.get(key))}, the record "
                            f"gives {_value(b.get(key))}", str(key) in _LINK_KEYS or key not in b))
    for key in sorted((set(data) | set(want)) - {"files"}, key=str):
        if data.get(key) != want.get(key):
            out.append((f"{clip(str(key))} is {_value(data.get(key))}, the record gives "
                        f"{_value(want.get(key))}", key not in want))
    return out


def json_list_diff(text: str, expected: str) -> Diff:
    """The Simple API project list (PEP 691 JSON)."""
    want = json.loads(expected)
    try:
        data = json.loads(text)
        got = Counter(str(p["name"]) for p in data["projects"])
    except (ValueError, RecursionError, KeyError, TypeError):
        return [("is not a Simple API project list (JSON)", True)]
    wanted = Counter(p["name"] for p in want["projects"])
    out: Diff = [(f"lists {clip(n)}, which no record publishes", True)
                 for n in sorted(got - wanted)]
    out += [(f"does not list {n}", False) for n in sorted(wanted - got)]
    for key in sorted((set(data) | set(want)) - {"projects"}, key=str):
        if data.get(key) != want.get(key):
            out.append((f"{clip(str(key))} differs", key not in want))
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


def html_links_diff(text: str, expected: str) -> Diff:
    """An HTML page by its links and elements (the project list, the human pages)."""
    got, want = _Links(text), _Links(expected)
    out: Diff = []
    got_hrefs = Counter(h for h, _ in got.anchors)
    want_hrefs = Counter(h for h, _ in want.anchors)
    out += [(f"links to {clip(h)}, which the records do not give", True)
            for h in sorted(got_hrefs - want_hrefs)]
    out += [(f"has no link to {clip(h)}", False) for h in sorted(want_hrefs - got_hrefs)]
    out += _tag_diff(got, want)
    return out


def _tag_diff(got: _Links, want: _Links) -> Diff:
    out: Diff = []
    for tag, attrs in sorted(got.tags - want.tags):
        out.append((f"holds a <{clip(tag)}> element the records do not give ({clip(attrs)})",
                    tag in _ACTIVE_TAGS or (tag == "meta" and "http-equiv" in attrs)))
    return out


def _file_key(href: str) -> str:
    return unquote(urlsplit(href).path.rsplit("/", 1)[-1])


def html_project_diff(text: str, expected: str) -> Diff:
    """A Simple API project page (PEP 503 HTML), file by file and attribute by attribute."""
    got, want = _Links(text), _Links(expected)
    by_file: dict[str, dict[str, str]] = {}
    out: Diff = []
    for href, attrs in got.anchors:
        key = _file_key(href)
        if key in by_file:
            out.append((f"links to {clip(key)} twice", True))
        by_file[key] = attrs
    wanted = {_file_key(h): attrs for h, attrs in want.anchors}
    for key in sorted(set(by_file) - set(wanted)):
        out.append((f"links to {clip(by_file[key].get('href', ''))}, which the record does "
                    "not offer", True))
    for key in sorted(set(wanted) - set(by_file)):
        out.append((f"has no link to {key}, which the record offers", False))
    for key in sorted(set(by_file) & set(wanted)):
        a, b = by_file[key], wanted[key]
        for attr in sorted(set(a) | set(b)):
            if a.get(attr) != b.get(attr):
                out.append((f"{key}: {clip(attr)} is {_attr(a.get(attr))}, the record gives "
                            f"{_attr(b.get(attr))}", attr in _LINK_KEYS or attr not in b))
    return out + _tag_diff(got, want)


def _value(value: Any) -> str:
    return clip(json.dumps(value, sort_keys=True), 80)


def _attr(value: str | None) -> str:
    return "absent" if value is None else repr(clip(value, 80))
