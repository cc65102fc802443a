"""Work a whole-index run starts in a forked child before it imports the verifier.

`verify --all` spends most of a second parsing its command line and importing
Sigstore, pydantic and in-toto on one core before any artifact is checked. Before
all that it forks a child, which needs none of them, to use the other core
meanwhile: the `factory` program forks it before Typer is even imported
(``prestart``, from factory.cli), and the run takes it (``start``) when it verifies
the directory and URL the child reads; a library caller's run forks its own.

1. pre-checks, per published wheel, of checks that are functions of one file's
   bytes alone: first whether its SBOM sidecar is valid CycloneDX 1.6
   (factory.verify.sbom.schema_error, as the ``sbom`` check asks it), then
   whether the wheel's bytes are an intact zip (the in-toto layout's ``receive``
   inspection, factory.verify.intoto), and then the ``in-toto`` check's verdict on
   the wheel. Each answer is keyed by the sha256 of the exact bytes it was found
   for; a worker uses it only for bytes with that sha256 (the bytes it gathered as
   evidence), so the verdict is the one it would have computed. The in-toto
   verdict is keyed by everything it is a function of
   (factory.verify.intoto_inputs: the layout and link files' bytes, the owner key
   a run finds when none is named, the held files' digests, the wheel's name), and
   is not given when it is a function of more (a link or FIFO among its files, a
   sublayout, a custom inspection); in-toto's verifier is then never imported by a
   parent whose child answered every wheel (``Facts.in_toto_done``). It checks the
   layout's expiry when the child runs, a moment earlier in the same run. It
   stops when the parent is ready to fork its workers (``Early.facts``): what is
   not pre-checked by then, the workers check themselves, as they do without a
   child. The SBOM schema goes first: it needs
   jsonschema-rs and the CycloneDX schemas (about 0.05 s to load and build;
   jsonschema itself only for an SBOM the compiled validator does not find valid,
   factory.verify.sbom), which the parent then never loads when the child checked
   every SBOM (``Facts.sboms_done``); when it did not, the parent loads them
   before it forks, as it always did. An SBOM over _SBOM_LIMIT is left to the worker
   (parsed and validated whole, it would hold the child's memory and the parent).
2. the index checks (factory.verify.wholeindex.index_checks), collected at the
   end of the run (``Early.index_checks``).

The child answers on a pipe, one JSON line per fact. Nothing it says is a
verdict on its own: a missing, failed, garbled, runaway or late answer (the
parent reads a bounded amount and waits a bounded time) only means the run does
that work itself. It is started only from a process with no other thread (a
fork copies only the calling thread), killed and reaped if the run ends
without collecting it, and killed by the kernel if the run dies. It reads the
directory the index path resolved to when it started; the run uses its answers
only when it verifies that directory.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.verify.model import FAIL, PASS, SKIP, Check

if TYPE_CHECKING:
    from factory.config import Settings
    from factory.verify.targets import Item
    from factory.verify.view import IndexView

# What the child reads (the targets, the index view and its checks, the zip check) is
# imported in the child, after the fork: `verify --all` forks before it parses its command
# line (``prestart``), and the parent imports the half it needs while the child works.

# Wheels larger than this are not read whole into the child's memory (the worker checks).
_WHEEL_LIMIT = 64 << 20
# SBOMs larger than this are left to the worker (the factory's are under 1 MiB): parsed
# and validated whole, a 28 MiB SBOM of a million tiny components took the child 4.3 GB
# and 28 s, while the parent waited for it before forking its workers.
_SBOM_LIMIT = 4 << 20
# What the parent reads of the child's answers, at most: a line (an SBOM error's path and
# message, the index checks' rows) and all of them. A child that says more (a runaway
# loop) is not listened to further: the run does the rest itself.
_LINE_LIMIT = 1 << 20
_ANSWER_LIMIT = 64 << 20
# How long the parent waits for the child to say something (a wall-clock bound on a hung
# child, never met by one that works): for the wheel at hand when the parent is ready to
# fork its workers (4 MiB SBOMs at most: seconds), and for the index checks (it waits
# while its workers verify the artifacts; the checks hash every file of the index).
_FACTS_WAIT = 60.0
_INDEX_WAIT = 600.0
_PRE_DONE = "pre-checks done"


@dataclass(frozen=True)
class InTotoFact:
    """The ``in-toto`` check's verdict on one wheel, with what it is a function of:
    ``key`` (factory.verify.intoto_inputs.verdict_key) over the files ``names`` in
    the order they were read."""

    key: str
    names: tuple[str, ...]
    passed: bool
    message: str
    # The layout's expiry when the verdict depends on it being unexpired (still_valid).
    expires: str | None = None


@dataclass
class Facts:
    """What the child found, by the sha256 of the bytes it found it for."""

    zip_ok: dict[str, bool] = field(default_factory=dict)  # wheel sha256 -> intact zip
    # SBOM sidecar sha256 -> schema_error's answer for those bytes (None: valid).
    sbom_error: dict[str, str | None] = field(default_factory=dict)
    # wheel sha256 -> the in-toto verdict for it, under the key of all its inputs.
    in_toto: dict[str, InTotoFact] = field(default_factory=dict)
    # The child went through the SBOM (in-toto) of every artifact it listed: a hint for
    # the parent that the schema validator (in-toto) need not be loaded before the
    # workers fork.
    sboms_done: bool = False
    in_toto_done: bool = False


def zip_intact(data: bytes) -> bool:
    """Whether ``data`` is an intact zip (factory.verify.zipcheck.intact: members in
    disjoint ranges, bounded in all, every CRC checks), as factory.verify.intoto._zip_ok
    finds for a file holding these bytes (raising what it raises: a member that does not
    inflate raises zlib.error)."""
    from factory.verify import zipcheck

    return zipcheck.intact(BytesIO(data))


def _plain(path: Path, limit: int) -> bytes | None:
    from factory.verify.evidence import _plain_bytes  # regular files only, never a link

    try:
        if path.stat().st_size > limit:
            return None
    except OSError:
        return None
    return _plain_bytes(path)


def _zip_fact(wheel: Path) -> tuple[str, int, bool] | None:
    """The sha256 and size of the wheel's bytes, and whether they are an intact zip."""
    data = _plain(wheel, _WHEEL_LIMIT)
    if data is None:
        return None
    try:
        intact = zip_intact(data)
    except Exception:  # (zlib.error): the worker meets it too and reports it in its words
        return None
    return hashlib.sha256(data).hexdigest(), len(data), intact


def _pre_check(wheel: Path) -> list[dict[str, Any]]:
    """Whether the wheel's bytes are an intact zip."""
    fact = _zip_fact(wheel)
    return [] if fact is None else [{"zip": [fact[0], fact[2]]}]


def _zip_and_in_toto(item: Item, owner: dict[str, Any] | None) -> list[dict[str, Any]]:
    """_pre_check, then the in-toto check's verdict on the bytes it read (with ``owner``,
    the owner key the run would verify with by default)."""
    assert item.wheel is not None
    fact = _zip_fact(item.wheel)
    if fact is None:
        return []
    sha, size, intact = fact
    found: list[dict[str, Any]] = [{"zip": [sha, intact]}]
    if owner is not None:
        verdict = _in_toto_pre_check(item, sha, intact, owner, size)
        if verdict is not None:
            found.append({"intoto": [sha, verdict]})
    return found


def _in_toto_pre_check(item: Item, sha: str, intact: bool, owner: dict[str, Any],
                       size: int | None = None) -> dict[str, Any] | None:
    """The ``in-toto`` check's verdict on the wheel whose bytes have sha256 ``sha`` (as
    the worker would find it, from the evidence it gathers), keyed by everything it is a
    function of; None when it is a function of more than bytes (a link, a FIFO, a
    sublayout's directory) or needs the stock CLI: the worker checks those itself.
    ``size``: the bytes' size, when the caller read them (they are not read again: the
    verdict is about those bytes, keyed by their sha256; a worker that reads others has
    another key)."""
    from factory.errors import VerificationError
    from factory.verify import intoto
    from factory.verify.evidence import gather
    from factory.verify.intoto_inputs import LayoutFiles, verdict_key
    from factory.verify.view import sidecar

    try:
        evidence = gather(item, known=None if size is None else (sha, size))
    except OSError:
        return None
    if evidence.sha256 != sha:  # replaced since it was read: not the bytes checked above
        return None
    files = LayoutFiles(sidecar(evidence.base, "in-toto"))
    try:
        message = intoto.verify_in_process(files, evidence.wheel, owner, evidence.held,
                                           zip_ok=intact)
        passed = True
    except VerificationError as exc:
        message, passed = exc.message, False
    except Exception:  # NeedsStock (a custom inspection), anything else: the worker's
        return None
    if not files.plain or files.beyond:
        return None
    return {"key": verdict_key(files, owner, evidence.held, evidence.filename),
            "names": files.names(), "pass": passed, "message": message,
            "expires": files.expires}


def _owner_key(candidates: tuple[Path, ...]) -> dict[str, Any] | None:
    """The in-toto owner key a run verifies with when none is named (the first of
    ``candidates`` that is a file, as factory.verify.trust picks it), or None. A run
    that names another key, or finds another, keys its lookups with that one: this
    child's verdicts then match none."""
    from factory._internal.plainfile import NotPlain, read_plain
    from factory.attest.keys import in_toto_key

    for path in candidates:
        if path.is_file():
            try:
                pem = read_plain(path, 1 << 20, follow_links=True)
                return in_toto_key(pem) if pem is not None else None
            except (NotPlain, ValueError, TypeError):
                return None
    return None


def _sbom_pre_check(wheel: Path) -> list[dict[str, Any]]:
    """What the ``sbom`` check's schema validation answers for the SBOM beside ``wheel``
    (read as evidence is read, parsed as Evidence.parse parses it)."""
    from factory._internal.plainfile import NotPlain, read_plain
    from factory.verify.sbom import read_json, schema_error
    from factory.verify.view import sidecar

    try:  # as evidence reads it (a regular file, never through a link), bounded lower
        raw = read_plain(sidecar(wheel, "sbom"), _SBOM_LIMIT)
    except NotPlain:
        return []
    if raw is None:
        return []
    try:
        document, integral = read_json(raw)
        error = schema_error(document, integral=integral)
    except Exception:  # malformed JSON, say: the worker meets it too and reports it
        return []
    return [{"sbom": [hashlib.sha256(raw).hexdigest(), error]}]


def index_checks(index: IndexView) -> list[Check]:
    """factory.verify.wholeindex.index_checks, imported in the child (see above)."""
    from factory._internal.lazy import collector_paused

    with collector_paused():  # the page renderer's imports (Jinja, the index checker)
        import factory.index.check  # noqa: F401
        from factory.verify.wholeindex import index_checks as checks
    return checks(index)


def _child(root: Path, base_url: str | None, keys_dir: Path, stop: int, answer: int) -> None:
    from factory._internal.lazy import collector_paused

    with collector_paused():  # what the child reads with; the SBOM schema validators
        from factory.attest.keys import OWNER_KEY
        from factory.index.records import Layout
        from factory.verify import sbom
        from factory.verify.targets import resolve
        from factory.verify.view import IndexView

        sbom.warm_fast_path()

    index = IndexView(root, base_url)

    def say(record: dict[str, Any]) -> None:
        line = (json.dumps(record) + "\n").encode("utf-8")
        while line:
            line = line[os.write(answer, line):]

    def stopped() -> bool:  # the parent is ready (or gone)
        return _ready(stop, 0.0)

    try:
        items = resolve(index, None, True, ())
    except Exception:
        items = []
    wheels = [item for item in items
              if item.wheel is not None and item.published is not None and not item.problem]

    def each(check: Callable[[Item], list[dict[str, Any]]]) -> bool:
        """``check`` over every wheel; False when the parent stopped it first."""
        for item in wheels:
            if stopped():
                return False
            for record in check(item):
                say(record)
        return True

    # first: a missed SBOM costs the parent most
    sboms_done = each(lambda item: _sbom_pre_check(item.wheel))  # type: ignore[arg-type]
    in_toto_done = False
    if sboms_done:
        with collector_paused():
            owner = _owner_key((keys_dir / OWNER_KEY, Layout(root).trust / OWNER_KEY))
            from factory.verify import intoto  # noqa: F401
        in_toto_done = each(lambda item: _zip_and_in_toto(item, owner)) and owner is not None
    say({"done": _PRE_DONE, "sboms": sboms_done, "in_toto": in_toto_done})
    say({"index": [[c.name, c.status, c.message] for c in index_checks(index)]})


def _ready(fd: int, wait: float) -> bool:
    """Whether ``fd`` can be read (or is at its end) within ``wait`` seconds. poll, not
    select: select refuses a descriptor numbered past 1023, which a process holding many
    files (a server calling verify) gives a new pipe."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(wait * 1000))))


def _shaped(fact: Any, kind: Any) -> tuple[str, Any] | None:
    """(sha256, value) when ``fact`` is [a sha256 hex digest, a value of ``kind``], as the
    child says a fact; else None."""
    if (isinstance(fact, list) and len(fact) == 2 and isinstance(fact[0], str)
            and len(fact[0]) == 64 and isinstance(fact[1], kind)):
        return fact[0], fact[1]
    return None


def _in_toto_fact(said: dict[str, Any]) -> InTotoFact | None:
    """The InTotoFact the child said, when said in the shape it writes."""
    key, names = said.get("key"), said.get("names")
    passed, message, expires = said.get("pass"), said.get("message"), said.get("expires")
    if (isinstance(key, str) and len(key) == 64 and isinstance(names, list)
            and all(isinstance(name, str) for name in names)
            and isinstance(passed, bool) and isinstance(message, str)
            and isinstance(expires, str | None)):
        return InTotoFact(key, tuple(names), passed, message, expires)
    return None


class Early:
    """The child of one run: ``facts()`` once the parent is ready to fork its workers,
    ``index_checks()`` at the end, ``close()`` always."""

    def __init__(self, root: Path, pid: int, stop: int, answer: int,
                 base_url: str | None = None) -> None:
        self.root = root  # the index directory the child reads
        self.base_url = base_url  # the URL its pages are checked against (None: inferred)
        self._pid, self._stop, self._answer = pid, stop, answer
        self._facts: Facts | None = None
        self._index: list[Check] | None = None
        self._finished = False
        self._read = bytearray()  # what was read of the answers and not yet taken
        self._budget = _ANSWER_LIMIT  # bytes of answers still read (_lines)
        self._listening = True  # False once the child is not listened to (_lines)
        self._heard_out = False  # the child's answers were read to their end

    def _lines(self, wait: float) -> Iterator[Any]:
        """The child's answers, one per line, until it ends. Not listened to further (its
        answers are not read, and the run does that work itself) when it garbles one (a
        line cut by its death, not JSON), says more than a child says (_LINE_LIMIT,
        _ANSWER_LIMIT), or says nothing for ``wait`` seconds (a hung child: the run
        goes on without it)."""
        deadline = time.monotonic() + wait
        while self._listening and self._answer >= 0:
            newline = self._read.find(b"\n", 0, _LINE_LIMIT + 1)
            if newline >= 0:
                line = bytes(self._read[:newline])
                del self._read[:newline + 1]
                try:
                    yield json.loads(line)
                except ValueError:
                    self._stop_listening()
                continue
            if len(self._read) > _LINE_LIMIT or self._budget <= 0:
                self._stop_listening()  # a line, or the answers, over the bound
                continue
            try:
                ready = _ready(self._answer, deadline - time.monotonic())
                chunk = os.read(self._answer, min(1 << 16, self._budget)) if ready else None
            except OSError:
                chunk = b""
            if chunk is None:  # silent for too long
                self._stop_listening()
            elif not chunk:  # the end (a cut last line is not an answer)
                self._listening, self._heard_out = False, not self._read
            else:
                self._budget -= len(chunk)
                self._read += chunk

    def _stop_listening(self) -> None:
        """Not listened to further: killed now (a runaway or hung child takes no more of
        the machine while the workers run), reaped by index_checks or close."""
        self._listening = False
        with contextlib.suppress(ProcessLookupError):  # (a zombie until reaped: never reused)
            os.kill(self._pid, signal.SIGKILL)

    def facts(self) -> Facts:
        """Stop the pre-checks and collect them (waits for the wheel at hand, at most
        _FACTS_WAIT seconds)."""
        if self._facts is not None:
            return self._facts
        facts = self._facts = Facts()
        if self._stop >= 0:
            os.close(self._stop)  # readable at the child's end: stop
            self._stop = -1
        for record in self._lines(_FACTS_WAIT):
            if not isinstance(record, dict):
                break
            if record.get("done") == _PRE_DONE:
                facts.sboms_done = record.get("sboms") is True
                facts.in_toto_done = record.get("in_toto") is True
                break
            # Only a fact in the shape the child writes is taken (a sha256 and a boolean,
            # or a sha256 and an error text or null); anything else is not a fact.
            if (zipped := _shaped(record.get("zip"), bool)) is not None:
                facts.zip_ok[zipped[0]] = zipped[1]
            if (sbom := _shaped(record.get("sbom"), str | None)) is not None:
                facts.sbom_error[sbom[0]] = sbom[1]
            if ((verdict := _shaped(record.get("intoto"), dict)) is not None
                    and (fact := _in_toto_fact(verdict[1])) is not None):
                facts.in_toto[verdict[0]] = fact
        return facts

    def index_checks(self) -> list[Check] | None:
        """The child's index checks (waits for them, at most _INDEX_WAIT seconds), or None
        when it did not give them: the caller then checks the index itself."""
        if self._finished:
            return self._index
        self.facts()
        for record in self._lines(_INDEX_WAIT):
            if isinstance(record, dict) and "index" in record:
                rows = record["index"]
                # Rows as the child writes them (three texts, a known status), or none.
                self._index = [Check(*row) for row in rows] if isinstance(rows, list) and all(
                    isinstance(row, list) and len(row) == 3
                    and all(isinstance(text, str) for text in row)
                    and row[1] in (PASS, FAIL, SKIP) for row in rows) else None
        status = self._reap(kill=not self._heard_out)  # (a child not listened to: killed)
        if status != 0:
            self._index = None
        return self._index

    def _reap(self, kill: bool) -> int:
        self._finished = True
        if self._answer >= 0:
            os.close(self._answer)
            self._answer = -1
        if self._stop >= 0:
            os.close(self._stop)
            self._stop = -1
        try:
            if kill:
                os.kill(self._pid, signal.SIGKILL)
            return os.waitpid(self._pid, 0)[1]
        except (ProcessLookupError, ChildProcessError):
            return -1

    def close(self) -> None:
        """Stop and reap the child if the run did not collect it (a run that ended early)."""
        if not self._finished:
            self._reap(kill=True)


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when the run that forked it dies (PR_SET_PDEATHSIG;
    a run killed outright runs no cleanup), and leave if it is already gone."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe still stops it
        pass
    if os.getppid() != parent:
        os._exit(1)


# A child started before the command line was parsed (``prestart``), until a run takes it.
_prestarted: Early | None = None


def prestart(settings: Settings) -> None:
    """Start the child for the settings' index now: `factory verify --all` calls this
    before Typer parses its command line (about 0.2 s of parsing and imports on one
    core, which the child spends on its pre-checks instead). The run's ``start`` takes
    it when it verifies the directory this child reads with the same URL, and stops it
    otherwise. The caller stops it with ``drop_prestarted`` when no run took it (a
    usage error, say; factory.cli.main does when it returns), and it is stopped at exit.
    A child started earlier and not taken is stopped, not kept: its index checks
    describe the index as it was then (a caller's second main() after a usage error)."""
    global _prestarted
    drop_prestarted()
    _prestarted = start(settings, None)
    if _prestarted is not None:
        atexit.unregister(drop_prestarted)  # once, however many times main() is called
        atexit.register(drop_prestarted)


def drop_prestarted() -> None:
    """Stop and reap the child ``prestart`` started if no run took it."""
    global _prestarted
    if _prestarted is not None:
        _prestarted.close()
        _prestarted = None


def _where(settings: Settings, index_dir: Path | None) -> tuple[Path, str | None] | None:
    """(the directory, its URL) as factory.verify.wholeindex.open_index finds them, without
    its imports: the directory the path names now, resolved (the child reads it and
    nothing else, and the run uses its answers only if it verifies that same directory: a
    link flipped between the two would give one tree's index checks for another's
    artifacts); None when no index is there (the run reports it)."""
    try:
        root = (index_dir or settings.index_dir).resolve()
        same = root == settings.index_dir.resolve()
        if not (root / "records").is_dir():  # (IndexView.exists)
            return None
    except (OSError, RuntimeError):
        return None
    return root, settings.index_url if same else None


def start(settings: Settings, index_dir: Path | None) -> Early | None:
    """Fork the child for the index at ``index_dir`` (the settings' when None), or take
    the one ``prestart`` forked for that same directory; None when there is no index
    here (the run reports it), when processes cannot be forked, or when another thread
    runs."""
    global _prestarted
    where = _where(settings, index_dir)
    taken, _prestarted = _prestarted, None
    if taken is not None:
        # Its pages were checked against its URL: the same directory with another URL
        # (other settings) is another verdict on the pages.
        if where is not None and (taken.root, taken.base_url) == where:
            return taken
        taken.close()  # started for another directory or URL: not this run's
    if where is None or not hasattr(os, "fork") or threading.active_count() > 1:
        return None
    parent = os.getpid()
    stop_read, stop_write = os.pipe()
    answer_read, answer_write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for fd in (stop_read, stop_write, answer_read, answer_write):
            os.close(fd)
        return None
    if pid == 0:  # the child: answer, then leave without the parent's exit handlers
        code = 1
        try:
            _die_with(parent)
            os.close(stop_write)
            os.close(answer_read)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _child(*where, settings.public_keys_dir, stop_read, answer_write)
            code = 0
        finally:
            os._exit(code)
    os.close(stop_read)
    os.close(answer_write)
    return Early(where[0], pid, stop_write, answer_read, where[1])
