"""Adversarial pass over boundaries 3, 4, 5 and 8 of docs/threat-model.md.

New hostile cases, tried against the real code paths by someone who did not write
them: what a build leaves in /out (real containers), what reaches the operator's
terminal (Rich tables, the plan, the watch summary), what the admission gate lets
the factory sign (wheels crafted byte by byte: zip parser differentials, metadata
of other projects, start-up hooks Windows would still run, markers that crash the
gate, tags that lie), and the state directory (a FIFO lock file, a ledger that is
not a database, a read-only mount, kill -9 between publishing and the ledger).

Each test asserts the safe behaviour: a held case is a regression test, a case
that broke was fixed in the factory (see the report in the issue note).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import stat
import struct
import subprocess
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rich.console import Console

from factory import cli, ledger
from factory.admission.model import AdmissionError
from factory.build.image import ImageRef
from factory.config import Settings
from factory.index import Index
from factory.publish import refused_wheels, release, release_all
from tests import factories
from tests.security_fixtures import gate, guarded, kill9, python, refused, stage_build

NAME, VERSION = "alpha", "1.0.0"
DIST_INFO = f"{NAME}-{VERSION}.dist-info"
DATA = f"{NAME}-{VERSION}.data"
AN_IMAGE = ImageRef("factory-builder:test", "sha256:" + "0" * 64, "debootstrap")

# Wheels with duplicate members are made on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")


# -- crafting wheels and staged builds ------------------------------------------------------

@pytest.fixture
def project(tmp_path: Path) -> Settings:
    return factories.settings(tmp_path, project="project")


# -- zip surgery ------------------------------------------------------------------------------

_LOCAL = b"PK\x03\x04"


def _locals(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, name) of every local file header, in file order."""
    at = data.find(_LOCAL)
    while at != -1:
        size = struct.unpack("<H", data[at + 26:at + 28])[0]
        yield at, data[at + 30:at + 30 + size]
        at = data.find(_LOCAL, at + 4)


def rename_local(data: bytes, old: str, new: str) -> bytes:
    """The local header of ``old`` says ``new`` (same length); the central directory
    still says ``old``: parsers that stream local headers see another member."""
    assert len(old) == len(new)
    for at, name in _locals(data):
        if name == old.encode():
            return data[:at + 30] + new.encode() + data[at + 30 + len(old):]
    raise AssertionError(old)


def _eocd(data: bytes) -> int:
    return data.rindex(b"PK\x05\x06")


def _shift_central(data: bytes, by: int) -> bytes:
    """Move the end record's central directory offset by ``by`` bytes."""
    end = _eocd(data)
    offset = struct.unpack("<I", data[end + 16:end + 20])[0]
    return data[:end + 16] + struct.pack("<I", offset + by) + data[end + 20:]


def hide_local_entry(data: bytes, name: str, payload: bytes) -> bytes:
    """A whole local entry inserted before the central directory that no central
    entry names: zipfile never sees it, a streaming extractor installs it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as hidden:
        hidden.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), payload)
    extra = buffer.getvalue()[:zipfile.ZipFile(io.BytesIO(buffer.getvalue())).start_dir]
    start = zipfile.ZipFile(io.BytesIO(data)).start_dir
    return _shift_central(data[:start] + extra + data[start:], len(extra))


def point_second_entry_at_first(data: bytes) -> bytes:
    """Two central entries, one local header: the second entry's offset is the first's."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    start = archive.start_dir
    central = bytearray(data[start:_eocd(data)])
    first = central.index(b"PK\x01\x02")
    second = central.index(b"PK\x01\x02", first + 4)
    central[second + 42:second + 46] = central[first + 42:first + 46]
    return data[:start] + bytes(central) + data[_eocd(data):]


# == boundary 5: what gets signed =============================================================

PLAIN = {f"{NAME}/__init__.py": b"VALUE = 1\n"}


# -- one name, one version ---------------------------------------------------------------------
@pytest.mark.parametrize("claimed", [
    "\u0430lpha",  # Cyrillic a: looks like alpha, is another project
    "alpha\u200b",  # a zero-width space after the name
    "alpha-",  # folds to another name
    "al pha",
])
def test_a_metadata_name_that_folds_or_looks_alike_is_refused(project: Settings,
                                                              claimed: str) -> None:
    meta = f"Metadata-Version: 2.4\nName: {claimed}\nVersion: {VERSION}\n\n".encode()
    record = stage_build(project, NAME, files={**PLAIN, f"{DIST_INFO}/METADATA": meta})
    refused(project, record, "METADATA names project")


def test_a_second_metadata_file_differing_in_case_is_refused(project: Settings) -> None:
    other = b"Metadata-Version: 2.4\nName: requests\nVersion: 99\n\n"
    record = stage_build(project, NAME, files={**PLAIN, f"{DIST_INFO}/metadata": other})
    refused(project, record, "duplicates")


@pytest.mark.parametrize("member", [
    "requests-99.0.dist-info/METADATA",  # a second .dist-info (installer refuses)
    "requests-99.0.DIST-INFO/METADATA",  # importlib.metadata matches the suffix in any case
    "requests.egg-info/PKG-INFO",  # an egg-info directory at the site-packages root
    "requests-99.0.egg-info",  # an egg-info file
    f"{DATA}/purelib/requests-99.0.dist-info/METADATA",  # the same through the .data scheme
    f"{DATA}/platlib/requests.egg-info",
    f"{DATA}/data/lib/python3.11/site-packages/requests-99.0.dist-info/METADATA",
])
def test_metadata_of_another_project_in_site_packages_is_refused(project: Settings,
                                                                 member: str) -> None:
    """pip then lists `requests 99.0` as installed and never installs the real one."""
    spoof = b"Metadata-Version: 2.1\nName: requests\nVersion: 99.0\n\n"
    record = stage_build(project, NAME, files={**PLAIN, member: spoof})
    refused(project, record)


def test_vendored_metadata_below_a_package_is_allowed(project: Settings) -> None:
    """setuptools ships setuptools/_vendor/*.dist-info: not at the site-packages root."""
    spoof = b"Metadata-Version: 2.1\nName: packaging\nVersion: 24.2\n\n"
    vendored = f"{NAME}/_vendor/packaging-24.2.dist-info/METADATA"
    record = stage_build(project, NAME, files={**PLAIN, vendored: spoof})
    assert gate(project, record) == ()


# -- RECORD -----------------------------------------------------------------------------------
@pytest.mark.parametrize("row", [
    factories.record_row(f"../{NAME}/evil.py", b"x"),
    factories.record_row("/etc/cron.d/evil", b"x"),
    factories.record_row(f"{NAME}/../../evil.pth", b"x"),
    factories.record_row(f"{NAME}/__init__.py", b"VALUE = 1"),  # the same file twice
])
def test_record_rows_naming_paths_out_of_the_archive_are_refused(project: Settings,
                                                                 row: str) -> None:
    record = stage_build(project, NAME, record_rows=[row])
    refused(project, record, "RECORD")


def test_a_record_that_lists_itself_with_a_hash_is_never_a_crash(project: Settings) -> None:
    """A RECORD cannot hash itself; one that claims to is admitted or refused cleanly."""
    row = factories.record_row(f"{DIST_INFO}/RECORD", b"not the record")
    record = stage_build(project, NAME, record_rows=[row])
    with contextlib.suppress(AdmissionError):
        gate(project, record)


# -- zip parser differentials: what zipfile sees must be all there is ------------------------
def test_a_directory_entry_whose_local_header_names_a_pth_is_refused(project: Settings) -> None:
    """zipfile never opens a directory entry, so it never compares its local header;
    an installer that streams local headers sees 'alpha/x.pth' instead."""
    data = factories.wheel_bytes(NAME, files={**PLAIN, f"{NAME}/sub/": b""})
    record = stage_build(project, NAME, wheel=rename_local(data, f"{NAME}/sub/", f"{NAME}/x.pt"))
    refused(project, record)


def test_a_file_entry_whose_local_header_names_another_file_is_refused(
        project: Settings) -> None:
    data = factories.wheel_bytes(NAME)
    record = stage_build(project, NAME,
                         wheel=rename_local(data, f"{NAME}/__init__.py", f"{NAME}/__init__.pt"))
    refused(project, record)


def test_a_local_entry_no_central_entry_names_is_refused(project: Settings) -> None:
    data = hide_local_entry(factories.wheel_bytes(NAME), "evil.pth",
                            b"import os; os.system('id')\n")
    assert "evil.pth" not in zipfile.ZipFile(io.BytesIO(data)).namelist()  # zipfile is blind
    record = stage_build(project, NAME, wheel=data)
    refused(project, record)


def test_two_central_entries_sharing_one_local_header_are_refused(project: Settings) -> None:
    record = stage_build(project, NAME,
                         wheel=point_second_entry_at_first(factories.wheel_bytes(NAME)))
    refused(project, record)


@pytest.mark.parametrize("where", ["prefix", "suffix", "comment-then-junk"])
def test_bytes_outside_the_archive_structure_are_refused(project: Settings, where: str) -> None:
    """A stub before the archive (zipfile adjusts every offset), or data after the end
    record: parsers disagree about where such an archive starts or ends."""
    data = factories.wheel_bytes(NAME)
    if where == "prefix":
        data = b"#!/bin/sh\nexec python3 -c 'import os'\n" + data
    elif where == "suffix":
        data += b"PK\x03\x04 trailing junk"
    else:
        end = _eocd(data)
        data = data[:end + 20] + struct.pack("<H", 4) + b"note" + b"and junk after it"
    record = stage_build(project, NAME, wheel=data)
    refused(project, record)


def test_a_legitimate_archive_comment_is_allowed(project: Settings) -> None:
    buffer = io.BytesIO(factories.wheel_bytes(NAME))
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.comment = b"built by the factory"
    record = stage_build(project, NAME, wheel=buffer.getvalue())
    assert gate(project, record) == ()


def test_a_wheel_written_with_data_descriptors_is_allowed(project: Settings) -> None:
    """Streaming writers (no seek) put sizes in a data descriptor after each member."""

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.buffer = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            self.buffer += bytes(data)
            return len(data)

    base = zipfile.ZipFile(io.BytesIO(factories.wheel_bytes(NAME)))
    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:  # type: ignore[arg-type]
        for info in base.infolist():
            archive.writestr(info.filename, base.read(info))
    data = bytes(sink.buffer)
    assert any(i.flag_bits & 0x08 for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    record = stage_build(project, NAME, wheel=data)
    assert gate(project, record) == ()


def _zip64(data: bytes) -> bytes:
    """The same wheel with every member written in zip64 form (sizes in an extra field)."""
    base = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info in base.infolist():
            with archive.open(zipfile.ZipInfo(info.filename, info.date_time), "w",
                              force_zip64=True) as member:
                member.write(base.read(info))
    return buffer.getvalue()


def test_a_zip64_wheel_is_allowed(project: Settings) -> None:
    record = stage_build(project, NAME, wheel=_zip64(factories.wheel_bytes(NAME)))
    assert gate(project, record) == ()


def test_a_zip64_local_size_that_disagrees_with_the_central_directory_is_refused(
        project: Settings) -> None:
    """A local zip64 extra field is what a streaming reader takes the size from."""
    data = bytearray(_zip64(factories.wheel_bytes(NAME)))
    at = next(at for at, name in _locals(bytes(data)) if name == f"{NAME}/__init__.py".encode())
    extra = at + 30 + len(f"{NAME}/__init__.py")
    assert data[extra:extra + 2] == b"\x01\x00"  # the zip64 field: original size first
    size = struct.unpack("<Q", data[extra + 4:extra + 12])[0]
    data[extra + 4:extra + 12] = struct.pack("<Q", size - 1)
    record = stage_build(project, NAME, wheel=bytes(data))
    refused(project, record)


@hypothesis_settings(max_examples=60, deadline=None)
@given(members=st.dictionaries(st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}\.py", fullmatch=True),
                               st.binary(max_size=300), max_size=5),
       deflate=st.booleans(), zip64=st.booleans(), comment=st.binary(max_size=40),
       junk=st.binary(min_size=1, max_size=40), where=st.sampled_from(["before", "after"]))
def test_property_every_byte_of_an_admitted_archive_belongs_to_it(
        members: dict[str, bytes], deflate: bool, zip64: bool, comment: bytes, junk: bytes,
        where: str) -> None:
    """Archives as writers make them pass the layout check; the same with bytes added
    before or after never do."""
    from factory.admission.layout import check_layout

    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            with archive.open(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), "w",
                              force_zip64=zip64) as member:
                member.write(data)
        archive.comment = comment
    good = buffer.getvalue()
    # A comment holding an end-of-archive signature makes an archive zipfile itself
    # cannot read back: not one "as writers make them".
    assume(b"PK\x05\x06" not in comment and b"PK\x06\x06" not in comment)
    check_layout("w.whl", zipfile.ZipFile(io.BytesIO(good)), io.BytesIO(good))
    bad = junk + good if where == "before" else good + junk
    try:
        archive = zipfile.ZipFile(io.BytesIO(bad))
    except zipfile.BadZipFile:
        return  # not even zipfile reads it
    with pytest.raises(AdmissionError):
        check_layout("w.whl", archive, io.BytesIO(bad))


# -- start-up hooks and tools a wheel must not replace ---------------------------------------
@pytest.mark.parametrize("member", [
    "evil.pth.",  # Windows drops trailing dots and spaces: this is evil.pth there
    "evil.pth ",
    "evil.PTH. .",
    f"{DATA}/purelib/evil.pth.",
    "sitecustomize.py.",
    f"{DATA}/data/lib/python3.11/dist-packages/sitecustomize.py",  # Debian's site dir
    f"{DATA}/data/local/lib/python3.11/dist-packages/usercustomize.py",
])
def test_start_up_hooks_in_any_spelling_an_installer_accepts_are_refused(
        project: Settings, member: str) -> None:
    record = stage_build(project, NAME, files={**PLAIN, member: b"import os\n"})
    refused(project, record, "start-up hook", "allow_pth = true")


@pytest.mark.parametrize(("member", "data"), [
    (f"{DATA}/scripts/python", b"#!/bin/sh\necho owned\n"),  # replaces the venv's python
    (f"{DATA}/scripts/python3.11", b"#!/bin/sh\necho owned\n"),
    (f"{DATA}/scripts/pip", b"#!/bin/sh\necho owned\n"),
    (f"{DATA}/scripts/Activate.ps1", b"Write-Host owned\n"),
    (f"{DATA}/scripts/activate", b"echo owned\n"),
    (f"{DIST_INFO}/entry_points.txt", b"[console_scripts]\npip = alpha:main\n"),
    (f"{DIST_INFO}/entry_points.txt", b"[console_scripts]\nPython3 = alpha:main\n"),
    (f"{DIST_INFO}/entry_points.txt", b"[gui_scripts]\npythonw = alpha:main\n"),
])
def test_scripts_that_replace_the_interpreter_or_pip_are_refused(
        project: Settings, member: str, data: bytes) -> None:
    """Installers overwrite bin/<name>: a wheel's `python` script then runs on every
    `python` of that venv, before any import, like a .pth file."""
    record = stage_build(project, NAME, files={**PLAIN, member: data})
    refused(project, record, "replaces")


def test_ordinary_scripts_and_entry_points_are_allowed(project: Settings) -> None:
    record = stage_build(project, NAME, files={
        **PLAIN, f"{DATA}/scripts/alpha-tool": b"#!python\nimport alpha\n",
        f"{DIST_INFO}/entry_points.txt": b"[console_scripts]\nalpha = alpha:main\n"
                                         b"ipython-like = alpha:main\npipx-like = alpha:main\n"})
    assert gate(project, record) == ()


@pytest.mark.parametrize("member", [f"{DATA}/data/../../evil", f"{DATA}/scripts/../../evil",
                                    f"{DATA}/headers/../../../evil.h"])
def test_data_files_climbing_out_of_their_scheme_are_refused(project: Settings,
                                                             member: str) -> None:
    record = stage_build(project, NAME, files={**PLAIN, member: b"x"})
    refused(project, record, "'..'")


# -- requirements -----------------------------------------------------------------------------
@pytest.mark.parametrize("line", [
    'evil; extras == "x"',  # PEP 751 marker names: the target environment has none
    'evil; dependency_groups == "x"',
    'evil; "a" == "b"',  # two literals: packaging cannot evaluate it
    'evil; python_version ~= "3"',
])
def test_a_marker_the_gate_cannot_evaluate_is_a_refusal(project: Settings, line: str) -> None:
    """packaging raises KeyError for an undefined name: it escaped the gate, and one
    such wheel stopped the whole release (a traceback, nothing else published)."""
    refused(project, stage_build(project, NAME, requires=[line]), "marker")


def test_a_marker_the_gate_cannot_evaluate_refuses_that_wheel_only(project: Settings) -> None:
    bad = stage_build(project, NAME, requires=['evil; extras == "x"'])
    good = stage_build(project, "bravo", files={"bravo/__init__.py": b""})
    report = release_all(project, [bad, good])
    assert [r.filename for r in report.refused] == [bad.wheel_filename]
    assert "marker" in report.refused[0].reason
    assert [p.filename for p in report.published] == [good.wheel_filename]


@pytest.mark.parametrize("line", [
    'evil; extra == ""', 'evil; "" == extra', 'evil; extra != "never"', 'evil; extra in "a"',
    'evil; python_version >= "0" and extra == "x" or os_name == "posix"',
    'evil; "linux" in sys_platform', 'evil; platform_system != "Windows"',
    'evil; python_full_version >= "3"',
])
def test_markers_true_on_the_target_however_written_need_a_locked_version(
        project: Settings, line: str) -> None:
    record = stage_build(project, NAME, requires=[line])
    refused(project, record, "evil", "not an approved component")


def test_a_requirement_spelled_in_another_case_is_the_approved_one(project: Settings) -> None:
    stage_build(project, "bravo", files={"bravo/__init__.py": b""})
    record = stage_build(project, NAME, requires=["BRAVO>=1", "Bravo (>=1.0)"])
    assert gate(project, record) == ()


def test_an_extra_of_an_approved_project_that_needs_an_unapproved_one_is_refused(
        project: Settings) -> None:
    stage_build(project, "bravo", files={"bravo/__init__.py": b""},
                requires=['pysocks; extra == "socks"'],
                sdist={"requires": ['pysocks; extra == "socks"']})
    record = stage_build(project, NAME, requires=["bravo[socks]>=1"])
    refused(project, record, "pysocks")


# -- tags -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("filename", "tags"), [
    (f"{NAME}-{VERSION}-py3-none-any.whl", ["cp311-cp311-linux_x86_64"]),  # pure by name only
    (f"{NAME}-{VERSION}-cp311-abi3-manylinux_2_17_x86_64.whl", ["py3-none-any"]),
    (f"{NAME}-{VERSION}-py2.py3-none-any.whl", ["py3-none-any"]),
    (f"{NAME}-{VERSION}-py3-none-any.whl", []),
])
def test_a_file_name_whose_tags_are_not_the_wheels_is_refused(project: Settings, filename: str,
                                                              tags: list[str]) -> None:
    record = stage_build(project, NAME, wheel=factories.wheel_bytes(NAME, tags=tags),
                         filename=filename)
    refused(project, record, "Tag")


def test_tags_in_compressed_and_expanded_form_agree(project: Settings) -> None:
    record = stage_build(project, NAME,
                         wheel=factories.wheel_bytes(NAME, tags=["py2-none-any", "py3-none-any"]),
                         filename=f"{NAME}-{VERSION}-py2.py3-none-any.whl")
    assert gate(project, record) == ()


@pytest.mark.parametrize("tag", ["cp99-cp99-manylinux_2_17_x86_64",
                                 "cp312-cp312-manylinux_2_17_x86_64",
                                 "cp313-abi3-manylinux_2_17_x86_64"])
def test_a_tag_for_an_interpreter_the_builder_does_not_have_is_refused(project: Settings,
                                                                       tag: str) -> None:
    """The builder runs CPython settings.python_version: it cannot have built a wheel
    for a newer one (a cp99 wheel is installable nowhere; an abi3 floor above the
    builder's Python is a claim it could not have checked)."""
    record = stage_build(project, NAME, tag=tag)
    refused(project, record, "tag")


def test_a_tag_for_the_builders_interpreter_is_allowed(project: Settings) -> None:
    ours = "cp" + project.python_version.replace(".", "")
    for tag in (f"{ours}-{ours}-manylinux_2_17_x86_64", "cp38-abi3-manylinux_2_17_x86_64"):
        record = stage_build(project, NAME, tag=tag)
        assert gate(project, record) == ()


# == boundary 4: what reaches the operator's terminal =========================================

EVIL = ("\x1b[2J\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07 [bold red]PWNED[/bold red] "
        "[link=http://evil.example/]x[/link] \u202eevil\x9b")
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\r")


def inert(text: str) -> None:
    for raw in RAW:
        assert raw not in text, (raw, text)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The CLI's consoles on a terminal that shows what Rich sends (no colours of its
    own, so any escape on the screen came from the data)."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system=None, width=1000)
    cli._commands()  # read below as cli._app, cli.policy, ... (`import factory.cli` loads none)
    monkeypatch.setattr(cli._app, "out", console)
    monkeypatch.setattr(cli._app, "err", console)
    return screen


def _use(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setattr(cli._app._State, "settings", settings)


def test_an_advisory_id_from_the_osv_source_reaches_status_yank_and_logs_inert(
        project: Settings, terminal: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """`factory status` prints its table with Rich markup on: an advisory id (from
    the OSV source, recorded in the project record) was applied as markup there, and
    its escapes were sent raw; the same id became the yank reason pip shows users."""
    from factory.index.records import Layout
    from factory.index.validation import load_record
    from factory.watch import WatchResult, check_advisories

    advisories = project.root / "advisories"
    advisories.mkdir()
    settings = dataclasses.replace(project, advisories=str(advisories))
    release(settings, [stage_build(settings, NAME)])
    (advisories / "evil.json").write_text(json.dumps({
        "id": "GHSA-" + EVIL, "summary": EVIL,
        "affected": [{"package": {"ecosystem": "PyPI", "name": NAME}, "versions": [VERSION]}]}))
    yanked = check_advisories(settings, Index.of(settings))
    assert [(p, v) for p, v, _ in yanked] == [(NAME, VERSION)]
    (entry,) = load_record(Layout(settings.index_dir), NAME).files  # type: ignore[union-attr]
    inert(entry.yanked_reason or "")  # served in PEP 691 JSON; pip prints it to users
    inert(WatchResult(yanked=yanked).summary())  # the watch flow logs it through Prefect
    _use(monkeypatch, settings)
    cli.policy.status(offline=True, as_json=False)
    shown = terminal.getvalue()
    inert(shown)
    assert "[link=http://evil.example/]x[/link]" in shown  # shown as text, not applied
    assert "[bold red]PWNED[/bold red]" in shown


def test_recipe_fields_in_the_recipes_table_are_shown_inert(
        project: Settings, terminal: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = project.recipes_dir / f"{NAME}.toml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(f'name = "{NAME}"\nversions = ">=1"\nlicenses = [{json.dumps(EVIL)}]\n')
    _use(monkeypatch, project)
    cli.policy.recipes_list(as_json=False)
    shown = terminal.getvalue()
    inert(shown)
    assert "[bold red]PWNED[/bold red]" in shown


def test_a_dynamic_requirement_a_build_reported_is_shown_inert_by_plan(
        project: Settings, terminal: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend's get_requires_for_build_wheel answer is remembered for planning and
    printed by `factory plan`, with markup on: a quoted marker value may hold any
    text, and the node's own "[runtime]" tag was swallowed as markup."""
    from factory import plan
    from factory.lock import load_lock

    stage_build(project, NAME)
    (locked,) = load_lock(project).components
    hostile = 'evil; python_version == "[link=http://evil.example/]3[/link] [bold]x[/bold]"'
    plan.remember_dynamic(project, locked, [hostile], AN_IMAGE.id)  # as a build reported it
    _use(monkeypatch, project)
    cli.build.plan(names=None)
    shown = terminal.getvalue()
    inert(shown)
    assert f"{NAME} {VERSION} [runtime]" in shown
    assert "[link=http://evil.example/]3[/link]" in shown


def test_names_on_disk_in_index_check_problems_are_shown_inert(
        project: Settings, terminal: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    release(project, [stage_build(project, NAME)])
    stray = project.index_dir / "files" / NAME / "x\x1b[2J\x1b]8;;http:e\x07[bold red]B\u202e.whl"
    stray.write_bytes(b"x")
    page = project.index_dir / "simple" / NAME / "index.html"
    page.write_text("<a href='\x1b[2J'>[bold red]PWNED[/bold red]</a>")
    _use(monkeypatch, project)
    with pytest.raises(typer.Exit):
        cli.index.index_check(quick=False, as_json=False)
    shown = terminal.getvalue()
    inert(shown)
    assert "[bold red]B" in shown and "no record names this file" in shown


def test_lock_mismatch_lines_are_shown_inert(project: Settings, terminal: io.StringIO,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import factory.lock

    monkeypatch.setattr(factory.lock, "check_stage", lambda _settings: [f"{NAME}: {EVIL}"])
    _use(monkeypatch, project)
    with pytest.raises(typer.Exit):
        cli.policy.lock(update=False, check=True, names=None, accept=None, as_json=False)
    shown = terminal.getvalue()
    inert(shown)
    assert "[bold red]PWNED[/bold red]" in shown


# == boundary 8: the state directory and crashes ==============================================

def _root(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    (root / "factory.toml").write_text('[factory]\nstate_dir = "state"\n')
    (root / "recipes" / "six.toml").write_text('name = "six"\nversions = ">=1"\n')
    return root


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI failed with exactly one `error: ... (hint: ...)` line and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0], lines
    return lines[0]


@pytest.mark.parametrize("command", [["plan"], ["lock", "--check"], ["fetch"]])
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_recipes_lock_that_is_a_fifo_or_a_directory_is_one_line(
        tmp_path: Path, command: list[str], kind: str) -> None:
    """A FIFO in place of recipes.lock hung `factory plan`, `lock --check` and `fetch`."""
    root = _root(tmp_path)
    if kind == "fifo":
        os.mkfifo(root / "recipes.lock")
    else:
        (root / "recipes.lock").mkdir()
    assert "recipes.lock" in one_line(factories.cli(root, *command, timeout=60))


def _published_project(tmp_path: Path) -> tuple[Path, Settings]:
    from factory.config import load_settings

    root = _root(tmp_path)
    settings = load_settings(root)
    stage_build(settings, NAME)
    return root, settings


@pytest.mark.parametrize(("damage", "command"), [
    (b"garbage, not a database at all" * 100, ["status", "--offline"]),
    (b"SQLite format 3\x00" + b"\xff" * 4096, ["status", "--offline"]),
    (b"garbage, not a database at all" * 100, ["publish"]),
])
def test_a_ledger_that_is_not_a_database_is_one_line(tmp_path: Path, damage: bytes,
                                                     command: list[str]) -> None:
    root, settings = _published_project(tmp_path)
    (settings.state_dir / "ledger.db").write_bytes(damage)
    assert "ledger" in one_line(factories.cli(root, *command))


@pytest.mark.parametrize("content", [b"\xff\xfe\x00 binary \x00\x01",
                                     b"[factory]\nstate_dir = \xff\n"])
def test_a_binary_factory_toml_is_one_line(tmp_path: Path, content: bytes) -> None:
    root = _root(tmp_path)
    (root / "factory.toml").write_bytes(content)
    assert "factory.toml" in one_line(factories.cli(root, "status", "--offline"))


def test_a_huge_factory_toml_is_read_or_refused_never_a_traceback(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "factory.toml").write_bytes(b'[factory]\nstate_dir = "state"\n'
                                        + b"# padding\n" * (2 << 20))
    result = factories.cli(root, "status", "--offline")
    assert "Traceback" not in result.stderr
    assert result.returncode == 0 or one_line(result)


@pytest.fixture
def read_only_state(tmp_path: Path) -> Iterator[tuple[Path, Settings]]:
    """A project whose state dir, with a staged build in it, is then remounted read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    root = _root(tmp_path)
    state_dir = root / "state"
    state_dir.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(state_dir)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        from factory.config import load_settings

        settings = load_settings(root)
        stage_build(settings, NAME)
        subprocess.run(["mount", "-o", "remount,ro", str(state_dir)], check=True)
        yield root, settings
    finally:
        subprocess.run(["umount", "-l", str(state_dir)], check=False)


@pytest.mark.parametrize("command", [["status", "--offline"], ["publish"], ["keys", "init"],
                                     ["index", "rebuild"], ["yank", "alpha==1.0.0"]])
def test_a_state_dir_on_a_read_only_mount_is_one_line_and_changes_nothing(
        read_only_state: tuple[Path, Settings], command: list[str]) -> None:
    root, settings = read_only_state

    def snapshot() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in sorted(settings.state_dir.rglob("*"))
                if p.is_file()}

    before = snapshot()
    one_line(factories.cli(root, *command))
    assert snapshot() == before


# -- build slot notes ---------------------------------------------------------------------------
class _Client:
    def __init__(self) -> None:
        self.released: list[object] = []

    def release_concurrency_slots_with_lease(self, lease_id: object) -> None:
        self.released.append(lease_id)


@pytest.mark.parametrize("kind", ["directory", "fifo", "link-to-dev-zero", "link-to-dir",
                                  "huge", "not-json", "wrong-shape"])
def test_a_tampered_slot_note_never_hangs_or_breaks_the_next_build(tmp_path: Path,
                                                                   kind: str) -> None:
    """A FIFO note hung every later build for ever; a directory note crashed it."""
    from flows.slots import notes_dir, reclaim

    settings = factories.settings(tmp_path)
    notes = notes_dir(settings)
    notes.mkdir(parents=True)
    note = notes / "00000000-0000-4000-8000-000000000001.json"
    if kind == "directory":
        note.mkdir()
    elif kind == "fifo":
        os.mkfifo(note)
    elif kind == "link-to-dev-zero":
        note.symlink_to("/dev/zero")
    elif kind == "link-to-dir":
        note.symlink_to(tmp_path)
    elif kind == "huge":
        note.write_bytes(b" " * (8 << 20) + b'{"lease": "x", "owner": "y"}')
    elif kind == "not-json":
        note.write_bytes(b"\xff{")
    else:
        note.write_text('[{"lease": 1}]')
    client = _Client()
    assert guarded(lambda: reclaim(settings, client)) == []
    assert client.released == []
    assert not note.is_symlink() and (kind == "directory" or not note.exists())
    assert tmp_path.is_dir()  # a link to a directory is removed, never followed


def test_a_slot_notes_directory_replaced_by_a_link_deletes_nothing_through_it(
        tmp_path: Path) -> None:
    """Every note that is not a lease is deleted: through a link, that was every JSON
    file of the directory it points at (the index's records, say)."""
    from flows.slots import notes_dir, reclaim

    settings = factories.settings(tmp_path)
    elsewhere = tmp_path / "records"
    elsewhere.mkdir()
    (elsewhere / "alpha.json").write_text('{"name": "alpha"}')
    notes_dir(settings).parent.mkdir(parents=True)
    notes_dir(settings).symlink_to(elsewhere)
    client = _Client()
    assert guarded(lambda: reclaim(settings, client)) == []
    assert (elsewhere / "alpha.json").read_text() == '{"name": "alpha"}'


def test_a_slot_notes_directory_replaced_by_a_link_gets_no_note_through_it(
        tmp_path: Path) -> None:
    """build_slot wrote its note through the link (reclaim already refused it)."""
    import uuid as uuids

    from flows.slots import _write_note, notes_dir

    settings = factories.settings(tmp_path)
    lease = uuids.uuid4()
    elsewhere = tmp_path / "records"
    elsewhere.mkdir()
    notes_dir(settings).parent.mkdir(parents=True)
    notes_dir(settings).symlink_to(elsewhere)
    assert _write_note(settings, lease) is None
    assert list(elsewhere.iterdir()) == []
    notes_dir(settings).unlink()
    note = _write_note(settings, lease)
    assert note is not None and note.parent == notes_dir(settings)
    assert str(lease) in note.read_text()


# -- kill -9 at other points ----------------------------------------------------------------------
PAUSE_AT = """
    import os, sys, time
    from pathlib import Path
    from factory.build.record import BuildRecord
    from tests import factories

    base, point = Path(sys.argv[1]), sys.argv[2]
    settings = factories.settings(base, project="project")

    def pause(*_args, **_kwargs):
        print("AT", flush=True)
        time.sleep(600)

    if point == "published-not-recorded":
        from factory import ledger
        import factory.publish as release
        real = ledger.record_decision
        def record_decision(settings, component, action, *args, **kwargs):
            if action == ledger.PUBLISHED:
                pause()
            return real(settings, component, action, *args, **kwargs)
        release.ledger.record_decision = record_decision
        release.release_all(settings, [BuildRecord.load(Path(sys.argv[3]))])
    elif point == "trust-before-manifest":
        import importlib
        import factory.publish as release
        publish = importlib.import_module("factory.index.changes")
        real_write = publish.write_json
        def write_json(path, value):
            if path.name == "_trust.json":
                pause()
            return real_write(path, value)
        publish.write_json = write_json
        release.release_all(settings, [BuildRecord.load(Path(sys.argv[3]))])
    elif point == "trust-mid-write":
        from factory._internal import atomic
        import factory.publish as release
        real_replace = os.replace
        def replace(src, dst, *args, **kwargs):
            if "/trust/" in str(dst):
                pause()
            return real_replace(src, dst, *args, **kwargs)
        atomic.os.replace = replace
        release.release_all(settings, [BuildRecord.load(Path(sys.argv[3]))])
    elif point == "lock-mid-write":
        from factory._internal import atomic
        from factory.lock import Lock, load_lock, save_lock
        lock = load_lock(settings)
        real_replace = os.replace
        def replace(src, dst, *args, **kwargs):
            if str(dst).endswith("recipes.lock"):
                pause()
            return real_replace(src, dst, *args, **kwargs)
        atomic.os.replace = replace
        save_lock(settings, Lock([]))
    elif point == "ledger-transaction":
        from factory import ledger
        with ledger.session(settings) as db:
            db.add(ledger.Decision(component="ghost", version="1", action="refused",
                                   reason="half"))
            db.flush()
            pause()
"""


def _kill_at(tmp_path: Path, point: str, *args: str) -> None:
    child = python(PAUSE_AT, str(tmp_path), point, *args)
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        assert line == b"AT\n", (line, child.stderr.read().decode()[-3000:])  # type: ignore[union-attr]
    finally:
        kill9(child)


def test_a_kill_between_publishing_and_the_ledger_is_completed_by_the_rerun(
        project: Settings, tmp_path: Path) -> None:
    """The version was refused, then rebuilt and published, and the run was killed
    before the ledger said so: the rerun found the wheel served and skipped it, so
    `factory status` called a served version refused for ever."""
    bad = stage_build(project, NAME, requires=["evil"])
    assert [r.filename for r in release_all(project, [bad]).refused] == [bad.wheel_filename]
    good = stage_build(project, NAME, files={f"{NAME}/__init__.py": b"VALUE = 2\n"})
    _kill_at(tmp_path, "published-not-recorded",
             str(project.wheels_dir / (good.wheel_filename + ".build.json")))
    assert [r["version"] for r in refused_wheels(project)] == [VERSION]  # the kill's state
    report = release_all(project, [good])
    assert report.published == [] and report.refused == []
    assert refused_wheels(project) == []


@pytest.mark.parametrize("point", ["trust-before-manifest", "trust-mid-write"])
def test_a_kill_while_publishing_trust_files_is_completed_by_the_rerun(
        project: Settings, tmp_path: Path, point: str) -> None:
    """Killed with a trust file written and the manifest not, or with a trust file's
    temp copy beside it: the rerun publishes, and the index checks clean."""

    record = stage_build(project, NAME)
    _kill_at(tmp_path, point,
             str(project.wheels_dir / (record.wheel_filename + ".build.json")))
    release(project, [record])
    assert Index.of(project).check(deep=True) == []


def test_a_kill_while_saving_the_lock_leaves_the_old_lock_whole(project: Settings,
                                                                tmp_path: Path) -> None:
    from factory.lock import load_lock

    stage_build(project, NAME)
    project.lock_path.chmod(0o644)
    before = project.lock_path.read_bytes()
    _kill_at(tmp_path, "lock-mid-write")
    assert project.lock_path.read_bytes() == before
    assert stat.S_IMODE(project.lock_path.stat().st_mode) == 0o644
    assert [c.key for c in load_lock(project).components] == [NAME]


def test_a_kill_inside_a_ledger_transaction_leaves_no_half_row(project: Settings,
                                                               tmp_path: Path) -> None:
    ledger.record_decision(project, "before", "locked", "kept")
    _kill_at(tmp_path, "ledger-transaction")
    assert [d["component"] for d in ledger.decisions(project)] == ["before"]
    ledger.record_decision(project, "after", "locked", "still writable")
    assert [d["component"] for d in ledger.decisions(project)] == ["after", "before"]


# == boundary 3: build container -> host (real hostile builds) ===============================

@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from factory.build.image import bootstrap_image

    return bootstrap_image(factories.settings(tmp_path_factory.mktemp("image")))


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The test venv's front end, with installer (the driver installs tool wheels)."""
    import shutil

    import installer

    from factory.build.env import Kit, KitPart
    from tests.builders_fixtures import host_kit

    where = tmp_path_factory.mktemp("kit")
    base = host_kit(where)
    root = where / "installer"
    shutil.copytree(Path(str(installer.__file__)).parent, root / "installer",
                    ignore=shutil.ignore_patterns("__pycache__"))
    part = KitPart("installer", installer.__version__, "installer (test venv)", "0" * 64, root)
    return Kit((*base.parts, part))


def _build(settings: Settings, kit: Any, image: Any, name: str, payload: str,
           extra: str = "", files: Mapping[str, str] | None = None,
           tools: tuple[Path, ...] = ()) -> Any:
    """The hostile build in the real container, failed by ``guarded`` if it hangs."""
    from tests.builders_fixtures import build_backend

    return guarded(lambda: build_backend(settings, kit, image, name, payload, extra, files,
                                        tools), 240)


def _nothing_left(settings: Settings, placed: bool = False) -> None:
    wheels = list(settings.wheels_dir.glob("*.whl")) if settings.wheels_dir.exists() else []
    assert bool(wheels) == placed, wheels
    builds = settings.builds_dir
    assert not builds.exists() or not [p for p in builds.iterdir()
                                       if p.name.startswith("build-")]


HOSTILE_NAMES = """
    import os
    for name in NAMES:
        with open("/out/" + name, "wb") as f:
            f.write(b"PK\\x05\\x06" + b"\\x00" * 18)
"""


@pytest.mark.docker
def test_hostile_wheel_names_in_the_output_reach_the_terminal_inert(
        tmp_path: Path, kit: Any, image: Any, terminal: io.StringIO) -> None:
    """Besides the real wheel: names with a newline, escapes, Rich markup, bidi, and
    one of 250 characters. The error lists them; the operator sees them inert."""
    from factory.build.confined import OutputRefused

    settings = factories.settings(tmp_path, build_timeout=120)
    names = ["x\n\x1b[2J\x1b]8;;http:evil.example\x07[bold red]PWNED\u202e.whl",  # no '/'
             "y" * 246 + ".whl"]
    with pytest.raises(OutputRefused) as caught:
        _build(settings, kit, image, "names", HOSTILE_NAMES, f"\nNAMES = {names!r}\n")
    error = caught.value
    assert "expected one wheel in its output, got 3" in error.message
    inert(error.message)
    cli.print_error(error)
    shown = terminal.getvalue()
    inert(shown)
    assert "[bold red]PWNED" in shown and shown.count("\n") == 1
    _nothing_left(settings)


@pytest.mark.docker
def test_a_directory_named_like_a_wheel_is_refused_and_removed(tmp_path: Path, kit: Any,
                                                               image: Any) -> None:
    from factory.build.confined import OutputRefused

    settings = factories.settings(tmp_path, build_timeout=120)
    payload = """
        import os
        os.makedirs("/out/dirwheel-1.0-py2-none-any.whl/dirwheel")
        open("/out/dirwheel-1.0-py2-none-any.whl/dirwheel/__init__.py", "w").close()
    """
    with pytest.raises(OutputRefused, match="expected one wheel in its output, got 2"):
        _build(settings, kit, image, "dirwheel", payload)
    _nothing_left(settings)


DAEMON = """
    import os, time
    if os.fork() == 0:  # a daemon that outlives the backend and the driver, if it can
        os.setsid()
        if os.fork() == 0:
            n = 0
            while True:
                n += 1
                with open("/out/tick.tmp", "w") as f:
                    f.write(str(n))
                os.replace("/out/tick.tmp", "/out/tick")
                for name in os.listdir("/out"):  # and rewrites the wheel once it is there
                    if name.endswith(".whl") and not os.path.exists("/out/" + name + ".seen"):
                        open("/out/" + name + ".seen", "w").close()
                time.sleep(0.005)
        os._exit(0)
    time.sleep(0.2)
"""


@pytest.mark.docker
def test_a_daemon_the_build_leaves_behind_writes_nothing_once_the_build_is_over(
        tmp_path: Path, kit: Any, image: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the host reads of /out cannot change under it: when the driver exits, the
    container's init and every process of the build go with it."""
    import time

    from factory.build import job as builder

    settings = factories.settings(tmp_path, build_timeout=120)
    seen: list[dict[str, bytes]] = []
    real = builder._the_wheel

    def snapshot(out: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}

    def watched(settings_: Settings, run: Any, out: Any, work: Path) -> Path:
        seen.append(snapshot(out.root))
        time.sleep(1.5)  # a live daemon would tick some 300 times meanwhile
        seen.append(snapshot(out.root))
        return real(settings_, run, out, work)

    monkeypatch.setattr(builder, "_the_wheel", watched)
    record = _build(settings, kit, image, "daemon", DAEMON)
    assert "tick" in seen[0]  # the daemon ran while the build did
    assert seen[0] == seen[1]
    assert record.wheel_filename == "daemon-1.0-py3-none-any.whl"
    _nothing_left(settings, placed=True)


HARD_LINKS = """
    import errno, os
    results = {}
    for i, source in enumerate(["/source/pyproject.toml", "/source/backend.py",
                                "/wheels/tooly-1.0-py3-none-any.whl", "/kit/driver.py",
                                "/kit/system.json", "/etc/passwd", "/usr/bin/python3"]):
        try:
            os.link(source, f"/out/link{i}", follow_symlinks=True)
            results[source] = "linked"
            with open(f"/out/link{i}", "ab") as f:  # and write through it
                f.write(b"# written through a hard link\\n")
        except OSError as exc:
            results[source] = errno.errorcode.get(exc.errno, str(exc.errno))
    print("LINKS", sorted(results.items()), flush=True)
"""


@pytest.mark.docker
def test_the_build_cannot_hard_link_a_file_it_can_read_into_its_output(
        tmp_path: Path, kit: Any, image: Any) -> None:
    """A hard link in /out to the mounted source, the kit or the image would let the
    build write through its one writable mount into them, and leave the host a
    regular file that is not the build's: every mount is its own, so the kernel
    refuses (EXDEV), and the read-only ones stay as they were."""
    settings = factories.settings(tmp_path, build_timeout=120)
    tool = tmp_path / "tools" / "tooly-1.0-py3-none-any.whl"  # a build tool: its wheelhouse
    tool.parent.mkdir()
    tool.write_bytes(factories.wheel_bytes("tooly", "1.0", files={"tooly/__init__.py": b""}))
    before = tool.read_bytes()
    record = _build(settings, kit, image, "linker", HARD_LINKS, tools=(tool,))
    log = (settings.logs_dir / record.log_filename).read_text()
    links = next(line for line in log.splitlines() if line.startswith("LINKS"))
    assert "linked" not in links and links.count("EXDEV") == 7, links
    assert tool.read_bytes() == before
    tree = settings.root / "trees" / "linker"
    (source,) = tree.iterdir()
    assert b"hard link" not in (source / "pyproject.toml").read_bytes()
    _nothing_left(settings, placed=True)


REQUIRES_LIE = """
    import json
    with open("/out/requires.json", "w") as f:
        json.dump({"static": [], "dynamic": [DYNAMIC], "missing": []}, f)
"""


@pytest.mark.docker
@pytest.mark.parametrize("dynamic", [
    'evil; extras == "x"',  # the plan could not evaluate it: every later plan crashed
    'evil; python_version == "\x1b[2J"',  # a terminal escape, shown by `factory plan`
])
def test_a_reported_requirement_the_plan_cannot_use_is_refused_at_the_build(
        tmp_path: Path, kit: Any, image: Any, dynamic: str) -> None:
    from factory.build.confined import OutputRefused

    settings = factories.settings(tmp_path, build_timeout=120)
    with pytest.raises(OutputRefused, match="invalid requirement"):
        _build(settings, kit, image, "reqlie", REQUIRES_LIE, f"\nDYNAMIC = {dynamic!r}\n")
    _nothing_left(settings)


def test_the_plan_survives_a_requirement_that_cannot_be_evaluated(project: Settings) -> None:
    """Host half of the case above: a cached report from before the fix (or any other
    writer) fails that component's planning with a PlanError, never a KeyError."""
    from factory import plan
    from factory.errors import FactoryError
    from factory.lock import load_lock

    stage_build(project, NAME)
    (locked,) = load_lock(project).components
    plan.remember_dynamic(project, locked, ['evil; extras == "x"'], AN_IMAGE.id)
    with contextlib.suppress(FactoryError):
        plan.make_plan(project)


SPARSE_AND_LOCKED = """
    import os
    for i in range(2):
        with open(f"/out/sparse{i}", "wb") as f:
            f.truncate(30 << 20)  # 30 MiB each that take no disk
"""

MODES_000 = """
    import os
    os.mkdir("/out/locked")
    open("/out/locked/inside", "w").write("x")
    open("/out/unreadable", "w").write("x")
    os.chmod("/out/unreadable", 0)
    os.chmod("/out/locked", 0)
"""


@pytest.mark.docker
def test_sparse_files_are_charged_whole_in_a_real_build(tmp_path: Path, kit: Any,
                                                        image: Any) -> None:
    from factory.build.confined import OutputRefused

    settings = factories.settings(tmp_path, build_timeout=120, build_max_output=50 << 20)
    with pytest.raises(OutputRefused, match="over the limit"):
        _build(settings, kit, image, "sparse", SPARSE_AND_LOCKED)
    _nothing_left(settings)


@pytest.mark.docker
def test_entries_of_mode_000_are_handled_and_removed(tmp_path: Path, kit: Any,
                                                     image: Any) -> None:
    """The build drops every permission of what it leaves; the host still measures,
    copies the wheel and removes the rest (or refuses, in one line)."""
    from factory.errors import BuildError

    settings = factories.settings(tmp_path, build_timeout=120)
    try:
        record = _build(settings, kit, image, "modes", MODES_000)
    except BuildError as exc:
        assert "\n" not in exc.message.split(" (log:")[0]
        _nothing_left(settings)
    else:
        assert record.wheel_filename == "modes-1.0-py3-none-any.whl"
        _nothing_left(settings, placed=True)


@pytest.mark.docker
@pytest.mark.parametrize("path", ['["/kit/lib/packaging"]', '["../.."]', '["/out"]'])
def test_a_backend_path_outside_the_source_tree_never_builds(tmp_path: Path, kit: Any,
                                                             image: Any, path: str) -> None:
    from factory.errors import BuildError

    settings = factories.settings(tmp_path, build_timeout=120)
    pyproject = ('[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                 f"backend-path = {path}\n")
    with pytest.raises(BuildError):
        _build(settings, kit, image, "outside", "pass", files={"pyproject.toml": pyproject})
    _nothing_left(settings)


@pytest.mark.parametrize("kind", ["huge", "fifo", "directory", "link-in-tree"])
def test_a_hostile_pyproject_toml_is_refused_by_the_host_without_blocking(
        tmp_path: Path, kind: str) -> None:
    from factory.build.env import PYPROJECT_LIMIT, build_system
    from factory.errors import BuildError

    target = tmp_path / "pyproject.toml"
    if kind == "huge":
        target.write_bytes(b"[build-system]\n" + b"#" * PYPROJECT_LIMIT + b"\n")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        (tmp_path / "setup.cfg").write_text("[build-system]\nbuild-backend = 'x'\n")
        target.symlink_to("setup.cfg")
    with pytest.raises(BuildError) as caught:
        guarded(lambda: build_system(tmp_path, "x 1"))
    assert "pyproject.toml" in caught.value.message
