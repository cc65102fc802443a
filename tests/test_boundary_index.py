"""Boundary: the index tree on disk -> `factory index check` and `factory verify --all`.

Someone (or a damaged disk) changed the index directory behind the publisher's
back. Everything that is served must still be what the records say, and both
checks must say where it is not, naming the file: a page that differs from its
record (a hash, a yank, an injected link), a `.metadata` that is not the
wheel's own, a file no record names, a record that is not one. A corrupt
record is a reported problem, never a traceback, and no record can make a
checker read a path outside the index.

Signed tests use a real release (attest, sign, in-toto, publish) as in
test_security_trust; the property test uses the quick fabricated index of
index_fixtures, since it exercises records and the tree, not signatures.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from factory.config import Settings, load_settings
from factory.index import Index
from factory.index import records as records_module
from factory.index.records import Layout
from factory.index.validation import load_record
from factory.verify import Report, exit_code, verify
from tests.index_fixtures import publish_wheel
from tests.security_fixtures import released_copy

ALPHA = "alpha-1.0.0-py3-none-any.whl"
BETA = "beta-1.0.0-py3-none-any.whl"
SECRET = "secret-outside-the-index-7f3a"  # a file no check may ever open


# -- opening files, watched -------------------------------------------------------------------
_OPENED: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _OPENED is not None and event == "open" and args and isinstance(args[0], (str, bytes)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only inside watched()


@contextmanager
def watched() -> Iterator[list[str]]:
    """Every path opened (builtins.open, os.open, io) while inside."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


# -- a released (signed) index, one copy per test ------------------------------------------------
@pytest.fixture
def index(released_base: Path, tmp_path: Path) -> Settings:
    settings = released_copy(released_base, tmp_path)
    (tmp_path / SECRET).write_text("root:x:0:0\n")  # beside the copy: outside its index
    assert Index.of(settings).check() == []  # intact to start
    assert verify(settings, everything=True, check_advisories=False).ok
    return settings


def tree(settings: Settings) -> Path:
    return settings.index_dir


def full(settings: Settings) -> Report:
    return verify(settings, everything=True, check_advisories=False)


def index_failures(report: Report) -> dict[str, list[str]]:
    """{index check name: failure messages} of a verify --all report."""
    out: dict[str, list[str]] = {}
    for check in report.index:
        if check.failed:
            out.setdefault(check.name, []).append(check.message)
    return out


def assert_reported(settings: Settings, area: str, path: str, *words: str) -> None:
    """Both `index check` and `verify --all` report a problem of ``path``, saying ``words``."""
    problems = [p for p in Index.of(settings).check() if p.startswith(path + ":")]
    assert problems, Index.of(settings).check()
    assert any(all(w in p for w in words) for p in problems), problems
    report = full(settings)
    assert not report.ok and exit_code(report) == 1
    messages = [m for m in index_failures(report).get(area, []) if m.startswith(path + ":")]
    assert messages, index_failures(report)
    assert any(all(w in m for w in words) for m in messages), messages


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text[:500])
    path.write_text(text.replace(old, new))


def record_json(settings: Settings, project: str = "alpha") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tree(settings) / "records" / f"{project}.json").read_text())
    return data


def write_record(settings: Settings, data: Any, project: str = "alpha") -> None:
    (tree(settings) / "records" / f"{project}.json").write_text(json.dumps(data))


def factory_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACTORY_ROOT": str(settings.root),
           "FACTORY_STATE_DIR": str(settings.state_dir)}
    return subprocess.run([sys.executable, "-m", "factory.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


# -- pages against records -----------------------------------------------------------------------
@pytest.mark.parametrize("page", ["index.json", "index.html"])
def test_a_hash_edited_in_a_simple_page_is_reported(index: Settings, page: str) -> None:
    record = load_record(Layout(tree(index)), "alpha")
    assert record is not None
    digest = record.files[0].sha256
    edit(tree(index) / "simple" / "alpha" / page, digest, "0" * 64)
    assert_reported(index, "pages", f"simple/alpha/{page}", ALPHA)


@pytest.mark.parametrize("page,marker", [("index.json", '"yanked": "withdrawn"'),
                                         ("index.html", ' data-yanked="withdrawn"')])
def test_a_removed_yank_is_reported(index: Settings, page: str, marker: str) -> None:
    Index.of(index).yank("alpha", "1.0.0", "withdrawn")
    assert Index.of(index).check() == []
    unyanked = '"yanked": false' if page.endswith("json") else ""
    edit(tree(index) / "simple" / "alpha" / page, marker, unyanked)
    assert_reported(index, "pages", f"simple/alpha/{page}", "yank")


@pytest.mark.parametrize("page", ["simple/alpha/index.html", "project/alpha/index.html",
                                  "simple/index.html", "index.html"])
def test_a_link_injected_into_an_html_page_is_reported(index: Settings, page: str) -> None:
    evil = '<a href="https://evil.invalid/alpha-6.6-py3-none-any.whl">alpha 6.6</a><br>'
    edit(tree(index) / page, "</body>", evil + "</body>")
    assert_reported(index, "pages", page, "evil.invalid")


def test_a_file_injected_into_a_json_page_is_reported(index: Settings) -> None:
    path = tree(index) / "simple" / "alpha" / "index.json"
    data = json.loads(path.read_text())
    injected = dict(data["files"][0], filename="alpha-6.6-py3-none-any.whl",
                    url="https://evil.invalid/alpha-6.6-py3-none-any.whl")
    data["files"].append(injected)
    path.write_text(json.dumps(data))
    assert_reported(index, "pages", "simple/alpha/index.json", "alpha-6.6-py3-none-any.whl")


def test_a_project_injected_into_the_list_is_reported(index: Settings) -> None:
    path = tree(index) / "simple" / "index.json"
    data = json.loads(path.read_text())
    data["projects"].append({"name": "evil"})
    path.write_text(json.dumps(data))
    assert_reported(index, "pages", "simple/index.json", "evil")


def test_a_base_element_injected_into_a_page_is_reported(index: Settings) -> None:
    # No link changes, yet every relative link would now point elsewhere.
    edit(tree(index) / "simple" / "alpha" / "index.html", "<head>",
         '<head><base href="https://evil.invalid/">')
    assert_reported(index, "pages", "simple/alpha/index.html", "base")


# -- .metadata (PEP 658) against its wheel ------------------------------------------------------
def _tamper_metadata(settings: Settings) -> tuple[Path, str, str]:
    path = tree(settings) / "files" / "alpha" / (ALPHA + ".metadata")
    old = hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(path.read_bytes() + b"Requires-Dist: evil-package\n")
    return path, old, hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_tampered_metadata_with_its_page_hashes_changed_too_is_reported(
        index: Settings) -> None:
    _, old, new = _tamper_metadata(index)
    for page in ("index.json", "index.html"):  # the pages' PEP 658 hash now matches the file
        edit(tree(index) / "simple" / "alpha" / page, old, new)
    assert_reported(index, "files", f"files/alpha/{ALPHA}.metadata", "differs from the record")
    assert_reported(index, "pages", "simple/alpha/index.json", "core-metadata")
    report = verify(index, "alpha==1.0.0", check_advisories=False)  # one wheel, too
    metadata = report.artifacts[0].check("metadata")
    assert metadata is not None and metadata.failed and f"{ALPHA}.metadata" in metadata.message


def test_a_metadata_that_is_not_the_wheels_own_is_reported(index: Settings) -> None:
    """Record and pages rewritten to vouch for the new .metadata: only its wheel disagrees."""
    path, _, new = _tamper_metadata(index)
    data = record_json(index)
    data["files"][0]["metadata"].update(sha256=new, size=path.stat().st_size)
    write_record(index, data)
    Index.of(index).rebuild()  # every page now says what the tampered record says
    problems = Index.of(index).check()
    assert any(p.startswith(f"files/alpha/{ALPHA}.metadata:") and "METADATA inside" in p
               for p in problems), problems
    report = full(index)
    assert not report.ok and exit_code(report) == 1
    alpha = next(a for a in report.artifacts if a.filename == ALPHA)
    check = alpha.check("metadata")
    assert check is not None and check.failed and "not the METADATA inside" in check.message
    beta = next(a for a in report.artifacts if a.filename == BETA)
    assert beta.ok  # only what changed fails


# -- corrupt records ------------------------------------------------------------------------------
def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], Any]:
    def change(data: dict[str, Any]) -> Any:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return data
    return change


def _drop(path: list[Any]) -> Callable[[dict[str, Any]], Any]:
    def change(data: dict[str, Any]) -> Any:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return data
    return change


ESCAPE = f"../../../{SECRET}"
CORRUPTIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "a list, not an object": lambda d: [d],
    "files not a list": _set(["files"], {"0": 1}),
    "size a string": _set(["files", 0, "size"], "12"),
    "size negative": _set(["files", 0, "size"], -1),
    "size absurd": _set(["files", 0, "size"], 10 ** 30),
    "size a boolean": _set(["files", 0, "size"], True),
    "sha256 not hex": _set(["files", 0, "sha256"], "z" * 64),
    "missing metadata": _drop(["files", 0, "metadata"]),
    "missing name": _drop(["name"]),
    "unknown status": _set(["status"], "hacked"),
    "another project's name": _set(["name"], "beta"),
    "filename with a path": _set(["files", 0, "filename"], f"../../{SECRET}"),
    "metadata path escapes": _set(["files", 0, "metadata", "path"], ESCAPE),
    "metadata path absolute": _set(["files", 0, "metadata", "path"], f"/tmp/{SECRET}"),
    "sidecar path escapes": _set(["files", 0, "sidecars", "sbom", 0, "path"],
                                 f"files/alpha/../../../{SECRET}"),
    "in-toto path escapes": _set(["files", 0, "sidecars", "in-toto", 0, "path"],
                                 f"files/alpha/{ALPHA}.in-toto/../../../../{SECRET}"),
    "source stored escapes": _set(["files", 0, "source", "stored"], ESCAPE),
    "source filename with a path": _set(["files", 0, "source", "filename"], f"../{SECRET}"),
    "unknown sidecar kind": _set(["files", 0, "sidecars", "evil"], []),
    "yanked a string": _set(["files", 0, "yanked"], "no"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupt_record_is_reported_and_never_leads_outside(index: Settings,
                                                              case: str) -> None:
    write_record(index, CORRUPTIONS[case](record_json(index)))
    with pytest.raises(records_module.IndexCorruptError) as raised:
        load_record(Layout(tree(index)), "alpha")
    assert raised.value.message.startswith("records/alpha.json: ")
    with watched() as opened:
        problems = Index.of(index).check()
        report = full(index)
    assert [p for p in problems if p.startswith("records/alpha.json:")], problems
    assert index_failures(report).get("records"), report.index
    assert not report.ok and exit_code(report) == 1
    beta = [a for a in report.artifacts if a.project == "beta"]
    assert beta and all(a.ok for a in beta)  # the other projects are still verified
    assert not [p for p in opened if SECRET in p]
    assert verify(index, "alpha==1.0.0", check_advisories=False).artifacts[0].check(
        "digest").failed  # type: ignore[union-attr]


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[" * 100_000, b""])
def test_a_record_that_is_not_json_is_reported(index: Settings, content: bytes) -> None:
    (tree(index) / "records" / "alpha.json").write_bytes(content)
    assert any(p.startswith("records/alpha.json: not valid JSON") for p in Index.of(index).check())
    assert index_failures(full(index)).get("records")


def test_a_record_that_is_a_fifo_or_a_link_is_reported_without_blocking(
        index: Settings, tmp_path: Path) -> None:
    path = tree(index) / "records" / "alpha.json"
    path.unlink()
    os.mkfifo(path)  # opening it for reading would block forever
    assert any(p.startswith("records/alpha.json: not a regular file")
               for p in Index.of(index).check())
    path.unlink()
    path.symlink_to(tmp_path / SECRET)
    with watched() as opened:
        problems = Index.of(index).check()
    assert any(p.startswith("records/alpha.json: a symbolic link") for p in problems)
    assert not [p for p in opened if SECRET in p]


def test_cli_reports_a_corrupt_record_in_one_line_and_exits_1(index: Settings) -> None:
    data = record_json(index)
    data["files"][0]["metadata"]["path"] = ESCAPE
    write_record(index, data)
    check = factory_cli(index, "index", "check")
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert "records/alpha.json" in check.stderr and "metadata.path" in check.stderr
    verified = factory_cli(index, "verify", "--all", "--no-advisories")
    assert verified.returncode == 1 and "Traceback" not in verified.stderr + verified.stdout
    assert "records/alpha.json" in verified.stdout
    as_json = factory_cli(index, "verify", "--all", "--no-advisories", "--json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and report["summary"]["ok"] is False
    assert any(c["name"] == "records" and c["status"] == "fail" for c in report["index"])
    rebuilt = factory_cli(index, "index", "rebuild")
    assert rebuilt.returncode == 1 and "Traceback" not in rebuilt.stderr
    assert "records/alpha.json" in rebuilt.stderr and "1 projects were regenerated" in (
        rebuilt.stderr)


# -- files no record names ---------------------------------------------------------------------
@pytest.mark.parametrize("rel", [
    "files/alpha/alpha-6.6-py3-none-any.whl",  # looks like a wheel, no record names it
    f"files/alpha/{ALPHA}.evil",
    f"files/alpha/{ALPHA}.in-toto/extra.link",
    "files/evil/evil-1.0-py3-none-any.whl",
    "sources/alpha/alpha-6.6.tar.gz",
    "simple/evil/index.html",
    "project/evil/index.html",
    "evil.html",
])
def test_a_file_no_record_names_is_reported(index: Settings, rel: str) -> None:
    path = tree(index) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04 not what the records publish")
    assert_reported(index, "unrecorded", rel, "no record names")


def test_a_symbolic_link_in_a_served_area_is_reported_and_not_followed(
        index: Settings, tmp_path: Path) -> None:
    link = tree(index) / "files" / "alpha" / "alpha-6.6-py3-none-any.whl"
    link.symlink_to(tmp_path / SECRET)
    wheel = tree(index) / "files" / "beta" / BETA
    wheel.rename(wheel.with_name("moved"))
    wheel.symlink_to(tmp_path / SECRET)  # a recorded file replaced by a link
    with watched() as opened:
        problems = Index.of(index).check()
    assert any(p.startswith("files/alpha/alpha-6.6-py3-none-any.whl: is a symbolic link")
               for p in problems), problems
    assert any(p.startswith(f"files/beta/{BETA}: recorded, but") and "symbolic link" in p
               for p in problems), problems
    assert not [p for p in opened if SECRET in p]


def test_the_cli_prints_names_from_disk_as_text(index: Settings) -> None:
    name = "alpha-6.6-py3-none-any.whl\x1b[2J[bold]x"
    (tree(index) / "files" / "alpha" / name).write_bytes(b"x")
    check = factory_cli(index, "index", "check")
    assert check.returncode == 1 and "\x1b" not in check.stderr
    assert "\\x1b[2J[bold]x" in check.stderr


# -- property: records with random values in their fields ---------------------------------------
@pytest.fixture(scope="module")
def quick_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, bytes]:
    base = tmp_path_factory.mktemp("quick")
    settings = load_settings(root=base / "state")
    publish_wheel(settings, base / "work", "alpha", "1.0")
    publish_wheel(settings, base / "work", "beta", "1.0")
    (base / SECRET).write_text("secret\n")
    original = (settings.index_dir / "records" / "alpha.json").read_bytes()
    assert Index.of(settings).check() == []
    return settings, original


_PATHS = st.sampled_from([ESCAPE, f"/{SECRET}", f"files/alpha/../../{SECRET}", "files/alpha/",
                          "files/alpha/.", "sources/alpha/x/../../..", "files//alpha",
                          f"files/alpha/alpha-1.0-py3-none-any.whl/../../../{SECRET}"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=True) | st.text(max_size=20) | _PATHS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=3),
    max_leaves=8)


def _locations(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _locations(inner, (*prefix, key))
    elif isinstance(value, list):
        for number, inner in enumerate(value):
            out += _locations(inner, (*prefix, number))
    return out


def _mutate(data: Any, where: tuple[Any, ...], value: Any, remove: bool) -> Any:
    if not where:
        return value
    data = copy.deepcopy(data)
    target = data
    for key in where[:-1]:
        target = target[key]
    if remove:
        del target[where[-1]]
    else:
        target[where[-1]] = value
    return data


@hsettings(max_examples=150, deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_mutated_records_raise_only_the_factory_error_and_stay_inside(
        quick_index: tuple[Settings, bytes], data: st.DataObject) -> None:
    settings, original = quick_index
    record = json.loads(original)
    where = data.draw(st.sampled_from(_locations(record)))
    remove = bool(where) and data.draw(st.booleans())
    mutated = _mutate(record, where, data.draw(_JSON), remove)
    path = settings.index_dir / "records" / "alpha.json"
    path.write_text(json.dumps(mutated))
    try:
        with watched() as opened:
            try:
                loaded = load_record(Layout(settings.index_dir), "alpha")
            except records_module.IndexCorruptError as exc:
                assert exc.message.startswith("records/alpha.json: ")
                loaded = None
            problems = Index.of(settings).check()  # never raises
        if loaded is not None:  # accepted: every path it names is where publishing puts one
            for rel in loaded.served():
                parts = rel.split("/")
                assert parts[0] in ("files", "sources") and parts[1] == "alpha", rel
                assert not {"", ".", ".."} & set(parts), rel
        else:
            assert any(p.startswith("records/alpha.json:") for p in problems), problems
        assert not [p for p in opened if SECRET in p or "/../" in p]
    finally:
        path.write_bytes(original)


# -- what an interrupted publish leaves, and whose pages ------------------------------------------
def test_an_interrupted_publish_is_tolerated_only_where_asked_and_never_for_hashes(
        tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path / "state")
    publish_wheel(settings, tmp_path / "w", "demo", "1.0")
    page = settings.index_dir / "simple" / "demo" / "index.json"
    before = page.read_bytes()
    publish_wheel(settings, tmp_path / "w", "demo", "2.0")
    page.write_bytes(before)  # as if killed after the record, before this page
    problems = Index.of(settings).check()
    assert any(p.startswith("simple/demo/index.json:") and "demo-2.0" in p for p in problems)
    assert Index.of(settings).check(allow_interrupted=True) == []
    data = json.loads(before)
    data["files"][0]["hashes"]["sha256"] = "0" * 64
    page.write_text(json.dumps(data))
    assert [p for p in Index.of(settings).check(allow_interrupted=True)
            if p.startswith("simple/demo/index.json:") and "hashes" in p]


def test_pages_are_checked_against_the_base_url_they_were_rendered_with(
        quick_index: tuple[Settings, bytes]) -> None:
    from factory.index.check import inspect_index

    settings, _ = quick_index
    assert inspect_index(settings.index_dir, None) == []  # an auditor's copy: read from pages
    wrong = inspect_index(settings.index_dir, "https://elsewhere.invalid")
    assert {f.path for f in wrong} >= {"simple/alpha/index.json", "project/alpha/index.html"}
