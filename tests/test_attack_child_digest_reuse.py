"""Attack pass on the early child's reuse of its zip read (factory verify --all), by someone
who did not write the change.

The change: the child reads each wheel once (early._zip_fact: sha256, size, intact zip)
and gathers its evidence with ``gather(item, known=(sha, size))``, so the in-toto verdict
and ``held[wheel]`` are about the bytes the zip check read, where it used to hash the
wheel again and give no verdict when the two reads differed. Invariant: each wheel's
``in-toto`` row with the child is exactly the row a fresh single-process run (no child,
workers=1) gives for the files the worker reads; the child changes only speed.

Each run below is one fresh interpreter (tests/intoto_fixtures.py) whose hooks act in
the child at an exact moment (right after its zip read of a wheel, or right after it
gathered the wheel's evidence) and, in ``between``, after the child answered and
before the workers read. A log written by the hooks shows each attack happened.

Case                                                   | Result
-------------------------------------------------------|--------------------------------
child: wheel rewritten in place after the zip read,    | held: the verdict is keyed on the
  same size, still an intact zip, other bytes (kept)   | bytes read; the worker's differ
child: wheel replaced by one of another size (kept)    | held
child: wheel replaced by a link to other bytes (kept)  | held
child: wheel made a FIFO after the zip read (kept)     | held (no open, no hang; the
                                                       | worker has no evidence)
between child and worker: wheel rewritten in place     | held
  (same size, intact zip); replaced, one byte longer   |
ABA: each of the above swapped back before the worker  | held: the child's verdicts are
  (a link to the same bytes left in place)             | taken; in-toto never imported
hard links: one wheel a hard link to another's bytes;  | held (one fact per sha256: the
  one made a hard link in the child after its read     | second wheel's overwrites the
                                                       | first's; speed only)
held sidecars: a file named after the wheel added      | held: each is in the key; the
  after the zip read (removed before the worker); a    | worker whose held files differ
  held sidecar changed after the gather (kept); the    | verifies itself
  .sigstore.json removed after the read (bare wheel:   |
  base = item.published.path, the same path in --all)  |
bare wheel (no .sigstore.json) and an empty wheel      | held (known=(sha, 0): a size 0
  (known=(sha, 0)) before the run                      | is still "known")
in process: gather(known=...) opens no wheel (a FIFO); | held
  a verdict on bytes since replaced is keyed by their  |
  sha256; for bytes put back, child == worker          |
  (several byte variants, same-size and not)           |
worker: wheel replaced between the worker's gather and | BROKE (before this change too):
  its in-toto check (no child fact alone)              | alone, the inspection re-read
                                                       | the wheel (intoto._zip_ok) and
                                                       | failed; with the child, the
                                                       | zip fact of the held bytes
                                                       | passed. Fixed: gather keeps the
                                                       | bytes it hashed (WheelBytes);
                                                       | the inspection reads those
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import textwrap
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

from factory.verify import early
from factory.verify.evidence import gather, sha256_and_size
from factory.verify.intoto_inputs import LayoutFiles, verdict_key
from factory.verify.model import FAIL, PASS, SKIP
from factory.verify.view import sidecar
from tests.intoto_fixtures import (  # noqa: F401  (two fixtures)
    copy_fixture,
    item_of,
    owner_key,
    published_index,
    run_with_and_without_child,
)
from tests.pipeline_fixtures import PublishedIndex

NAMES = ("alpha", "beta", "gamma")


# -- helpers ---------------------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _intact(data: bytes) -> bool:
    from factory.verify import zipcheck

    return zipcheck.intact(io.BytesIO(data))


def _same_size_other_bytes(data: bytes) -> bytes:
    """``data`` (a wheel) with one byte changed where it is still an intact zip (the time
    in a member's local header: zipfile reads the central directory's)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        member = archive.infolist()[-1]
    at = member.header_offset + 10  # the local header's last-modified time
    changed = bytearray(data)
    changed[at] ^= 0x01
    assert len(changed) == len(data) and _intact(bytes(changed)) and bytes(changed) != data
    return bytes(changed)


def _not_a_zip(data: bytes) -> bytes:
    """``data`` with its first local header's signature broken: the same size, no zip."""
    changed = bytearray(data)
    changed[0] ^= 0xFF
    assert not _intact(bytes(changed))
    return bytes(changed)


class Attack:
    """Code the child runs right after its zip read of a wheel (``after_zip``) or right
    after it gathered a wheel's evidence (``after_gather``), and code the parent runs
    once the child answered (``between``); each action is logged."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path / "attack"
        self.tmp.mkdir()
        self.log = self.tmp / "log"
        self.after_zip: dict[str, list[str]] = {}
        self.after_gather: dict[str, list[str]] = {}
        self.between: list[str] = []
        self._n = 0

    def _spare(self, data: bytes | None = None, source: Path | None = None) -> Path:
        self._n += 1
        spare = self.tmp / f"spare{self._n}"
        if data is not None:
            spare.write_bytes(data)
        elif source is not None:
            shutil.copyfile(source, spare)
        return spare

    def _logged(self, what: str) -> str:
        return f"open({str(self.log)!r}, 'a').write({what!r} + '\\n')"

    # actions, as code
    def replace(self, path: Path, data: bytes, what: str) -> str:
        """``path`` replaced (a new inode) by a file holding ``data``."""
        spare, moved = self._spare(data), self.tmp / f"moving{self._n}"
        return (f"shutil.copyfile({str(spare)!r}, {str(moved)!r}); "
                f"os.replace({str(moved)!r}, {str(path)!r}); {self._logged(what)}")

    def overwrite(self, path: Path, data: bytes, what: str) -> str:
        """``path``'s own bytes rewritten (the same inode; ``data`` of the same size)."""
        spare = self._spare(data)
        return (f"open({str(path)!r}, 'r+b').write(open({str(spare)!r}, 'rb').read()); "
                f"{self._logged(what)}")

    def fifo(self, path: Path, what: str) -> str:
        moved = self.tmp / f"fifo{self._n}"
        self._n += 1
        return (f"os.mkfifo({str(moved)!r}); os.replace({str(moved)!r}, {str(path)!r}); "
                f"{self._logged(what)}")

    def symlink(self, path: Path, data: bytes, what: str) -> str:
        """``path`` made a symbolic link to a file elsewhere holding ``data``."""
        spare, moved = self._spare(data), self.tmp / f"link{self._n}"
        return (f"os.symlink({str(spare)!r}, {str(moved)!r}); "
                f"os.replace({str(moved)!r}, {str(path)!r}); {self._logged(what)}")

    def hardlink(self, path: Path, target: Path, what: str) -> str:
        moved = self.tmp / f"hard{self._n}"
        self._n += 1
        return (f"os.link({str(target)!r}, {str(moved)!r}); "
                f"os.replace({str(moved)!r}, {str(path)!r}); {self._logged(what)}")

    def remove(self, path: Path, what: str) -> str:
        return f"os.unlink({str(path)!r}); {self._logged(what)}"

    def prelude(self) -> str:
        return textwrap.dedent(f"""
        AFTER_ZIP, AFTER_GATHER = {self.after_zip!r}, {self.after_gather!r}
        read_zip = child._zip_fact
        def _zip_fact(wheel):
            fact = read_zip(wheel)
            if CHILD():
                for code in AFTER_ZIP.pop(wheel.name, ()):
                    exec(code)
            return fact
        child._zip_fact = _zip_fact
        from factory.verify import evidence as _evidence
        gathered = _evidence.gather
        def _gather(item, known=None):
            found = gathered(item, known)
            if CHILD():
                for code in AFTER_GATHER.pop(item.wheel.name, ()):
                    exec(code)
            return found
        _evidence.gather = _gather
        """)

    def run(self, copy: PublishedIndex, tmp_path: Path) -> dict[str, Any]:
        out = run_with_and_without_child(copy.settings, tmp_path, self.prelude(),
                                         "\n".join(self.between))
        out["log"] = self.log.read_text().splitlines() if self.log.exists() else []
        return out


def _row(out: dict[str, Any], name: str, which: str = "alone") -> list[Any]:
    (row,) = [row for row in out[which] if row[0].startswith(name)]
    return row


def _passed_on_the_bytes_read(out: dict[str, Any], good: dict[str, bytes]) -> None:
    """The child's verdicts are on the bytes it read, under their sha256, all passing;
    each row with the child is the row alone."""
    assert set(out["facts"]) == {_sha(data) for data in good.values()}
    assert all(passed for passed, _ in out["facts"].values())
    assert out["with child"] == out["alone"]


def _originals(copy: PublishedIndex) -> dict[str, bytes]:
    return {name: copy.wheel(name).read_bytes() for name in NAMES}


# -- the wheel replaced in the child, after its zip read, and left so ----------------------
def test_a_wheel_replaced_after_the_childs_zip_read_and_left(copy: PublishedIndex,
                                                             tmp_path: Path) -> None:
    """alpha rewritten in place with other bytes of the same size (still an intact zip),
    beta replaced by a file of another size, gamma by a link to another file: the child's
    verdicts are now about the bytes it read (it used to give none), keyed by their
    sha256; every worker reads other bytes, gets another key and verifies itself."""
    good = _originals(copy)
    attack = Attack(tmp_path)
    attack.after_zip = {
        copy.wheel("alpha").name: [attack.overwrite(
            copy.wheel("alpha"), _same_size_other_bytes(good["alpha"]), "alpha same size")],
        copy.wheel("beta").name: [attack.replace(
            copy.wheel("beta"), good["beta"] + b"\0" * 7, "beta longer")],
        copy.wheel("gamma").name: [attack.symlink(
            copy.wheel("gamma"), _not_a_zip(good["gamma"]), "gamma link")],
    }
    out = attack.run(copy, tmp_path)
    assert out["log"] == ["alpha same size", "beta longer", "gamma link"]
    _passed_on_the_bytes_read(out, good)
    assert [_row(out, name)[2] for name in NAMES] == [FAIL, FAIL, FAIL]
    assert "not an intact zip" in _row(out, "gamma")[3]


def test_a_wheel_made_a_fifo_in_the_child_and_others_changed_after_it(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """alpha made a FIFO right after the child's zip read, left so: the child's gather
    opens no wheel (no hang) and gives its verdict on the bytes read; the worker finds no
    regular file, so no evidence and no in-toto verdict, with the child or without. Once
    the child answered (it read beta and gamma whole and unchanged), beta is rewritten in
    place (same size, an intact zip) and gamma replaced by a file one byte longer: the
    workers' keys are not the child's."""
    good = _originals(copy)
    attack = Attack(tmp_path)
    alpha, beta, gamma = (copy.wheel(name) for name in NAMES)
    attack.after_zip = {alpha.name: [attack.fifo(alpha, "alpha fifo")]}
    attack.between = [attack.overwrite(beta, _same_size_other_bytes(good["beta"]), "beta"),
                      attack.replace(gamma, good["gamma"] + b"\0", "gamma")]
    out = attack.run(copy, tmp_path)
    assert out["log"] == ["alpha fifo", "beta", "gamma"]
    _passed_on_the_bytes_read(out, good)
    assert [_row(out, name)[2] for name in NAMES] == [SKIP, FAIL, FAIL]


def test_wheels_swapped_back_before_the_worker_reads_them(copy: PublishedIndex,
                                                          tmp_path: Path) -> None:
    """ABA: alpha rewritten in place (same size), beta made a FIFO, gamma replaced by a
    longer file right after the child read each, and each put back before the workers
    read: the verdicts on the bytes read are the workers' (the same keys), taken. beta is
    then left a link to a copy of its own bytes: followed by the worker, the same
    sha256 and key."""
    good = _originals(copy)
    attack = Attack(tmp_path)
    alpha, beta, gamma = (copy.wheel(name) for name in NAMES)
    attack.after_zip = {
        alpha.name: [attack.overwrite(alpha, _same_size_other_bytes(good["alpha"]), "a1")],
        beta.name: [attack.fifo(beta, "b1")],
        gamma.name: [attack.replace(gamma, good["gamma"] + b"PK", "g1")],
    }
    attack.between = [attack.overwrite(alpha, good["alpha"], "a2"),
                      attack.symlink(beta, good["beta"], "b2"),
                      attack.replace(gamma, good["gamma"], "g2")]
    out = attack.run(copy, tmp_path)
    assert out["log"] == ["a1", "b1", "g1", "a2", "b2", "g2"]
    assert set(out["facts"]) == {_sha(data) for data in good.values()}
    assert out["with child"] == out["alone"]
    assert {row[2] for row in out["alone"]} == {PASS}
    assert out["in_toto imported"] is False  # every verdict was the child's


# -- hard links ----------------------------------------------------------------------------
def test_wheels_that_are_hard_links_to_another(copy: PublishedIndex, tmp_path: Path) -> None:
    """beta's wheel is a hard link to alpha's (before the run); gamma's is made one to
    alpha's right after the child's zip read of gamma. One fact per sha256: beta's
    verdict (alpha's bytes, beta's name and sidecars) replaces alpha's, so alpha's
    worker finds a key not its own and verifies itself; gamma's worker reads alpha's
    bytes under gamma's name: another key. Rows as alone."""
    good = _originals(copy)
    alpha, beta, gamma = (copy.wheel(name) for name in NAMES)
    beta.unlink()
    os.link(alpha, beta)
    attack = Attack(tmp_path)
    attack.after_zip = {gamma.name: [attack.hardlink(gamma, alpha, "gamma hard link")]}
    out = attack.run(copy, tmp_path)
    assert out["log"] == ["gamma hard link"]
    assert set(out["facts"]) == {_sha(good["alpha"]), _sha(good["gamma"])}
    assert out["with child"] == out["alone"]
    assert [_row(out, name)[2] for name in NAMES] == [PASS, FAIL, FAIL]


# -- the held files change around the child's read ------------------------------------------
def test_held_sidecars_changed_around_the_childs_read(copy: PublishedIndex,
                                                      tmp_path: Path) -> None:
    """alpha gains a file named after its wheel right after the child's zip read (held by
    the child's gather), removed before the workers read; beta's .metadata (held)
    changes right after the child gathered, and stays so; gamma's .sigstore.json is
    removed right after the child's zip read (a bare wheel: gather takes base =
    item.published.path, in --all the same path) and put back. Held digests are in the
    key: each worker whose held files differ verifies itself."""
    alpha, beta, gamma = (copy.wheel(name) for name in NAMES)
    extra = Path(f"{alpha}.zzz")
    metadata = sidecar(beta, "metadata")
    signature = sidecar(gamma, "sigstore")
    kept = signature.read_bytes()
    attack = Attack(tmp_path)
    attack.after_zip = {
        alpha.name: [attack.replace(extra, b"planted", "alpha extra")],
        gamma.name: [attack.remove(signature, "gamma bare")],
    }
    attack.after_gather = {
        beta.name: [attack.replace(metadata, metadata.read_bytes() + b"X-Extra: 1\n",
                                   "beta metadata")],
    }
    attack.between = [attack.remove(extra, "alpha extra gone"),
                      attack.replace(signature, kept, "gamma signed again")]
    out = attack.run(copy, tmp_path)
    assert out["log"] == ["alpha extra", "beta metadata", "gamma bare", "alpha extra gone",
                          "gamma signed again"]
    assert len(out["facts"]) == len(NAMES)
    assert out["with child"] == out["alone"]
    assert _row(out, "alpha")[2] == PASS and _row(out, "gamma")[2] == PASS


def test_a_bare_wheel_and_an_empty_wheel(copy: PublishedIndex, tmp_path: Path) -> None:
    """alpha without its .sigstore.json (gather's bare-wheel branch) and gamma's wheel
    emptied (the child's known=(sha, 0): a size of 0 must not read as "not known"),
    before the run: rows as alone."""
    sidecar(copy.wheel("alpha"), "sigstore").unlink()
    copy.wheel("gamma").write_bytes(b"")
    out = run_with_and_without_child(copy.settings, tmp_path)
    assert _sha(b"") in out["facts"]
    assert out["with child"] == out["alone"]
    assert _row(out, "gamma")[2] == FAIL and "not an intact zip" in _row(out, "gamma")[3]


# -- in this process: the child's pre-check and the worker's view of the same files --------
def _child_says(item: Any, owner: dict[str, Any],
                after_read: Any = None) -> tuple[str, dict[str, Any] | None]:
    """What _zip_and_in_toto says for ``item`` (its zip sha256 and in-toto verdict), with
    ``after_read`` called right after the zip read."""
    read = early._zip_fact

    def hooked(wheel: Path) -> tuple[str, int, bool] | None:
        fact = read(wheel)
        if after_read is not None:
            after_read()
        return fact

    early._zip_fact = hooked  # type: ignore[assignment]
    try:
        said = early._zip_and_in_toto(item, owner)
    finally:
        early._zip_fact = read  # type: ignore[assignment]
    sha: str = said[0]["zip"][0]
    verdict = said[1]["intoto"] if len(said) > 1 else None
    if verdict is not None:
        assert verdict[0] == sha
        return sha, verdict[1]
    return sha, None


def _worker_sees(item: Any, owner: dict[str, Any],
                 names: list[str]) -> tuple[str, str, tuple[bool, str]]:
    """(sha256, key, fresh verdict) the worker computes alone for ``item`` now."""
    from factory.errors import VerificationError
    from factory.verify import intoto

    evidence = gather(item)
    files = LayoutFiles(sidecar(evidence.base, "in-toto"))
    assert files.reread(names)
    key = verdict_key(files, owner, evidence.held, evidence.filename)
    fresh = LayoutFiles(sidecar(evidence.base, "in-toto"))
    try:
        verdict = (True, intoto.verify_in_process(fresh, evidence.wheel, owner,
                                                  evidence.held))
    except VerificationError as exc:
        verdict = (False, exc.message)
    return evidence.sha256, key, verdict


def test_gather_with_known_bytes_opens_no_wheel(copy: PublishedIndex) -> None:
    """The child's gather, given the sha256 and size it read, never opens the wheel: a
    FIFO there neither blocks it nor changes what it holds; the worker's gather refuses
    it (OSError)."""
    item = item_of(copy, "alpha")
    sha, size = sha256_and_size(item.wheel)
    item.wheel.unlink()
    os.mkfifo(item.wheel)
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(gather(item, known=(sha, size))),
                              daemon=True)
    thread.start()
    thread.join(10)
    assert done, "gather(known=...) blocked on the wheel"
    assert done[0].held[item.wheel.name] == sha == done[0].sha256 and done[0].size == size
    with pytest.raises(OSError):
        gather(item)


def test_a_verdict_on_bytes_since_replaced_is_keyed_by_them(copy: PublishedIndex) -> None:
    """The child's verdict on bytes replaced right after its zip read is given (it was
    not before the change) under their sha256 and a key over them; the worker's sha256
    and key for the bytes now there differ."""
    item, owner = item_of(copy, "beta"), owner_key(copy)
    good = item.wheel.read_bytes()
    other = _same_size_other_bytes(good)
    sha, said = _child_says(item, owner, lambda: item.wheel.write_bytes(other))
    assert sha == _sha(good) and said is not None and said["pass"] is True
    now_sha, now_key, now_verdict = _worker_sees(item, owner, said["names"])
    assert now_sha == _sha(other) != sha and now_key != said["key"]
    assert now_verdict[0] is False


@pytest.mark.parametrize("variant", ["same size intact", "same size no zip", "longer",
                                     "shorter", "empty", "another wheel"])
def test_for_the_bytes_put_back_the_child_and_the_worker_agree(
        copy: PublishedIndex, variant: str) -> None:
    """For bytes ``B`` of each kind: the wheel holds B at the child's zip read and other
    bytes (the original's) when it gathers; B is put back before the worker reads. The
    worker's key is the child's and the child's verdict is the one the worker computes
    alone (in-toto's inspection reading the file itself)."""
    item, owner = item_of(copy, "alpha"), owner_key(copy)
    good = item.wheel.read_bytes()
    data = {"same size intact": _same_size_other_bytes(good),
            "same size no zip": _not_a_zip(good), "longer": good + b"\0" * 100,
            "shorter": good[:-10], "empty": b"",
            "another wheel": copy.wheel("gamma").read_bytes()}[variant]
    item.wheel.write_bytes(data)
    sha, said = _child_says(item, owner, lambda: item.wheel.write_bytes(good))
    assert sha == _sha(data) and said is not None
    item.wheel.write_bytes(data)
    now_sha, now_key, now_verdict = _worker_sees(item, owner, said["names"])
    assert now_sha == sha and now_key == said["key"]
    assert (said["pass"], said["message"]) == now_verdict


# -- the worker: its own two reads of the wheel (broke before; fixed) ----------------------
def test_a_wheel_replaced_between_the_workers_gather_and_its_in_toto_check(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """In both runs the worker's gather of alpha reads the published bytes, and alpha
    is replaced by bytes of the same size that are no zip right after: with the child
    the row is the verdict on the bytes gathered (PASS), alone it is a verdict on bytes
    read later (FAIL)."""
    wheel = copy.wheel("alpha")
    good, bad = tmp_path / "good.whl", tmp_path / "bad.whl"
    good.write_bytes(wheel.read_bytes())
    bad.write_bytes(_not_a_zip(wheel.read_bytes()))
    prelude = f"""
    from factory.verify import checks
    made = checks.gather
    def gather(item, known=None):
        if CHILD() or item.wheel.name != {wheel.name!r}:
            return made(item, known)
        shutil.copyfile({str(good)!r}, item.wheel)  # (each run gathers the good bytes)
        found = made(item, known)
        shutil.copyfile({str(bad)!r}, item.wheel)
        return found
    checks.gather = gather
    """
    out = run_with_and_without_child(copy.settings, tmp_path, prelude)
    assert _row(out, "alpha", "with child")[2] == PASS
    assert out["with child"] == out["alone"]
