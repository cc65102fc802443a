"""Attack pass on the early child's in-toto verdicts (factory verify --all), by someone
who did not write the change.

Invariant: each wheel's ``in-toto`` row with the child is the row a fresh,
single-process run (workers=1, no child) gives for the files the worker reads; what the
child says, or fails to say, changes only speed. No traceback, no hang, bounded work.

Class            | Case                                                     | Before
-----------------|----------------------------------------------------------|---------------
paths            | state reached through a link, layout missing             | BROKE: child's
                 |                                                          | path in message
                 | relative state, layout missing                           | BROKE (same)
TOCTOU (child)   | layout dir made a link between LayoutFiles() and _verify | BROKE: PASS
                 |                                                          | -> FAIL
time             | layout expires between child and worker (pass; and a     | BROKE: PASS /
                 | link failure)                                            | wrong message
stack depth      | link padded (unsigned member) to nest near the recursion | BROKE: PASS vs
                 | limit: verdict depended on the caller's stack            | RecursionError
TOCTOU (worker)  | extra held file; link renamed away; odd-keyid envelope   | held
owner key        | pinned key replaced after the child keyed its verdicts   | held
channel          | expires of the wrong shape is no fact; missing = None    | (new field)

Fixes: factory/verify/intoto.py (_verify: "no in-toto layout at <dir name>/root.layout";
a directory found a link marks files not plain; files.expires set once found unexpired;
verify_in_process runs _verify in a thread of its own, _at_fixed_depth),
intoto_inputs.py (LayoutFiles.expires, still_valid), early.py (InTotoFact.expires,
said and checked in shape), checks.py (Auditor.in_toto takes a verdict only while
still_valid).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from factory.verify import early
from factory.verify.model import FAIL, PASS
from factory.verify.view import sidecar
from tests.intoto_fixtures import (  # noqa: F401  (two fixtures)
    copy_fixture,
    item_of,
    layout_dir,
    owner_key,
    published_index,
    run_with_and_without_child,
)
from tests.pipeline_fixtures import PublishedIndex


def _rows(out: dict[str, Any], name: str, which: str = "alone") -> list[Any]:
    return [row for row in out[which] if row[0].startswith(name)]


# -- the directory's path: not in the key, in a message ------------------------------------
def test_a_state_reached_through_a_link_with_a_layout_missing(copy: PublishedIndex,
                                                             tmp_path: Path) -> None:
    """Broke: "no in-toto layout at <path>" names the directory; the child reads the
    index by its resolved path, the workers by the path the settings name. With the state
    reached through a symbolic link (or a relative one) the key matched (no file was read)
    and the worker reported the child's path, not its own."""
    import dataclasses

    (layout_dir(copy, "alpha") / "root.layout").unlink()
    via = tmp_path / "via"
    via.symlink_to(copy.root)
    settings = dataclasses.replace(copy.settings, root=via / "project",
                                   state_dir=via / "state")
    out = run_with_and_without_child(settings, tmp_path)
    assert out["with child"] == out["alone"]
    (alpha,) = _rows(out, "alpha")
    assert alpha[2] == FAIL and alpha[3].endswith(" alpha-1.0-py3-none-any.whl.in-toto/root.layout")


def test_a_relative_state_with_a_layout_missing(copy: PublishedIndex,
                                                tmp_path: Path) -> None:
    """Broke (as above): the settings name the state relative to the working directory."""
    import dataclasses

    (layout_dir(copy, "alpha") / "root.layout").unlink()
    settings = dataclasses.replace(copy.settings, root=Path("project"),
                                   state_dir=Path("state"))
    out = run_with_and_without_child(settings, tmp_path, cwd=copy.root)
    assert out["with child"] == out["alone"]


# -- the layout directory turned into a link while the child verifies ----------------------
def test_the_layout_directory_a_link_between_the_childs_two_looks(copy: PublishedIndex,
                                                                  tmp_path: Path) -> None:
    """Broke: LayoutFiles notes whether the directory is a link when made; _verify looks
    again. A link swapped in between (and swapped back before the worker reads) made the
    child fail "is a symbolic link" with no file read, a verdict keyed on no files that
    every later reader matched: the worker failed alpha while its own run passes."""
    directory = layout_dir(copy, "alpha")
    prelude = f"""
    from factory.verify import intoto_inputs
    made = intoto_inputs.LayoutFiles.__init__
    def init(self, directory):
        made(self, directory)
        if CHILD() and directory == Path({str(directory)!r}):  # the attacker, now
            os.rename(directory, {str(tmp_path / 'moved')!r})
            os.symlink({str(tmp_path / 'moved')!r}, directory)
    intoto_inputs.LayoutFiles.__init__ = init
    """
    between = f"""
    os.unlink({str(directory)!r})
    os.rename({str(tmp_path / 'moved')!r}, {str(directory)!r})
    intoto_inputs.LayoutFiles.__init__ = made
    """
    out = run_with_and_without_child(copy.settings, tmp_path, prelude, between)
    assert out["with child"] == out["alone"]
    assert {row[2] for row in out["alone"]} == {PASS}


# -- time: the layout expires between the child's look and the worker's --------------------
def _spoiled(link: Path, into: Path) -> Path:
    """``link`` (a DSSE envelope) with its recorded command changed: no longer signed."""
    envelope = json.loads(link.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["command"] = ["echo", "something else"]
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    into.write_text(json.dumps(envelope))
    return into


def _resign(copy: PublishedIndex, name: str, expires: str) -> None:
    from in_toto.models.metadata import Envelope

    from factory.attest.intoto import sign_layout
    from factory.attest.keys import load_signer

    path = sidecar(copy.settings.index_dir / "files" / name / copy.record(name).wheel_filename
                   if copy.records else next((copy.settings.index_dir / "files" / name)
                                             .glob("*.whl")), "in-toto") / "root.layout"
    layout = Envelope.from_dict(json.loads(path.read_text())).get_payload()
    layout.expires = expires
    sign_layout(layout, load_signer(copy.settings, "owner"), path)


def test_a_layout_expiring_between_the_child_and_the_worker(copy: PublishedIndex,
                                                            tmp_path: Path) -> None:
    """Broke: the child checks expiry when it runs; a layout that expires before the
    worker reads it passed (the child's verdict, keyed on bytes only) where the run
    alone fails it "Layout expired"; a failure the child found further on (a spoiled
    link) was its message, not "Layout expired". The child now says the expiry of a
    layout it found unexpired, and the worker takes the verdict only while it is."""
    beta_build = next(layout_dir(copy, "beta").glob("build.*.link"))
    _spoiled(beta_build, tmp_path / "spoiled.link")
    prelude = f"""
    import datetime
    sys.path.insert(0, {str(Path(__file__).parents[1])!r})
    from tests.test_attack_intoto_facts import _resign, PublishedIndex
    DEADLINE = time.time() + 5
    soon = datetime.datetime.fromtimestamp(DEADLINE, datetime.UTC)
    for name in ("alpha", "beta"):
        _resign(PublishedIndex({str(copy.root)!r}, settings, ()), name,
                soon.strftime("%Y-%m-%dT%H:%M:%SZ"))
    shutil.copyfile({str(tmp_path / "spoiled.link")!r}, {str(beta_build)!r})
    """
    between = """
    time.sleep(max(0.0, DEADLINE - time.time()) + 1)
    """
    out = run_with_and_without_child(copy.settings, tmp_path, prelude, between)
    assert len(out["facts"]) == len(copy.records)
    assert sorted(passed for passed, _ in out["facts"].values()).count(False) == 1
    for name in ("alpha", "beta"):  # the child: alpha passes, beta's link fails
        (row,) = _rows(out, name)
        assert row[2] == FAIL and "expired" in row[3]
    assert out["with child"] == out["alone"]


# -- the parser's recursion: a verdict that depends on the caller's stack -------------------
def _at_depth(frames: int, call: Any) -> Any:
    return call() if frames <= 0 else _at_depth(frames - 1, call)


def _padded(link: Path, original: str, depth: int) -> None:
    """``link`` (a DSSE envelope, still validly signed: ``original``) with an unsigned
    member nesting ``depth`` arrays: Envelope.from_dict reads only the members it knows."""
    text = json.dumps(json.loads(original))
    link.write_text(text[:-1] + ', "junk": ' + "[" * depth + "]" * depth + "}")


def test_a_link_nested_near_the_recursion_limit(copy: PublishedIndex) -> None:
    """Broke: json's parser recurses once per level and gives up at a depth that is the
    recursion limit less the caller's stack. A link padded (outside what is signed) to
    nest just that deep verified in a caller with a shorter stack and failed
    (RecursionError) in one with a longer: the child, the worker and a run alone each
    call from another depth, so the child's verdict, keyed on the same bytes, was not
    the worker's. Now in-toto verifies in a thread of its own: the same depth for every
    caller."""
    item = item_of(copy, "alpha")
    (zipped,) = early._pre_check(item.wheel)
    sha, intact = zipped["zip"]
    owner = owner_key(copy)
    link = next(layout_dir(copy, "alpha").glob("attest.*.link"))
    original, differ = link.read_text(), []
    for depth in [*range(sys.getrecursionlimit(), sys.getrecursionlimit() - 400, -7), 30]:
        _padded(link, original, depth)
        shallow = early._in_toto_pre_check(item, sha, intact, owner)
        deep = _at_depth(150, lambda: early._in_toto_pre_check(item, sha, intact, owner))
        assert shallow is not None and deep is not None
        assert shallow["key"] == deep["key"]
        if (shallow["pass"], shallow["message"]) != (deep["pass"], deep["message"]):
            differ.append((depth, shallow["message"], deep["message"]))
        if depth == 30:
            assert shallow["pass"] is True  # nesting a link may hold still verifies
    assert not differ, differ[:2]


# -- files changed between the child's read and the worker's (one run, several wheels) -----
def test_files_changed_after_the_child_read_them(copy: PublishedIndex,
                                                 tmp_path: Path) -> None:
    """Held: after the child answered, alpha gains a file named after its wheel (held
    differs), beta's build link is renamed away (read present, now absent), gamma's
    attest link becomes an envelope with two signatures under one keyid made of control
    characters and a lone surrogate (an error text echoing them: through the pipe it
    comes back as the run alone has it, escaped). Every row is the run alone's; the
    child's facts were of the good bytes."""
    alpha_extra = Path(str(copy.wheel("alpha")) + ".zzz")
    build = next(layout_dir(copy, "beta").glob("build.*.link"))
    attest = next(layout_dir(copy, "gamma").glob("attest.*.link"))
    envelope = json.loads(attest.read_text())
    odd = {"keyid": "\x1b]0;pwned\x07\r\ud800", "sig": envelope["signatures"][0]["sig"]}
    envelope["signatures"] = [odd, dict(odd)]
    bad = tmp_path / "bad.link"
    bad.write_text(json.dumps(envelope))
    between = f"""
    Path({str(alpha_extra)!r}).write_bytes(b"more")
    os.rename({str(build)!r}, {str(build)!r} + ".away")
    shutil.copyfile({str(bad)!r}, {str(attest)!r})
    """
    out = run_with_and_without_child(copy.settings, tmp_path, between=between)
    assert len(out["facts"]) == len(copy.records)
    assert all(passed for passed, _ in out["facts"].values())
    assert out["with child"] == out["alone"]
    assert _rows(out, "alpha")[0][2] == PASS  # (the inspection allows other files)
    assert _rows(out, "beta")[0][2] == FAIL
    (gamma,) = _rows(out, "gamma")
    assert gamma[2] == FAIL and "pwned" in gamma[3]
    assert all(c.isprintable() for c in gamma[3])  # escaped either way, never raw


def test_the_owner_key_replaced_after_the_child_read_it(copy: PublishedIndex,
                                                        tmp_path: Path) -> None:
    """Held: the owner key the run pins (keys/owner.pub.pem) replaced by another after the
    child keyed its verdicts with the first: no verdict matches, each wheel fails with
    the key the run holds."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from factory.attest.keys import OWNER_KEY

    other = tmp_path / "other.pub.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    pinned = copy.settings.public_keys_dir / OWNER_KEY
    between = f"shutil.copyfile({str(other)!r}, {str(pinned)!r})"
    out = run_with_and_without_child(copy.settings, tmp_path, between=between)
    assert all(passed for passed, _ in out["facts"].values())
    assert out["with child"] == out["alone"]
    assert {row[2] for row in out["alone"]} == {FAIL}


@pytest.mark.parametrize("expires", [5, [], {"a": 1}])
def test_an_expiry_of_the_wrong_shape_is_no_fact(expires: Any) -> None:
    """Held (new field): only a text or null is an expiry."""
    assert early._in_toto_fact({"key": "ab" * 32, "names": [], "pass": True,
                                "message": "m", "expires": expires}) is None


def test_a_verdict_is_kept_only_while_its_layout_is_unexpired() -> None:
    """Held (the fix's rule, as in-toto compares): None is timeless."""
    from factory.verify.intoto_inputs import still_valid

    assert still_valid(None) and still_valid("2999-01-01T00:00:00Z")
    assert not still_valid("2000-01-01T00:00:00Z") and not still_valid("not a date")
