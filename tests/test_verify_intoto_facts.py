"""`verify --all`'s early child verifies in-toto while the parent imports the verifier.

Invariant: each wheel's in-toto row is what a fresh, single-process check of the
files the worker reads gives. The child's verdict is keyed by everything it is a
function of (factory.verify.intoto_inputs): a layout or link file changed after the
child read it, another owner key or other held files make the key differ, and the
worker verifies for itself. A parent whose child answered every wheel never imports
in-toto. Each run is a fresh interpreter: a process with another thread running
(pytest's) never forks the child.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from factory.verify import early
from factory.verify.evidence import gather
from factory.verify.intoto_inputs import LayoutFiles, verdict_key
from factory.verify.model import FAIL, PASS
from factory.verify.targets import resolve
from factory.verify.view import IndexView, sidecar
from factory.verify.wholeindex import open_index
from tests.intoto_fixtures import (  # noqa: F401  (two fixtures)
    copy_fixture,
    item_of,
    layout_dir,
    owner_key,
    published_index,
    run_with_and_without_child,
)
from tests.pipeline_fixtures import PublishedIndex


def _run(copy: PublishedIndex, tmp_path: Path, swaps: Sequence[tuple[Path, Path]] = (),
         owner: Path | None = None) -> dict[str, Any]:
    """Each (path, replacement) in ``swaps`` is copied over after the child read it."""
    between = "".join(f"shutil.copyfile({str(b)!r}, {str(a)!r})\n" for a, b in swaps)
    out = run_with_and_without_child(copy.settings, tmp_path, between=between, owner=owner)
    assert out["with child"] == out["alone"]  # the invariant, whatever else a test asks
    return out


def _link(copy: PublishedIndex, name: str, step: str) -> Path:
    return next(layout_dir(copy, name).glob(f"{step}.*.link"))


def _spoiled(link: Path, into: Path) -> Path:
    """``link`` (a DSSE envelope) with its recorded command changed: its signature no
    longer covers it."""
    envelope = json.loads(link.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["command"] = ["echo", "something else"]
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    into.write_text(json.dumps(envelope))
    return into


def test_every_verdict_comes_from_the_child_and_in_toto_is_never_imported(
        copy: PublishedIndex, tmp_path: Path) -> None:
    out = _run(copy, tmp_path)
    assert out["done"] is True
    assert len(out["facts"]) == len(copy.records)
    assert all(passed for passed, _ in out["facts"].values())
    assert {row[2] for row in out["alone"]} == {PASS}
    assert out["in_toto imported"] is False  # the parent took every verdict


def test_a_link_spoiled_after_the_child_read_it_fails(copy: PublishedIndex,
                                                     tmp_path: Path) -> None:
    link = _link(copy, "alpha", "build")
    out = _run(copy, tmp_path, [(link, _spoiled(link, tmp_path / "spoiled.link"))])
    assert all(passed for passed, _ in out["facts"].values())  # it saw the good bytes
    alpha = [row for row in out["alone"] if row[0].startswith("alpha")]
    assert alpha[0][2] == FAIL and "validly signed" in alpha[0][3]
    assert out["in_toto imported"] is True  # the worker verified alpha itself


def test_a_link_restored_after_the_child_found_it_spoiled_passes(copy: PublishedIndex,
                                                                tmp_path: Path) -> None:
    link = _link(copy, "beta", "fetch")
    good = tmp_path / "good.link"
    shutil.copyfile(link, good)
    _spoiled(good, link)
    out = _run(copy, tmp_path, [(link, good)])
    assert sorted(passed for passed, _ in out["facts"].values()).count(False) == 1
    assert {row[2] for row in out["alone"]} == {PASS}


def test_a_layout_swapped_for_another_wheels_fails(copy: PublishedIndex,
                                                  tmp_path: Path) -> None:
    """A valid, signed layout: gamma's, under beta's name. Its inspection names gamma's
    wheel, so beta fails, with the child's verdicts both keyed to the old bytes."""
    beta = layout_dir(copy, "beta") / "root.layout"
    out = _run(copy, tmp_path, [(beta, layout_dir(copy, "gamma") / "root.layout")])
    beta_rows = [row for row in out["alone"] if row[0].startswith("beta")]
    assert beta_rows[0][2] == FAIL


def test_another_owner_key_is_verified_with_that_key(copy: PublishedIndex,
                                                    tmp_path: Path) -> None:
    """The child keys its verdicts with the owner key a run finds by default; a run
    naming another key (here one that signed nothing) verifies every wheel itself."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "other-owner.pub.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    out = _run(copy, tmp_path, owner=other)
    assert all(passed for passed, _ in out["facts"].values())
    assert {row[2] for row in out["alone"]} == {FAIL}


# -- the key and the child's refusals, in this process -------------------------------------
def _verdict(copy: PublishedIndex, name: str) -> dict[str, Any] | None:
    item = item_of(copy, name)
    (zipped,) = early._pre_check(item.wheel)
    sha, intact = zipped["zip"]
    return early._in_toto_pre_check(item, sha, intact, owner_key(copy))


def test_the_key_changes_with_every_input(copy: PublishedIndex) -> None:
    item = item_of(copy, "alpha")
    evidence = gather(item)
    files = LayoutFiles(sidecar(evidence.base, "in-toto"))
    for name in sorted(os.listdir(files.directory)):
        files.read(name)
    owner = owner_key(copy)
    key = verdict_key(files, owner, evidence.held, evidence.filename)
    assert key == verdict_key(files, dict(owner), dict(evidence.held), evidence.filename)
    held = dict(evidence.held)
    held[evidence.filename] = "0" * 64
    other_files = LayoutFiles(files.directory)
    for name in files.names()[1:]:
        other_files.read(name)
    assert len({key,
                verdict_key(files, {**owner, "keyval": {"public": "x"}}, evidence.held,
                            evidence.filename),
                verdict_key(files, owner, held, evidence.filename),
                verdict_key(files, owner, evidence.held, "other.whl"),
                verdict_key(other_files, owner, evidence.held, evidence.filename)}) == 5


def test_the_child_says_the_verdict_with_the_files_it_read(copy: PublishedIndex) -> None:
    said = _verdict(copy, "alpha")
    assert said is not None and said["pass"] is True
    assert said["names"][0] == "root.layout"
    assert sorted(said["names"]) == sorted(os.listdir(layout_dir(copy, "alpha")))


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_a_link_file_that_is_not_a_regular_file_gets_no_verdict(
        copy: PublishedIndex, tmp_path: Path, kind: str) -> None:
    link = _link(copy, "alpha", "attest")
    kept = tmp_path / "kept.link"
    shutil.move(link, kept)
    if kind == "symlink":
        link.symlink_to(kept)  # the same bytes, through a link: the worker's to refuse
    elif kind == "fifo":
        os.mkfifo(link)  # never opened for reading in a way that blocks
    else:
        link.mkdir()
    assert _verdict(copy, "alpha") is None


def test_a_layout_directory_that_is_a_link_gets_no_verdict(copy: PublishedIndex,
                                                          tmp_path: Path) -> None:
    directory = layout_dir(copy, "alpha")
    moved = tmp_path / "elsewhere"
    shutil.move(directory, moved)
    directory.symlink_to(moved)
    assert _verdict(copy, "alpha") is None


def test_a_custom_inspection_is_left_to_the_worker(copy: PublishedIndex,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from factory.verify import intoto

    monkeypatch.setattr(intoto, "_known_inspection", lambda run, wheel: False)
    assert _verdict(copy, "alpha") is None


def test_a_wheel_changed_between_the_zip_check_and_the_evidence_gets_no_verdict(
        copy: PublishedIndex) -> None:
    item = item_of(copy, "alpha")
    (zipped,) = early._pre_check(item.wheel)
    sha, intact = zipped["zip"]
    with item.wheel.open("ab") as handle:
        handle.write(b"\0")
    assert early._in_toto_pre_check(item, sha, intact, owner_key(copy)) is None


@pytest.mark.parametrize("said", [
    {"key": "ab" * 32, "names": ["root.layout"], "pass": "yes", "message": "m"},
    {"key": "ab", "names": ["root.layout"], "pass": True, "message": "m"},
    {"key": "ab" * 32, "names": "root.layout", "pass": True, "message": "m"},
    {"key": "ab" * 32, "names": [5], "pass": True, "message": "m"},
    {"key": "ab" * 32, "names": [], "pass": True, "message": None},
    {"names": [], "pass": True, "message": "m"},
], ids=["pass-text", "short-key", "names-text", "name-number", "no-message", "no-key"])
def test_a_verdict_of_the_wrong_shape_is_no_fact(said: dict[str, Any]) -> None:
    assert early._in_toto_fact(said) is None


def test_a_verdict_in_the_childs_shape_is_a_fact() -> None:
    fact = early._in_toto_fact({"key": "ab" * 32, "names": ["root.layout"], "pass": False,
                                "message": "m"})
    assert fact == early.InTotoFact("ab" * 32, ("root.layout",), False, "m")


def test_index_view_is_what_the_child_reads(copy: PublishedIndex) -> None:
    """The child's items are the run's (the same resolve over the same view)."""
    index = IndexView(copy.index_dir.resolve(), copy.settings.index_url)
    assert [i.label for i in resolve(index, None, True, ())] == [
        i.label for i in resolve(open_index(copy.settings), None, True, ())]
