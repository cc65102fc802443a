"""A publish costs what its change costs, not what the index holds.

Every change puts one project's entry into the documents that list every project
(records/_catalog.json, simple/index.html and index.json, the home page) as last
written (factory.index.splice), and the result is byte for byte what a full
`Index.rebuild()` writes from the records. Cost is counted, never timed: the
records parsed and the files opened under records/ and simple/ during one publish
are the same small number in an index of 3 projects and of 200. A change killed at
any rename is completed by the next change of any project, not only by its rerun.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from factory._internal.atomic import canonical_json
from factory.config import Settings, load_settings
from factory.index import Index, human, pages, regen, splice, validation
from factory.index.check import UNRECORDED, inspect_index
from factory.index.records import normalize
from tests import factories
from tests.index_fixtures import make_sidecars, publish_killed_at, publish_wheel

_GENERATED = re.compile(r"page generated [^.]*\.")


def _derived(settings: Settings) -> dict[str, str]:
    """Every page and the catalog (the home page's timestamp left out)."""
    root = settings.index_dir
    out = {}
    for path in sorted(root.rglob("index.*")) + [root / "records" / "_catalog.json"]:
        if path.is_file():
            out[path.relative_to(root).as_posix()] = _GENERATED.sub("", path.read_text())
    return out


def _same_as_rebuild(settings: Settings) -> None:
    incremental = _derived(settings)
    Index.of(settings).rebuild()
    rebuilt = _derived(settings)
    assert incremental.keys() == rebuilt.keys()
    for rel in rebuilt:
        assert incremental[rel] == rebuilt[rel], f"{rel} differs from a full rebuild"
    assert Index.of(settings).check() == []


@contextmanager
def _no_whole_render(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if a change renders a whole-index document or reads every record."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a change read every record or rendered a whole list")

    with monkeypatch.context() as patch:
        patch.setattr(regen, "readable_records", refuse)
        patch.setattr(regen, "write_home", refuse)
        patch.setattr(regen, "load_catalog", refuse)
        yield


def test_every_change_gives_what_a_full_rebuild_gives(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(root=tmp_path / "state")
    index = Index.of(settings)
    publish_wheel(settings, tmp_path / "w0", "mid-pkg", "1.0")  # the first: lists made whole
    _same_as_rebuild(settings)
    steps = [("Zeta_Pkg", "1.0"), ("alpha", "1.0"), ("mid-pkg", "1.1"), ("Beta.X", "0.1"),
             ("alpha", "2.0"), ("mid-pkg", "1.0.post1"), ("zz-last", "3.0"), ("aa", "0.0.1")]
    for i, (name, version) in enumerate(steps, 1):
        with _no_whole_render(monkeypatch):
            publish_wheel(settings, tmp_path / f"w{i}", name, version)
        _same_as_rebuild(settings)
    changes = [lambda: index.yank("alpha", "2.0", "broken <b>"),
               lambda: index.unyank("alpha", "2.0"),
               lambda: index.set_status("beta-x", "quarantined", "held"),
               lambda: index.record_advisories("mid-pkg", "1.1", [{"id": "GHSA-x"}]),
               lambda: index.write_status([{"name": "alpha", "kind": "pure", "allowed": "*",
                                            "newest_upstream": "2.0", "locked": "2.0",
                                            "published": "2.0", "advisories": [],
                                            "waiting_days": None}])]
    for change in changes:
        with _no_whole_render(monkeypatch):
            change()
        _same_as_rebuild(settings)
    listed = json.loads((settings.index_dir / "simple" / "index.json").read_text())["projects"]
    assert [p["name"] for p in listed] == ["aa", "alpha", "Beta.X", "mid-pkg", "Zeta_Pkg",
                                           "zz-last"]


def test_a_document_not_as_written_is_made_whole_again(tmp_path: Path) -> None:
    """A hand-edited or foreign catalog, list or home page is rendered from the records."""
    settings = load_settings(root=tmp_path / "state")
    for i, name in enumerate(("one", "two", "three")):
        publish_wheel(settings, tmp_path / f"w{i}", name, "1.0")
    root = settings.index_dir
    catalog = json.loads((root / "records" / "_catalog.json").read_text())
    (root / "records" / "_catalog.json").write_text(json.dumps(catalog))  # one line
    (root / "simple" / "index.json").write_text('{"projects": []}')
    (root / "simple" / "index.html").unlink()
    (root / "index.html").write_text("<html>hello</html>")
    publish_wheel(settings, tmp_path / "w9", "four", "1.0")
    _same_as_rebuild(settings)


# -- cost, counted ---------------------------------------------------------------------------
_EVENTS: list[tuple[str, str]] = []
_LISTENING = [False]


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _LISTENING[0] and event in ("open", "os.listdir", "os.scandir") and args:
        _EVENTS.append((event, os.fsdecode(args[0]) if isinstance(args[0], str | bytes)
                        else str(args[0])))


sys.addaudithook(_audit)


def _project(i: int) -> str:
    return f"p-{i:04d}"


def _grow(settings: Settings, work: Path, count: int) -> None:
    for i in range(count):
        publish_wheel(settings, work / str(i), _project(i * 2), "1.0")


def _cost(settings: Settings, work: Path, name: str, version: str,
          monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """What one publish reads: records validated, other projects' files opened, directories
    listed under records/ or simple/."""
    wheel = factories.wheel(work / "dist", name, version)
    sdist = factories.sdist(work / "sdist", name, version)
    sidecars = make_sidecars(work / "side", wheel, sdist)
    parsed = []
    real = validation.validate_record

    def counting(data: Any, project: str) -> Any:
        parsed.append(project)
        return real(data, project)

    monkeypatch.setattr(validation, "validate_record", counting)
    _EVENTS.clear()
    _LISTENING[0] = True
    try:
        Index.of(settings).add(wheel, sidecars, sdist, {})
    finally:
        _LISTENING[0] = False
        monkeypatch.setattr(validation, "validate_record", real)
    target = normalize(name)
    # A project's files are named by it as a whole path component (records/p-0002.json,
    # simple/p-0002/); anchoring matters: a temp name like .tmp-1234abcd holds "p-1234".
    others = [p for _, p in _EVENTS
              if re.search(r"(?:^|/)p-\d{4}(?:[./]|$)", p) and target not in p]
    listed = [p for e, p in _EVENTS if e != "open" and re.search(r"(records|simple)/?$", p)]
    return {"records parsed": len(parsed), "other projects' files opened": len(others),
            "records/ or simple/ listed": len(listed),
            "records/ opens": sum(1 for e, p in _EVENTS if e == "open" and p.endswith(".json"))}


@pytest.mark.slow
def test_one_publish_reads_as_much_in_200_projects_as_in_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    costs = {}
    for size in (3, 200):
        settings = load_settings(root=tmp_path / f"i{size}")
        _grow(settings, tmp_path / f"g{size}", size)
        version = _cost(settings, tmp_path / f"v{size}", _project(2), "2.0", monkeypatch)
        new = _cost(settings, tmp_path / f"n{size}", _project(3), "1.0", monkeypatch)  # 2nd
        costs[size] = (version, new)
        for cost in (version, new):
            assert cost["records parsed"] <= 2  # its own record, loaded and saved
            assert cost["other projects' files opened"] == 0, cost
            assert cost["records/ or simple/ listed"] == 0, cost
        assert Index.of(settings).check() == []
    assert costs[3] == costs[200]


# -- a killed change is completed by the next change of any project -----------------------------
@pytest.mark.parametrize("existing", [False, True])
def test_a_killed_publish_is_completed_by_the_next_publish_of_another_project(
        tmp_path: Path, existing: bool) -> None:
    number = 1
    while True:
        settings = load_settings(root=tmp_path / f"run{number}")
        publish_wheel(settings, tmp_path / "base", "other", "1.0")
        if existing:
            publish_wheel(settings, tmp_path / "old", "demo", "1.0")
        killed = publish_killed_at(settings, tmp_path / "in", "demo", "2.0", number)
        assert Index.of(settings).check(allow_interrupted=True) == []
        publish_wheel(settings, tmp_path / "next", "another", "1.0")  # not the rerun
        # Every page and the catalog agree with the records again; files the killed
        # publish placed before its commit stay unnamed until it is run again.
        findings = inspect_index(settings.index_dir, settings.index_url)
        assert [str(f) for f in findings if f.area != UNRECORDED] == [], number
        swept = [p for p in settings.index_dir.rglob(".tmp-*")]
        assert swept == []
        assert not (settings.index_dir / regen.PENDING).exists()
        publish_wheel(settings, tmp_path / "in", "demo", "2.0")  # the rerun
        assert Index.of(settings).check() == []
        if not killed:
            break
        number += 1
        assert number < 60
    assert number > 10


# -- the splices, against the whole renders -----------------------------------------------------
_names = st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
                  .filter(lambda n: "--" not in n), unique=True, max_size=12)


def _line(name: str, n: int) -> dict[str, Any]:
    display = name.upper() if n % 2 else name.replace("-", "_")
    return {"name": name, "display_name": display, "latest": f"1.{n}", "files": n,
            "yanked": n % 3, "status": "active", "advisories": None if n % 2 else n,
            "updated": f"<t{n}>"}


@hypothesis_settings(max_examples=150, deadline=None)
@given(_names, st.lists(st.tuples(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?",
                                                fullmatch=True).filter(lambda n: "--" not in n),
                                  st.integers(0, 9)), max_size=6))
def test_each_splice_gives_the_whole_render(names: list[str],
                                            changes: list[tuple[str, int]]) -> None:
    catalog = {n: _line(n, i) for i, n in enumerate(names)}
    text = canonical_json(catalog)
    rows = human.home_rows([catalog[n] for n in sorted(catalog)])
    pairs = lambda: [(n, catalog[n]["display_name"]) for n in sorted(catalog)]  # noqa: E731
    html, data = pages.project_list_html(pairs()), pages.project_list_json(pairs())
    for name, n in changes:
        display = catalog[name]["display_name"] if name in catalog else _line(name, n)[
            "display_name"]
        catalog[name] = dict(_line(name, n), display_name=display)
        text = splice.catalog_put(text, name, catalog[name]) or ""
        assert text == canonical_json(catalog)
        spliced = splice.rows_put(rows, name, human.home_rows([catalog[name]]))
        assert spliced == human.home_rows([catalog[n] for n in sorted(catalog)])
        rows = spliced
        one = [(name, display)]
        line = regen._between(pages.project_list_html(one), '<a href="', "\n")
        entry = regen._between(pages.project_list_json(one), "  {\n", "\n ]")
        html = splice.list_html_put(html, name, line) or ""
        assert html == pages.project_list_html(pairs())
        put = splice.list_json_put(data, name, entry)
        assert put is not None or len(catalog) == 1  # an empty list is rendered whole
        data = put if put is not None else pages.project_list_json(pairs())
        assert data == pages.project_list_json(pairs())
    page = human.render_home_page(splice.row_count(rows), rows, "http://x", "now")
    assert splice.home_rows_of(page, human.EMPTY_ROWS) == rows
    assert page == human.render_home([catalog[n] for n in sorted(catalog)], "http://x", "now")
