"""Attack pass on verify's early child answering SBOM schema checks (7eac3d4, 31870a9,
24f0876, e9e07d2), by someone who did not write them.

Invariant: each wheel's verdict is what a fresh, single-process check of the bytes the
worker read gives; what the child says (or fails to say) changes only speed; no
traceback; memory and work bounded. No network, no containers.

Class              | Case                                                   | Before
-------------------|--------------------------------------------------------|----------------
answer channel     | a fact of the wrong shape (6 shapes)                   | BROKE: 3 raised
                   |                                                        | (traceback), 1
                   |                                                        | failed an intact
                   |                                                        | wheel's in-toto,
                   |                                                        | 1 kept a junk key
                   | index rows of the wrong shape or an unknown status     | BROKE: 'abc' was
                   |                                                        | a row; 'maybe'
                   |                                                        | hid a failure
                   | a line over the bound                                  | BROKE: read whole
                   |                                                        | and taken
                   | a flood (a child that never stops saying facts)        | BROKE: read for
                   |                                                        | ever (a hang)
                   | a child hung in a pre-check, or in the index checks    | BROKE: the run
                   |                                                        | waited for ever
                   | pipes numbered past 1023 (a caller holding many files) | BROKE: the child
                   |                                                        | died (select)
                   | killed mid-answer (a cut line)                         | held
                   | facts said after 'done' (late)                         | held
SBOM files (child) | a FIFO, a link, a directory as the SBOM                | held
                   | an SBOM over the child's bound (4 MiB)                 | BROKE: parsed
                   |                                                        | whole (28 MiB:
                   |                                                        | 4.3 GB, 28 s)
with a real child  | the SBOM swapped after the child read it, both ways    | held
vs. alone          | two wheels with the same SBOM bytes                    | held
                   | a FIFO, then an oversized SBOM, in the index           | held (oversized:
                   |                                                        | now no fact)
in-process caller  | a caller's frozen objects (gc.freeze) survive a run    | BROKE: unfrozen
                   | the CLI run in-process: the caller's exit finalizes    | BROKE: its cycle
                   | its own garbage                                        | with __del__ not
                   |                                                        | finalized
batching           | 10,000 artifacts: each verified once, in order         | held
                   | a worker dying mid-run: none lost, none passed twice   | held

Fixes: factory/verify/early.py (facts and index rows taken only in the shape the
child writes them; answers read in bounded lines and bounded in all, waited for a
bounded time (a wall clock: the tests set it to 0 s, they time nothing); a child not
heard out is killed and the run does the rest; SBOMs over 4 MiB left to the worker),
factory/verify/run.py (the workers' freeze skipped when the caller froze objects of
its own), factory/cli/verify.py (the at-exit freeze only in the `factory` program).

Left (by design): a fact in the right shape about the right bytes is trusted, as a memo
is: the child is this program, forked; a lie there is a bug in it, not an attacker's
input (an attacker controls the index tree, and every answer is keyed by the sha256 of
the exact bytes the worker read).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from factory.verify import early
from factory.verify.model import FAIL, PASS
from tests.pipeline_fixtures import (  # noqa: F401  (published_index: a fixture)
    PublishedIndex,
    clone,
    published_index,
)

SHA = "ab" * 32
OTHER = "cd" * 32


@pytest.fixture
def copy(published_index: PublishedIndex, tmp_path: Path) -> PublishedIndex:  # noqa: F811
    return clone(published_index, tmp_path / "copy")


# -- the answer channel: an Early reading what a (simulated) child writes -------------------
def _talking(tmp_path: Path, *, lines: list[bytes] | None = None,
             command: list[str] | None = None) -> tuple[early.Early, subprocess.Popen[bytes]]:
    """An Early whose child is a process that writes ``lines`` (then exits) or runs
    ``command`` on its answer pipe."""
    if command is None:
        script = tmp_path / "answers"
        script.write_bytes(b"".join(lines or []))
        command = ["cat", str(script)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    answer = os.dup(process.stdout.fileno())
    process.stdout.close()
    _, stop = os.pipe()
    return early.Early(tmp_path, process.pid, stop, answer), process


def _done(process: subprocess.Popen[bytes]) -> None:
    process.returncode = 0  # reaped by Early (os.waitpid), not by Popen


def _line(record: Any) -> bytes:
    return (json.dumps(record) + "\n").encode()


_INDEX = {"index": [["records", PASS, "ok"], ["pages", FAIL, "changed"]]}


@pytest.mark.parametrize("fact", [
    {"sbom": 5},
    {"zip": [SHA, True, 3]},
    {"sbom": [SHA]},
    {"zip": [OTHER, "yes"]},  # was taken as 'not intact': in-toto failed a good wheel
    {"sbom": [[SHA], None]},
    {"sbom": [OTHER, 7]},
], ids=["number", "three", "one", "not-a-bool", "list-key", "not-a-text"])
def test_a_fact_of_the_wrong_shape_is_no_fact(tmp_path: Path, fact: dict[str, Any]) -> None:
    """Broke: facts() unpacked each answer as it came (``sha, ok = record["zip"]``): a
    malformed one raised TypeError/ValueError out of verify --all (a traceback), and a
    zip fact whose value was not a boolean became 'not intact' (in-toto then failed an
    intact wheel). Only facts in the child's own shape are taken now; the rest are not
    facts (the worker checks), and the answers around them still count."""
    lines = [_line({"zip": [SHA, True]}), _line(fact), _line({"sbom": [SHA, None]}),
             _line({"done": early._PRE_DONE, "sboms": True}), _line(_INDEX)]
    child, process = _talking(tmp_path, lines=lines)
    facts = child.facts()
    assert facts.zip_ok == {SHA: True} and facts.sbom_error == {SHA: None}
    assert facts.sboms_done
    assert child.index_checks() is not None
    _done(process)


@pytest.mark.parametrize("rows", [
    ["abc"],  # a text of three characters unpacked as a row
    [["pages", "maybe", "hidden"]],
    [["pages", FAIL]],
    "pages",
], ids=["a-text", "unknown-status", "two", "not-a-list"])
def test_index_rows_of_the_wrong_shape_are_checked_here(tmp_path: Path, rows: Any) -> None:
    """Broke: rows were taken as any three things (``str(n), str(s), str(m)``): 'abc' became
    the check 'a' with status 'b', and a status that is neither pass, fail nor skip was
    reported as such. Now the child's rows are used only in its shape; otherwise None
    (the run checks the index itself)."""
    lines = [_line({"done": early._PRE_DONE, "sboms": True}), _line({"index": rows})]
    child, process = _talking(tmp_path, lines=lines)
    child.facts()
    assert child.index_checks() is None
    _done(process)


def test_a_line_over_the_bound_ends_listening(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: a line was read whole (readline(), no bound): a child that wrote one without
    end held the parent's memory. A line is read up to the bound; over it, the child is
    not listened to further (killed), and its index checks are not used."""
    monkeypatch.setattr(early, "_LINE_LIMIT", 1024, raising=False)
    lines = [_line({"zip": [SHA, True]}), b'{"sbom": ["' + b"a" * 5000 + b'", null]}\n',
             _line({"zip": [OTHER, True]}), _line({"done": early._PRE_DONE}), _line(_INDEX)]
    child, process = _talking(tmp_path, lines=lines)
    assert child.facts().zip_ok == {SHA: True}
    assert child.index_checks() is None
    _done(process)


def test_a_child_that_never_stops_talking_is_cut_off(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: facts() read answers until the child said 'done': one that said facts for
    ever (here `yes`) held the run for ever, its memory growing. The answers are read up
    to a bound in all; past it the child is killed and reaped, the facts read so far
    (each about its own bytes) kept, and the index is checked by the run."""
    monkeypatch.setattr(early, "_ANSWER_LIMIT", 1 << 16, raising=False)
    child, process = _talking(tmp_path, command=["yes", json.dumps({"zip": [SHA, True]})])
    assert child.facts().zip_ok == {SHA: True}
    assert child.index_checks() is None
    assert child._finished  # reaped: os.waitpid answered
    _done(process)


def test_a_child_killed_mid_answer_leaves_what_it_said_whole(tmp_path: Path) -> None:
    """Held: a cut last line (the child killed while writing) is not JSON and not taken;
    the whole lines before it are, the index is checked by the run, no traceback."""
    cut = _line({"sbom": [OTHER, None]})[:-9]
    child, process = _talking(tmp_path, lines=[_line({"zip": [SHA, True]}), cut])
    facts = child.facts()
    assert facts.zip_ok == {SHA: True} and facts.sbom_error == {} and not facts.sboms_done
    assert child.index_checks() is None
    _done(process)


def test_facts_said_late_are_not_facts(tmp_path: Path) -> None:
    """Held: what the child says after 'done' (while the workers run) is not read as a
    fact (the workers were forked with the facts of before); its index rows still are."""
    lines = [_line({"done": early._PRE_DONE, "sboms": False}), _line({"zip": [SHA, False]}),
             _line(_INDEX)]
    child, process = _talking(tmp_path, lines=lines)
    assert child.facts().zip_ok == {}
    assert [c.status for c in child.index_checks() or []] == [PASS, FAIL]
    assert child.facts().zip_ok == {}
    _done(process)


# -- the SBOM files the child reads ---------------------------------------------------------
def _wheel_with_sbom(tmp_path: Path) -> tuple[Path, Path]:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not read here")
    return wheel, wheel.with_name(wheel.name + ".cdx.json")


@pytest.mark.parametrize("kind", ["fifo", "link", "directory"])
def test_an_sbom_that_is_not_a_regular_file_gets_no_answer(tmp_path: Path, kind: str) -> None:
    """Held: a FIFO (no writer: it would block a reader), a link to a valid SBOM, a
    directory: the child says nothing of them (the worker reads none of them either and
    fails the sbom check as missing)."""
    wheel, sbom = _wheel_with_sbom(tmp_path)
    if kind == "fifo":
        os.mkfifo(sbom)
    elif kind == "link":
        target = tmp_path / "elsewhere.json"
        target.write_text('{"bomFormat": "CycloneDX", "specVersion": "1.6"}')
        sbom.symlink_to(target)
    else:
        sbom.mkdir()
    assert early._sbom_pre_check(wheel) == []


def test_an_sbom_over_the_childs_bound_is_left_to_the_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: the child read and validated any SBOM up to the evidence bound (256 MiB)
    whole: one of 28 MiB (a million tiny components) took it 4.3 GB and 28 s, while the
    parent waited for that wheel before forking its workers, and a 256 MiB one could have
    the kernel's OOM killer choose among the run's processes. The child now reads at most
    4 MiB (the factory's SBOMs are under 1 MiB) and says nothing of a larger one: it is
    not parsed (counted), and the worker validates it as it always did."""
    from factory.verify import sbom as sbom_module

    wheel, sbom = _wheel_with_sbom(tmp_path)
    parsed: list[int] = []
    real = sbom_module.read_json

    def counting(data: bytes) -> tuple[Any, bool]:
        parsed.append(len(data))
        return real(data)

    monkeypatch.setattr(sbom_module, "read_json", counting)
    small = b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1}'
    sbom.write_bytes(small + b" " * (early._SBOM_LIMIT - len(small)))
    (answer,) = early._sbom_pre_check(wheel)
    assert answer["sbom"][0] == hashlib.sha256(sbom.read_bytes()).hexdigest()
    with sbom.open("ab") as handle:
        handle.write(b" ")  # one byte over
    assert early._sbom_pre_check(wheel) == []
    assert parsed == [early._SBOM_LIMIT]


# -- a real child against the same run without one ------------------------------------------
_COMPARE = """
import json, os, pickle, shutil, sys, time
from pathlib import Path
from factory.verify import early as child, verify
settings = pickle.loads(open(sys.argv[1], "rb").read())
mode, swaps = sys.argv[2], json.loads(sys.argv[3])
rows = lambda report: [[a.label, c.name, c.status, c.message] for a in report.artifacts
                       for c in a.checks] + [[c.name, c.status, c.message] for c in report.index
                                             if mode != "swap"]  # (a tree changed mid-run)
out = {}
if mode == "many-fds":  # a caller holding many files: the run's pipes are numbered past 1023
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
real_start = child.start
if mode == "swap":  # the child reads the SBOMs, then they change before the workers read
    started = real_start(settings, None)
    time.sleep(3)  # the parent's imports, as it were
    out["facts"] = started.facts().sbom_error
    for path, replacement in swaps:
        shutil.copyfile(replacement, path)
    child.start = lambda *a, **k: started
elif mode.startswith("hang"):  # a child that hangs; the run waits 0 s for it
    def forever(*args):
        time.sleep(3600)
        return []
    if mode == "hang-facts":
        child._sbom_pre_check, child._FACTS_WAIT = forever, 0.0
    else:
        child.index_checks, child._INDEX_WAIT = forever, 0.0
    pids = []
    def start(*args, **kwargs):
        started = real_start(*args, **kwargs)
        pids.append(started._pid)
        return started
    child.start = start
else:
    facts = []  # what the child of the run found
    def start(*args, **kwargs):
        started = real_start(*args, **kwargs)
        time.sleep(3)  # the child gets through every SBOM
        facts.append(started.facts().sbom_error)
        return started
    child.start = start
with_child = verify(settings, everything=True, workers=2)
if mode in ("run", "many-fds"):
    out["facts"] = facts[0]
if mode.startswith("hang"):
    try:
        os.waitpid(pids[0], 0)
        out["reaped"] = False
    except ChildProcessError:
        out["reaped"] = True
child.start = lambda *a, **k: None
alone = verify(settings, everything=True, workers=1)
out["with child"], out["alone"] = rows(with_child), rows(alone)
print(json.dumps(out))
"""


def _compare(copy: PublishedIndex, tmp_path: Path, mode: str = "run",
             swaps: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """verify --all with a real early child (workers 2) and alone (one process), in a fresh
    interpreter (no thread running, so the child is forked)."""
    state = tmp_path / "settings.pickle"
    state.write_bytes(pickle.dumps(copy.settings))
    done = subprocess.run([sys.executable, "-c", _COMPARE, str(state), mode,
                           json.dumps(swaps or [])], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["with child"] == out["alone"]
    return out


def _sbom_of(copy: PublishedIndex, name: str) -> Path:
    return copy.wheel(name).with_name(copy.wheel(name).name + ".cdx.json")


def _sbom_rows(out: dict[str, Any], project: str) -> list[list[str]]:
    return [row for row in out["alone"] if row[0].startswith(project) and row[1] == "sbom"]


def test_an_sbom_swapped_after_the_child_read_it_is_validated_afresh(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """Held: the child found alpha's SBOM valid and gamma's (made invalid) not; then
    alpha's was made invalid and gamma's put back before the workers read them. Each
    worker validates the bytes it read (the child's answers are for other bytes): alpha
    fails on the schema, gamma passes, as the run finds them alone."""
    alpha, gamma = _sbom_of(copy, "alpha"), _sbom_of(copy, "gamma")
    good_gamma = tmp_path / "gamma.cdx.json"
    good_gamma.write_bytes(gamma.read_bytes())
    document = json.loads(alpha.read_text())
    document["metadata"]["component"]["unexpected"] = True
    bad_alpha = tmp_path / "alpha.cdx.json"
    bad_alpha.write_text(json.dumps(document))
    document = json.loads(gamma.read_text())
    document["metadata"]["component"]["unexpected"] = True
    gamma.write_text(json.dumps(document))
    out = _compare(copy, tmp_path, "swap", [(str(alpha), str(bad_alpha)),
                                            (str(gamma), str(good_gamma))])
    errors = list(out["facts"].values())
    assert len(errors) == 3 and errors.count(None) == 2  # it saw the other bytes
    assert _sbom_rows(out, "alpha")[0][2] == FAIL
    assert "not valid CycloneDX" in _sbom_rows(out, "alpha")[0][3]
    assert _sbom_rows(out, "gamma")[0][2] == PASS


def test_two_wheels_with_the_same_sbom_bytes_and_odd_files(copy: PublishedIndex,
                                                          tmp_path: Path) -> None:
    """Held: beta's SBOM replaced by alpha's bytes (one answer, used for both: each worker
    still binds it to its own wheel, and beta fails the binding), gamma's SBOM a FIFO;
    then gamma's an SBOM over the child's bound. Every row is the run's alone."""
    alpha, beta, gamma = (_sbom_of(copy, n) for n in ("alpha", "beta", "gamma"))
    beta.write_bytes(alpha.read_bytes())
    gamma.unlink()
    os.mkfifo(gamma)
    out = _compare(copy, tmp_path)
    assert list(out["facts"]) == [hashlib.sha256(alpha.read_bytes()).hexdigest()]
    assert _sbom_rows(out, "alpha")[0][2] == PASS
    assert _sbom_rows(out, "beta")[0][2] == FAIL and "not this wheel" in \
        _sbom_rows(out, "beta")[0][3]
    assert _sbom_rows(out, "gamma")[0][2] == FAIL
    gamma.unlink()
    gamma.write_bytes(b"[" + b" " * early._SBOM_LIMIT + b"]")
    out = _compare(copy, tmp_path)
    assert len(out["facts"]) == 1  # alpha's bytes (beta's too); none for gamma's
    assert _sbom_rows(out, "gamma")[0][2] == FAIL


@pytest.mark.parametrize("where", ["facts", "index"])
def test_a_child_that_hangs_changes_only_speed(copy: PublishedIndex, tmp_path: Path,
                                               where: str) -> None:
    """Broke: the run waited for the child without end, for the wheel at hand when it was
    ready to fork its workers and for the index checks after: a child hung in either (a
    bug, simulated) hung verify --all. The run now waits a bounded time (a minute for the
    wheel at hand, ten for the index checks while its workers run; here 0 s), then goes
    on without the child (killed and reaped): the same rows as the run alone."""
    out = _compare(copy, tmp_path, f"hang-{where}")
    assert out["reaped"] is True
    assert [row[2] for row in out["alone"] if len(row) == 4] == [PASS] * (
        len([row for row in out["alone"] if len(row) == 4]))


def test_a_caller_holding_many_files_still_gets_the_childs_answers(
        copy: PublishedIndex, tmp_path: Path) -> None:
    """Broke: the child asked select() whether the parent had said stop; select refuses a
    descriptor numbered past 1023, which every new pipe is in a process holding 1,100
    files (a server calling verify): the child died on its first wheel and the run did
    all its work itself (this pass's first bounded reader, select() too, raised out of
    the run). Both ends now poll: the child answers for all three SBOMs, and the rows
    are the run's alone."""
    out = _compare(copy, tmp_path, "many-fds")
    assert len(out["facts"]) == 3 and set(out["facts"].values()) == {None}


# -- an in-process caller --------------------------------------------------------------------
_CALLER = """
import atexit, gc, json, pickle, sys
from factory.verify import run, verify
settings = pickle.loads(open(sys.argv[1], "rb").read())
run._PROCESSES_FROM = 1
class Kept:  # a pre-forking server's objects, frozen so that its workers leave them be
    pass
kept = [Kept() for _ in range(100)]
gc.freeze()
frozen = gc.get_freeze_count()
def thawed():  # the caller's objects the collector walks again (gc.get_objects: not frozen)
    walked = {id(o) for o in gc.get_objects()}
    return sum(id(k) in walked for k in kept)
report = verify(settings, everything=True, workers=2)
out = {"frozen before": frozen, "thawed": thawed(), "failed": report.summary["failed"]}
registered = []
real_register = atexit.register
atexit.register = lambda f, *a, **k: (registered.append(getattr(f, "__name__", "")),
                                      real_register(f, *a, **k))[1]
from typer.testing import CliRunner
from factory.cli import _app, app
_app._State.settings = settings
runner = CliRunner()
codes = [runner.invoke(app, ["verify", "--all", "--json", "--no-advisories"]).exit_code
         for _ in range(2)]
out["codes"], out["registered"] = codes, registered.count("freeze")
out["thawed after the CLI"] = thawed()
print(json.dumps(out))
class Temporary:  # the caller's garbage at its exit: a cycle whose finalizer cleans up
    def __del__(self):
        open(sys.argv[2], "w").close()
cycle = Temporary()
cycle.self = cycle
del cycle
"""


def test_a_callers_frozen_objects_stay_frozen(copy: PublishedIndex, tmp_path: Path) -> None:
    """Broke: verify --all with workers froze the collector's objects before forking them
    and unfroze everything after: a caller that had frozen objects of its own (a
    pre-forking server calls gc.freeze() before forking its own workers) had them given
    back to the collector (all 100 of the test's were walked again after the run). The
    run now leaves the freeze alone when the caller froze objects. Broke too: the CLI
    command run in-process (twice here) registered its at-exit gc.freeze in the caller's
    process, whose exit then skipped the collection that finalizes the caller's own
    garbage (a cycle whose __del__ cleans up never ran). The freeze is registered only
    when the process is the `factory` program (test_verify_index checks it is there)."""
    state, finalized = tmp_path / "settings.pickle", tmp_path / "finalized"
    state.write_bytes(pickle.dumps(copy.settings))
    done = subprocess.run([sys.executable, "-c", _CALLER, str(state), str(finalized)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["failed"] == 0 and out["codes"] == [0, 0]
    assert out["frozen before"] > 0 and out["thawed"] == 0
    assert out["registered"] == 0 and out["thawed after the CLI"] == 0
    assert finalized.exists()


# -- batching ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Item:
    """What the run knows of an artifact before verifying it (here: a number)."""

    number: int
    label: str = "demo"
    filename: str = "demo-1.0-py3-none-any.whl"
    project: str = "demo"
    version: str = "1.0"


class _Counting:
    """An auditor that answers each artifact with who verified it."""

    facts = early.Facts(sboms_done=True)

    def prepare(self) -> None:
        pass

    def verify(self, item: _Item) -> tuple[int, int]:
        if item.number == _DIES_AT and os.getpid() != _PARENT:
            os._exit(9)  # as the OOM killer would end it
        return item.number, os.getpid()


_DIES_AT = -1
_PARENT = os.getpid()


def _all(items: int, workers: int = 2) -> list[Any]:
    from factory.verify import run

    return list(run._verify_all(_Counting(), [_Item(n) for n in range(items)],  # type: ignore[arg-type]
                                workers))


def test_ten_thousand_artifacts_are_each_verified_once_in_order() -> None:
    """Held: in batches of at most 4, 10,000 artifacts each get one answer, in order, from
    the two workers (both used, never this process)."""
    results = _all(10_000)
    assert [item for item, _ in results] == list(range(10_000))
    pids = {pid for _, pid in results}
    assert len(pids) == 2 and _PARENT not in pids


def test_a_worker_dying_mid_run_loses_none_and_passes_none_twice(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: a worker killed at artifact 5,000: the answers before it are kept, once each,
    in order; every artifact from the first unanswered one fails ('a verifier process
    died'), never passes; 10,000 results in all."""
    from factory.verify.model import ArtifactReport

    monkeypatch.setattr(sys.modules[__name__], "_DIES_AT", 5_000)
    results = _all(10_000)
    assert len(results) == 10_000
    answered = [r for r in results if isinstance(r, tuple)]
    assert [item for item, _ in answered] == list(range(len(answered)))
    assert len(answered) <= 5_000
    failed = results[len(answered):]
    assert all(isinstance(r, ArtifactReport) and not r.ok
               and "process died" in r.checks[0].message for r in failed)
