"""Attack pass on the builds per interpreter (issue 21, second pass): a hostile build's
tags and metadata, a lying distributed worker, odd [build] interpreters settings. No
containers: the worker's results are store objects made here, the gate's checks are
called on file names and records. The tarball/tree/graft side is tests/test_attack_issue21.py.
Each test's docstring says what broke (and was fixed) or held.
"""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from factory.admission import AdmissionError, _check_tags, built_for
from factory.build import interpreters, variants
from factory.build import ticket as tickets
from factory.build.record import BuildRecord
from factory.build.ticket import TicketRefused
from factory.errors import ConfigError
from tests import factories
from tests.test_attack_issue19 import Honest
from tests.test_interpreter_variants import python

CP313 = python("3.13.5")
TREE = CP313.tree_sha256


@pytest.fixture
def honest(tmp_path: Path) -> Honest:
    return Honest(tmp_path)


def _for_cp313(honest: Honest, variant: bool = True) -> Honest:
    """The same worker, handed a ticket for CPython 3.13 (the kept tree ``TREE``): a
    variant of a native component, or (``variant`` False) a component's first build."""
    honest.ticket = replace(honest.ticket, interpreter_tag="cp313",
                            interpreter_tree_sha256=TREE, variant=variant)
    honest.ticket_blob = honest.store.put_bytes(honest.ticket.to_bytes())
    return honest


def _placed(honest: Honest) -> list[str]:
    wheels = honest.settings.wheels_dir
    return sorted(p.name for p in wheels.iterdir()) if wheels.is_dir() else []


# -- a lying worker ---------------------------------------------------------------------------

def test_an_honest_cp313_result_is_collected(honest: Honest) -> None:
    """Held (the baseline): a cp313 ticket's result naming that tree and a cp313 wheel."""
    _for_cp313(honest)
    name = "alpha-1.0-cp313-cp313-manylinux_2_17_x86_64.whl"
    honest.collect(honest.result(wheel_name=name,
                                 builder_settings={"interpreter": CP313.describe()}))
    assert name in _placed(honest)


def test_a_cp313_ticket_answered_with_a_cp311_record_and_wheel_is_refused(
        honest: Honest) -> None:
    """Broke: the publisher compared only the recorded tree digest with the ticket's; a
    worker whose record named the cp313 tree but tag cp311 (version 3.11.2) and gave a
    cp311 wheel was collected, placed over the host's own cp311 wheel of that version and
    admitted (the gate read the record's cp311). Held now: the record's tag must be the
    ticket's (and its version's), nothing placed."""
    _for_cp313(honest)
    wheels = honest.settings.wheels_dir
    wheels.mkdir(parents=True)
    name = "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    (wheels / name).write_bytes(b"the host's own cp311 wheel")
    lie = {**CP313.describe(), "version": "3.11.2", "tag": "cp311"}
    with pytest.raises(TicketRefused, match=r"does not match its ticket \(interpreter, wheel"):
        honest.collect(honest.result(wheel_name=name, builder_settings={"interpreter": lie}))
    assert (wheels / name).read_bytes() == b"the host's own cp311 wheel"


def test_a_system_ticket_answered_with_a_record_claiming_cp313_is_refused(
        honest: Honest) -> None:
    """Broke: a 3.11 ticket (no interpreter) took any record without a tree digest, so a
    worker's record saying interpreter {version 3.13.5, tag cp313} with a cp313 wheel was
    collected, and the gate, reading that tag, admitted the cp313 wheel: a file for an
    interpreter the ticket never named, under the cp313 variant's name. Held now."""
    name = "alpha-1.0-cp313-cp313-manylinux_2_17_x86_64.whl"
    claim = {"version": "3.13.5", "tag": "cp313", "prefix": "/usr"}
    with pytest.raises(TicketRefused, match=r"\(interpreter, wheel tags"):
        honest.collect(honest.result(wheel_name=name, builder_settings={"interpreter": claim}))
    assert _placed(honest) == []


@pytest.mark.parametrize("name", [
    "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",  # the other interpreter's
    "alpha-1.0-cp311.cp313-cp313-manylinux_2_17_x86_64.whl",  # a set mixing two
    "alpha-1.0-py3-none-any.whl",  # pure: a cp313 build exists only for native wheels
    "alpha-1.0-cp313-abi3-manylinux_2_17_x86_64.whl",  # abi3: the same
    "alpha-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl",  # free-threaded ABI
])
def test_a_cp313_tickets_wheel_of_other_tags_is_refused_before_placing(
        honest: Honest, name: str) -> None:
    """Broke: with a record naming the ticket's interpreter, the publisher never looked
    at the wheel's tags (the host checks its own builds' wheels; a worker's host is the
    worker), so a cp311 file from a cp313 ticket replaced the cp311 wheel in the wheels
    directory before the gate refused it. Held now: the same rule as a local build."""
    _for_cp313(honest)
    with pytest.raises(TicketRefused, match="wheel tags"):
        honest.collect(honest.result(wheel_name=name,
                                     builder_settings={"interpreter": CP313.describe()}))
    assert _placed(honest) == []


@pytest.mark.parametrize("name", [
    "alpha-1.0-py3-none-any.whl", "alpha-1.0-cp313-abi3-manylinux_2_17_x86_64.whl",
    "alpha-1.0-cp313-cp313-manylinux_2_17_x86_64.whl"])
def test_a_first_build_on_cp313_may_give_a_pure_or_abi3_wheel(honest: Honest,
                                                              name: str) -> None:
    """A component whose Requires-Python excludes 3.11 is first built by 3.13 on a worker:
    its wheel may be pure or abi3 (shared by every interpreter), as a local first build's."""
    _for_cp313(honest, variant=False)
    honest.collect(honest.result(wheel_name=name,
                                 builder_settings={"interpreter": CP313.describe()}))
    assert name in _placed(honest)


@pytest.mark.parametrize("name", [
    "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    "alpha-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl"])
def test_a_first_build_on_cp313_is_still_refused_another_abi(honest: Honest,
                                                            name: str) -> None:
    _for_cp313(honest, variant=False)
    with pytest.raises(TicketRefused, match="wheel tags"):
        honest.collect(honest.result(wheel_name=name,
                                     builder_settings={"interpreter": CP313.describe()}))
    assert _placed(honest) == []


def test_a_ticket_naming_a_tag_no_pin_carries_is_refused_by_the_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: a ticket for cp39 (no pin) or for cp313 with the 3.14 tree's digest is
    refused by the worker in one line; it never builds on the ticket's word."""
    settings = factories.settings(tmp_path)
    monkeypatch.setattr(tickets, "held_image", lambda *a: SimpleNamespace(id="sha256:x"))
    monkeypatch.setattr(interpreters, "usable", lambda *a: CP313)
    base = Honest(tmp_path / "w").ticket
    for tag, tree in (("cp39", TREE), ("cp313", python("3.14.0").tree_sha256)):
        with pytest.raises(TicketRefused) as caught:
            tickets.ticket_interpreter(settings, replace(base, interpreter_tag=tag,
                                                         interpreter_tree_sha256=tree))
        assert "\n" not in caught.value.message


# -- the admission gate -----------------------------------------------------------------------

def _record(interpreter: dict[str, Any]) -> BuildRecord:
    return SimpleNamespace(builder_settings={"interpreter": interpreter})  # type: ignore


def test_the_gate_takes_a_built_interpreter_only_with_its_tree(tmp_path: Path) -> None:
    """Broke: built_for took a record's {version 3.13.5, tag cp313} without a tree digest
    as a 3.13 build (with the ticket fix above, a worker can no longer bring one; the gate
    no longer relies on that). Held now: a built interpreter is named with its tree."""
    settings = factories.settings(tmp_path, build_interpreters=("3.11", "3.13"))
    approvals: Any = SimpleNamespace(env={"python_version": "3.11"})
    claim = {"version": "3.13.5", "tag": "cp313"}
    assert built_for(settings, _record(claim), approvals) == "3.11"
    assert built_for(settings, _record(CP313.describe()), approvals) == "3.13"
    system = {"version": "3.11.2", "tag": "cp311", "prefix": "/usr"}
    assert built_for(settings, _record(system), approvals) == "3.11"


def _contents(name: str) -> Any:
    from packaging.utils import parse_wheel_filename

    return SimpleNamespace(tags=[str(t) for t in parse_wheel_filename(name)[3]])


@pytest.mark.parametrize("name", [
    "m-1.0-cp311-cp313-manylinux_2_17_x86_64.whl",  # our interpreter, another's ABI
    "m-1.0-py3-cp311-linux_x86_64.whl",  # a cp ABI under a py interpreter tag
    "m-1.0-cp311-cp311-win_amd64.whl",  # another platform
    "m-1.0-cp311-cp311-macosx_11_0_arm64.whl",
    "m-1.0-py3-none-manylinux_2_17_x86_64.macosx_11_0_arm64.whl",  # a set mixing two
    "m-1.0-cp311-cp311-manylinux_2_17_aarch64.whl",  # another architecture
    "m-1.0-cp311-cp311-musllinux_1_2_x86_64.whl",  # another libc
])
def test_the_gate_refuses_tags_the_builder_could_not_have_given(name: str) -> None:
    """Broke: the gate checked a bound ABI's interpreter only (cp311-cp313 passed), skipped
    every tag whose interpreter is not cpXY (py3-cp311 passed) and no platform at all: a
    worker (whose host check is its own) could publish a win_amd64 or macOS wheel holding
    anything, which pip on such a machine installs. Held now: a bound tag is the
    builder's interpreter and ABI both; the platform is any, or Linux of this machine."""
    with pytest.raises(AdmissionError):
        _check_tags(name, _contents(name), "3.11")


@pytest.mark.parametrize("name", [
    "m-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "m-1.0-cp311-cp311-linux_x86_64.whl",
    "m-1.0-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    "m-1.0-py2.py3-none-any.whl", "m-1.0-cp311-none-linux_x86_64.whl",
])
def test_the_gate_takes_what_the_builder_gives(name: str) -> None:
    """Held: native, abi3, pure and none-ABI wheels of this builder still pass."""
    _check_tags(name, _contents(name), "3.11")


# -- a hostile first wheel steering the variants ------------------------------------------------

def _wheel(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in members.items():
            archive.writestr(member, text)
    return path


def test_requires_python_comes_from_the_wheels_own_dist_info(tmp_path: Path) -> None:
    """Broke: the first *.dist-info/METADATA in the zip was read, so a build that put an
    'aaa-0.dist-info' first saying Requires-Python <3.12 kept every other interpreter's
    build from being planned (skipped, 'excludes CPython 3.13'). Held now: the wheel's
    own dist-info (either spelling of its name) is read, another ignored."""
    meta = "Metadata-Version: 2.1\nName: MarkupSafe\nVersion: 3.0.3\nRequires-Python: {}\n"
    wheel = _wheel(tmp_path / "markupsafe-3.0.3-cp311-cp311-linux_x86_64.whl", {
        "aaa-0.dist-info/METADATA": meta.format("<3.12"),
        "MarkupSafe-3.0.3.dist-info/METADATA": meta.format(">=3.9")})
    assert variants.requires_python(wheel) == ">=3.9"
    assert variants.admits(variants.requires_python(wheel), "3.13.5") is None
    alone = _wheel(tmp_path / "m-1.0-cp311-cp311-linux_x86_64.whl",
                   {"n-1.0.dist-info/METADATA": meta.format("<3.12")})
    assert variants.requires_python(alone) is None  # none of its own: every one is built


def test_a_giant_or_unreadable_requires_python_stays_one_line(tmp_path: Path) -> None:
    """Held: a Requires-Python of 200,000 characters that is no specifier is a one-line
    skip reason (bounded); one over 1 MiB of METADATA is not read (every variant built,
    the gate judges the wheel)."""
    why = variants.admits(">=3.9," + "x" * 200_000, "3.13.5")
    assert why is not None and len(why) < 200 and "\n" not in why
    huge = _wheel(tmp_path / "m-1.0-cp311-cp311-linux_x86_64.whl",
                  {"m-1.0.dist-info/METADATA": "Requires-Python: <3\n" + "x" * (1 << 21)})
    assert variants.requires_python(huge) is None


# -- records replayed for another interpreter -------------------------------------------------

def test_a_record_is_up_to_date_only_for_its_own_interpreter() -> None:
    """Held: a cp311 record is not taken for a cp313 build, nor a cp313 record for a build
    with another cp313 tree, nor a record naming a tag without a tree for the image's own
    python3 when it names cp313."""
    cp311 = {"version": "3.11.2", "tag": "cp311", "prefix": "/usr"}
    other_tree = replace(CP313, tree_sha256="e" * 64)
    cases = [(cp311, CP313, False), (CP313.describe(), other_tree, False),
             (CP313.describe(), None, False), ({"version": "3.13.5", "tag": "cp313"}, None,
                                               False),
             (CP313.describe(), CP313, True), (cp311, None, True)]
    for described, wanted, same in cases:
        inputs: Any = SimpleNamespace(interpreter=wanted)
        assert variants.same_interpreter(_record(described), inputs) is same


# -- odd configuration --------------------------------------------------------------------------

def test_odd_interpreter_settings_are_one_line_errors_or_harmless(tmp_path: Path) -> None:
    """Held: duplicates are kept once (one build per interpreter, not two records
    colliding); a version no pin carries (3.12) is a ConfigError naming the known ones,
    raised when the run starts; "3.11" left out still builds the image's own first wheel
    (every variant needs it to decide) and plans the others."""
    from factory.config import _interpreters

    assert _interpreters("build_interpreters", ["3.13", "3.11", "3.13"]) == ("3.13", "3.11")
    with pytest.raises(ConfigError):
        _interpreters("build_interpreters", ["3.13.1"])
    with pytest.raises(ConfigError):
        _interpreters("build_interpreters", [])
    settings = factories.settings(tmp_path, build_interpreters=("3.12",))
    with pytest.raises(ConfigError, match="no source pin") as caught:
        interpreters.select(settings)
    assert "\n" not in caught.value.message
    only = factories.settings(tmp_path, build_interpreters=("3.13",))
    assert [p.tag for p in interpreters.select(only)] == ["cp313"]


# -- the ledger: one refusal per file -----------------------------------------------------------

def test_a_later_refusal_of_another_file_does_not_hide_an_open_one(tmp_path: Path) -> None:
    """Broke: open_refusals kept only the newest refusal per version, so cp313 refused,
    then cp311 refused and published, left no open refusal: status called the version
    fine while its cp313 wheel was never published. Held now: each file's refusal stays
    open until that file (or a publication that names no file) closes it."""
    from factory import ledger

    settings = factories.settings(tmp_path)
    cp311, cp313 = (f"m-1.0-{t}-{t}-manylinux_2_17_x86_64.whl" for t in ("cp311", "cp313"))
    ledger.record_decision(settings, "m", ledger.REFUSED, f"{cp313}: unsigned", version="1.0")
    ledger.record_decision(settings, "m", ledger.REFUSED, f"{cp311}: unsigned", version="1.0")
    assert ledger.open_refusals(settings)[("m", "1.0")]["reason"].startswith(cp311)
    ledger.record_decision(settings, "m", ledger.PUBLISHED, cp311, version="1.0")
    assert ledger.open_refusals(settings)[("m", "1.0")]["reason"].startswith(cp313)
    ledger.record_decision(settings, "m", ledger.PUBLISHED, cp313, version="1.0")
    assert ledger.open_refusals(settings) == {}
    # a refusal naming no file is closed by any publication of its version, as before
    ledger.record_decision(settings, "m", ledger.REFUSED, "licence refused", version="1.0")
    ledger.record_decision(settings, "m", ledger.PUBLISHED, cp313, version="1.0")
    assert ledger.open_refusals(settings) == {}
