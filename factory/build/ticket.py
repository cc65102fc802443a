"""A build ticket: everything a build worker needs to build one node, named by digest.

The publisher (the rebuild flow, the one process that holds keys) turns a node's
build inputs into a ticket: the component and version, the digests of the lock
and of the recipe, the sdist, the wheels of the build environment (built by
earlier nodes), the front-end kit's sdists, and the pinned builder image ID.
Every file goes into the content-addressed artifact store; the ticket itself
is canonical JSON in the store, and its sha256 names the build
(``builds/<ticket sha256>`` points at the result of a build that succeeded).

A worker (``build_ticket``) trusts nothing it is handed: it downloads each
input re-verifying its digest against the ticket, checks that its own checkout
of the project has the very lock and recipe the ticket names, refuses to build
with an image other than the pinned one, and builds with the ordinary build
code in its own state directory. It never sees a key: it only puts the wheel,
its record and its log in the store.

The publisher (``collect``) fetches the result, re-verifies every digest,
checks that the record names the ticket's sdist, image and environment, and
places wheel and record where a local build would have; then it attests, signs
and publishes them as usual.

    ticket, blob = make_ticket(settings, store, inputs)       # publisher
    result = build_ticket(worker_settings, store, blob)       # worker (flows/build.py)
    record = collect(settings, store, ticket, result)         # publisher
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from factory._internal.atomic import sha256_file
from factory._internal.digests import sha256_of
from factory.artifact_store import ArtifactStore, Blob
from factory.build import docker as container
from factory.build import interpreters
from factory.build import job as builder
from factory.build import patchelf as patchelf_tool
from factory.build import repair as repairing
from factory.build.env import KIT_TOOLS
from factory.build.image import held_image
from factory.build.interpreters import Interpreter
from factory.build.job import BuildInputs, MissingRequirementsError, Requires
from factory.build.record import BuildRecord, InstalledTool, SystemPackage
from factory.config import Settings
from factory.errors import BuildError, FactoryError, IntegrityError, one_line, printable
from factory.lock import load_lock
from factory.upstream.cache import cache_path

VERSION = 1
MAX_TICKET = 1 << 20  # bytes of one ticket or result read back from the store
MAX_RECORD = 8 << 20  # bytes of one build record
MAX_INPUTS = 512  # files of one kind a ticket may name
MAX_TEXT = 1000  # characters of one string field
_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}")  # a plain file or project name
OUTCOMES = ("built", "missing", "failed")
# bytes of a worker's log the publisher takes: what a local build keeps (head and tail of
# the container's output) and the notes it adds
MAX_LOG = container.LOG_HEAD + container.LOG_TAIL + (64 << 10)
_INVOCATION = re.compile(r"[0-9a-f]{32}")  # a build's uuid4 hex, in its log's name


class TicketRefused(BuildError):
    """A worker will not build this ticket (its inputs, its checkout or its image
    differ from what the ticket pins), or a publisher will not take its result."""

    default_hint = "every worker must run the project's checkout and the pinned builder image"


@dataclass(frozen=True)
class Input:
    """One file a build consumes: its name and its bytes' identity."""

    filename: str
    sha256: str
    size: int

    def blob(self) -> Blob:
        return Blob(self.sha256, self.size)

    @classmethod
    def of(cls, path: Path, blob: Blob) -> Input:
        return cls(path.name, blob.sha256, blob.size)


@dataclass(frozen=True)
class BuildTicket:
    component: str
    version: str
    lock_sha256: str  # the project's recipes.lock, exactly
    recipe_name: str
    recipe_digest: str  # the lock's digest of the component's recipe
    sdist: Input
    tools: tuple[Input, ...]  # the build environment's wheels, exactly
    kit: tuple[Input, ...]  # the front-end kit's sdists
    image_tag: str
    image_id: str  # the pinned builder image
    system_packages: tuple[str, ...] = ()
    patches: tuple[tuple[str, str], ...] = ()  # (file name, sha256) of the recipe's patches
    repair_tools: tuple[Input, ...] = ()
    repair_note: str = ""
    upstream_wheels: tuple[str, ...] = ()
    patchelf_sha256: str | None = None
    # A factory-built CPython the build runs (its tag and tree digest); None: the image's
    # own python3. Left out of the bytes when None, so a 3.11 ticket is what it was.
    interpreter_tag: str | None = None
    interpreter_tree_sha256: str | None = None
    # Another interpreter's build of a native component (factory.build.variants): it must
    # give a native wheel of its own interpreter. False (left out of the bytes): a first
    # build, which may give a pure or abi3 wheel whichever interpreter runs it.
    variant: bool = False

    @property
    def what(self) -> str:
        if self.interpreter_tag:
            return f"{self.component} {self.version} [{self.interpreter_tag}]"
        return f"{self.component} {self.version}"

    def to_bytes(self) -> bytes:
        fields = asdict(self)
        if self.interpreter_tag is None:
            del fields["interpreter_tag"], fields["interpreter_tree_sha256"]
        if not self.variant:
            del fields["variant"]
        return canonical({"format": VERSION, **fields})

    @classmethod
    def from_bytes(cls, data: bytes) -> BuildTicket:
        """A ticket read back from the store: every field checked (shape, bounds)."""
        raw = _object(data, "ticket")
        try:
            if raw.pop("format") != VERSION:
                raise ValueError("another ticket format")
            ticket = cls(
                component=_name(raw.pop("component")), version=_name(raw.pop("version")),
                lock_sha256=_sha(raw.pop("lock_sha256")),
                recipe_name=_name(raw.pop("recipe_name")),
                recipe_digest=_text(raw.pop("recipe_digest")),
                sdist=_input(raw.pop("sdist")),
                tools=_inputs(raw.pop("tools")), kit=_inputs(raw.pop("kit")),
                image_tag=_text(raw.pop("image_tag")), image_id=_image(raw.pop("image_id")),
                system_packages=tuple(_text(p) for p in _list(raw.pop("system_packages"))),
                patches=tuple((_name(p[0]), _sha(p[1])) for p in _list(raw.pop("patches"))),
                repair_tools=_inputs(raw.pop("repair_tools")),
                repair_note=_text(raw.pop("repair_note")),
                upstream_wheels=tuple(_name(n) for n in _list(raw.pop("upstream_wheels"))),
                patchelf_sha256=None if (p := raw.pop("patchelf_sha256")) is None else _sha(p),
                interpreter_tag=None if (t := raw.pop("interpreter_tag", None)) is None
                else _tag(t),
                interpreter_tree_sha256=None if (d := raw.pop("interpreter_tree_sha256", None))
                is None else _sha(d),
                variant=_true(raw.pop("variant", False)))
            if (ticket.interpreter_tag is None) != (ticket.interpreter_tree_sha256 is None):
                raise ValueError("an interpreter tag without its tree digest, or the reverse")
            if ticket.variant and ticket.interpreter_tag is None:
                raise ValueError("a variant without the interpreter it is for")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise TicketRefused(f"a build ticket is malformed: {one_line(str(exc), 200)}",
                                "only the rebuild flow makes tickets; do not hand-write one"
                                ) from None
        if raw:
            raise TicketRefused(f"a build ticket has unknown fields: {sorted(raw)[:5]}",
                                "worker and publisher must run the same factory version")
        return ticket


@dataclass(frozen=True)
class BuildResult:
    """What a worker reports for one ticket (canonical JSON in the store)."""

    ticket: str  # the ticket's sha256
    outcome: str  # built | missing | failed
    worker: str
    wheel: Input | None = None
    record: Blob | None = None
    log: Input | None = None
    requires: dict[str, Any] = field(default_factory=dict)  # outcome "missing"
    message: str = ""  # outcome "failed": the worker's one line (and its hint)
    hint: str = ""

    def to_bytes(self) -> bytes:
        return canonical(asdict(self))

    @classmethod
    def from_bytes(cls, data: bytes) -> BuildResult:
        raw = _object(data, "build result")
        try:
            result = cls(
                ticket=_sha(raw["ticket"]), outcome=_choice(raw["outcome"]),
                worker=_text(raw["worker"]),
                wheel=None if raw["wheel"] is None else _input(raw["wheel"]),
                record=None if raw["record"] is None else _blob(raw["record"]),
                log=None if raw["log"] is None else _input(raw["log"]),
                requires=_requires(raw["requires"]),
                message=_text(raw["message"]), hint=_text(raw["hint"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TicketRefused(f"a build result is malformed: {one_line(str(exc), 200)}",
                                "a worker of another factory version, or the store was "
                                "written by something else") from None
        if result.outcome == "built" and None in (result.wheel, result.record, result.log):
            raise TicketRefused(f"a build result of ticket {result.ticket[:12]} says built "
                                "but names no wheel, record or log")
        return result


def canonical(value: object) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8 (one value, one digest)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def ref_name(ticket: Blob) -> str:
    """The store's name for the result of the build a ticket describes."""
    return f"builds/{ticket.sha256}"


def worker_name() -> str:
    """How a worker names itself in its results: FACTORY_WORKER_NAME, else host:pid."""
    return one_line(os.environ.get("FACTORY_WORKER_NAME") or
                    f"{socket.gethostname()}:{os.getpid()}", 120)


# -- publisher side ---------------------------------------------------------------------------
def make_ticket(settings: Settings, store: ArtifactStore,
                inputs: BuildInputs) -> tuple[BuildTicket, Blob]:
    """Put every input of ``inputs`` in the store; the ticket and its blob."""
    lock = load_lock(settings)
    locked = lock.get(inputs.name, inputs.version)
    if locked is None:
        raise BuildError(f"{inputs.name} {inputs.version} is not in recipes.lock",
                         "run `factory lock`")

    def put(path: Path) -> Input:
        return Input.of(path, store.put(path))

    kit = []
    for part in inputs.kit.parts:
        kit.append(put(cache_path(settings, part.sha256, part.filename)))
    ticket = BuildTicket(
        component=canonicalize_name(inputs.name), version=inputs.version,
        lock_sha256=sha256_file(settings.lock_path), recipe_name=inputs.recipe_name,
        recipe_digest=inputs.recipe_digest, sdist=put(inputs.sdist),
        tools=tuple(put(w) for w in inputs.tools), kit=tuple(kit),
        image_tag=inputs.image.tag, image_id=inputs.image.id,
        system_packages=tuple(inputs.system_packages),
        patches=tuple((p["path"], p["sha256"]) for p in inputs.patches),
        repair_tools=tuple(put(w) for w in inputs.repair_tools),
        repair_note=inputs.repair_note, upstream_wheels=tuple(inputs.upstream_wheels),
        patchelf_sha256=inputs.patchelf.sha256 if inputs.patchelf else None,
        interpreter_tag=inputs.interpreter.tag if inputs.interpreter else None,
        interpreter_tree_sha256=inputs.interpreter.tree_sha256 if inputs.interpreter else None,
        variant=inputs.variant)
    if ticket.sdist.sha256 != locked.sdist.sha256:
        raise IntegrityError(f"{ticket.what}: the sdist to hand out is not the locked one")
    return ticket, store.put_bytes(ticket.to_bytes())


Submit = Callable[[BuildTicket, Blob], BuildResult]


def remote_build(settings: Settings, store: ArtifactStore, inputs: BuildInputs,
                 submit: Submit) -> BuildRecord:
    """Build ``inputs`` on a worker (``submit`` runs the ticket and returns its result):
    the record, placed here; MissingRequirementsError or BuildError as a local build.

    A ticket whose result the store already holds (a build that succeeded before this
    publisher stopped, say) is collected, not built again."""
    ticket, blob = make_ticket(settings, store, inputs)
    done = store.ref(ref_name(blob))
    if done is not None:
        result = BuildResult.from_bytes(store.read_bytes(_bounded(done, MAX_TICKET)))
    else:
        result = submit(ticket, blob)
    if result.ticket != blob.sha256:
        raise TicketRefused(f"{ticket.what}: the worker's result is about another ticket "
                            f"({result.ticket[:12]}, not {blob.sha256[:12]})")
    if result.outcome == "missing":
        r = result.requires
        raise MissingRequirementsError(inputs, Requires(
            static=r["static"], dynamic=r["dynamic"], missing=r["missing"],
            backend=r["backend"], backend_path=r["backend_path"]))
    if result.outcome == "failed":
        # The worker's words: one line each, so no line of theirs reads as the publisher's.
        raise BuildError(f"{one_line(result.message, 2000)} (on worker "
                         f"{one_line(result.worker, 120)})",
                         one_line(result.hint, 600) if result.hint else None)
    return collect(settings, store, ticket, result)


def collect(settings: Settings, store: ArtifactStore, ticket: BuildTicket,
            result: BuildResult) -> BuildRecord:
    """The worker's wheel and record, re-verified against the ticket and placed in the
    wheels directory (record first, then the wheel), the log in the logs directory."""
    assert result.wheel and result.record and result.log  # BuildResult.from_bytes checks
    worker = one_line(result.worker, 120)
    if result.wheel.size > container.max_output(settings) or result.log.size > MAX_LOG:
        raise TicketRefused(f"{ticket.what}: the worker's wheel ({result.wheel.size} bytes) "
                            f"or log ({result.log.size} bytes) is over its limit "
                            f"({container.max_output(settings)}, {MAX_LOG})",
                            "the result is not used; look at that worker")
    data = store.read_bytes(_bounded(result.record, MAX_RECORD))
    try:
        record = BuildRecord.from_dict(json.loads(data.decode("utf-8")))
        _check_record_shape(record)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise TicketRefused(f"{ticket.what}: the worker's build record is malformed "
                            f"({one_line(str(exc), 200)})") from None
    locked = load_lock(settings).get(ticket.component, ticket.version)
    source = None if locked is None else replace(locked.sdist, name=locked.key,
                                                 upload_time=None)
    tools = sorted([*(t.sha256 for t in ticket.tools), *(k.sha256 for k in ticket.kit)])
    wrong = [what for what, ok in (
        ("component", canonicalize_name(record.component) == ticket.component),
        ("version", record.version == ticket.version),
        ("sdist", record.source.sha256 == ticket.sdist.sha256
         and replace(record.source, upload_time=None) == source),
        ("recipe", record.recipe_digest == ticket.recipe_digest
         and record.recipe_name == ticket.recipe_name),
        ("builder image", record.builder_image_id == ticket.image_id
         and record.builder_image == ticket.image_tag),
        ("interpreter", _recorded_tree(record) == ticket.interpreter_tree_sha256
         and _recorded_tag(record) == (ticket.interpreter_tag or interpreters.SYSTEM_TAG)),
        ("wheel tags", _tags_fit(record.wheel_filename, ticket)),
        ("build environment", repairing.build_env_shas(record) == tools),
        ("wheel", record.wheel_sha256 == result.wheel.sha256
         and record.wheel_filename == result.wheel.filename),
        ("log", record.log_sha256 == result.log.sha256
         and record.log_filename == result.log.filename
         and bool(_INVOCATION.fullmatch(record.invocation_id)) and record.log_filename
         == f"{ticket.component}-{ticket.version}-build-{record.invocation_id}.log"),
        ("wheel name", _names(record.wheel_filename, ticket)),
        ("patches", [(p.get("path"), p.get("sha256")) for p in record.patches]
         == list(ticket.patches)),
    ) if not ok]
    if wrong:
        raise TicketRefused(f"{ticket.what}: the record from worker {worker} does not "
                            f"match its ticket ({', '.join(wrong)})",
                            "the result is not used; look at that worker")
    if not builder.WHEEL_NAME.fullmatch(record.wheel_filename) or not _NAME.fullmatch(
            record.log_filename):
        raise TicketRefused(f"{ticket.what}: the worker's record names unsafe file names")
    work = Path(tempfile.mkdtemp(prefix=".collect-", dir=_dir(settings.builds_dir)))
    try:
        wheel = store.get(result.wheel.blob(), work / record.wheel_filename)
        store.get(result.log.blob(), _dir(settings.logs_dir) / record.log_filename)
        builder.place(settings, wheel, record)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return record


# -- worker side ------------------------------------------------------------------------------
def build_ticket(settings: Settings, store: ArtifactStore, ticket_blob: Blob,
                 run_ref: str | None = None) -> BuildResult:
    """Build the ticket in ``settings``' state directory; the result, in the store.

    Refusals (TicketRefused, a store object that fails its digest) raise: nothing is
    built. A build that fails is a result (``failed``), as is one whose backend asked
    for requirements its environment lacks (``missing``). The result goes in the store
    under ``run_ref`` when given, and under ``builds/<ticket>`` when built and no result
    stands there yet: a run that was given up for lost (its worker stopped answering)
    and finished anyway does not replace the result the publisher collected."""
    ticket = BuildTicket.from_bytes(store.read_bytes(_bounded(ticket_blob, MAX_TICKET)))
    inputs = _inputs_for(settings, store, ticket)
    worker = worker_name()
    try:
        record = builder.build(settings, inputs)
    except MissingRequirementsError as exc:
        result = BuildResult(ticket_blob.sha256, "missing", worker,
                             requires=asdict(exc.requires))
    except FactoryError as exc:
        result = BuildResult(ticket_blob.sha256, "failed", worker,
                             message=one_line(exc.message, 2000),
                             hint="" if exc.hint == type(exc).default_hint else exc.hint)
    else:
        wheel = settings.wheels_dir / record.wheel_filename
        log = settings.logs_dir / record.log_filename
        result = BuildResult(
            ticket_blob.sha256, "built", worker, wheel=Input.of(wheel, store.put(wheel)),
            record=store.put_bytes(canonical(record.to_dict())),
            log=Input.of(log, store.put(log)))
    blob = store.put_bytes(result.to_bytes())
    if run_ref is not None:
        store.set_ref(run_ref, blob)
    if result.outcome == "built":  # the first built result stands; a later one is kept
        store.set_ref(ref_name(ticket_blob), blob, only_if_absent=True)  # under run_ref only
    return result


def _inputs_for(settings: Settings, store: ArtifactStore, ticket: BuildTicket) -> BuildInputs:
    """The ticket's build inputs on this worker, each checked against the ticket."""
    from factory.build.executor import Session  # the executor imports this module's users

    _check_checkout(settings, ticket)
    image = held_image(settings, ticket.system_packages)
    if image is None or image.id != ticket.image_id:
        held = f"holds {image.id[:19]}" if image else "holds no such image"
        raise TicketRefused(
            f"{ticket.what}: refused: the ticket pins builder image {ticket.image_id[:19]} "
            f"({ticket.image_tag}); this worker {held}",
            "give every worker the pinned image (docker save | docker load, or the same "
            "registry digest in build.image)")
    lock = load_lock(settings)
    locked = lock.get(ticket.component, ticket.version)
    assert locked is not None  # _check_checkout
    pinned = [lock.find(tool) for tool in KIT_TOOLS]
    if sorted(k.sha256 for k in ticket.kit) != sorted(p.sdist.sha256 for p in pinned if p):
        # before any download: a ticket does not get to fill this worker's disk
        raise TicketRefused(f"{ticket.what}: refused: the ticket's front-end kit is not the "
                            "one this worker's lock pins")
    for item in (ticket.sdist, *ticket.kit):
        _fetch_sdist(settings, store, item)
    session = Session(settings, lock)
    sdist, tree = session.tree(locked)
    kit = session.kit()
    if sorted(p.sha256 for p in kit.parts) != sorted(k.sha256 for k in ticket.kit):
        raise TicketRefused(f"{ticket.what}: refused: the front-end kit this worker's lock "
                            "names is not the ticket's")
    patches = tuple({"path": p.name, "sha256": sha256_of(p)} for p in session.patches(locked))
    if tuple((p["path"], p["sha256"]) for p in patches) != ticket.patches:
        raise TicketRefused(f"{ticket.what}: refused: this worker's patches of "
                            f"{ticket.recipe_name} are not the ticket's")
    python = ticket_interpreter(settings, ticket)
    patchelf = None
    if ticket.patchelf_sha256 is not None:
        patchelf = patchelf_tool.for_image(settings, image)
        if patchelf.sha256 != ticket.patchelf_sha256:
            raise TicketRefused(f"{ticket.what}: refused: this worker's patchelf is "
                                f"{patchelf.sha256[:12]}, the ticket's "
                                f"{ticket.patchelf_sha256[:12]}")
    return BuildInputs(
        name=locked.key, version=locked.version, sdist=sdist, tree=tree,
        source=replace(locked.sdist, name=locked.key),
        tools=tuple(_fetch_wheel(settings, store, w) for w in ticket.tools),
        kit=kit, image=image, recipe_name=ticket.recipe_name,
        recipe_digest=locked.recipe_digest, patches=patches,
        upstream_wheels=ticket.upstream_wheels,
        repair_tools=tuple(_fetch_wheel(settings, store, w) for w in ticket.repair_tools),
        repair_note=ticket.repair_note, system_packages=ticket.system_packages,
        patchelf=patchelf, interpreter=python, variant=ticket.variant)


def _check_checkout(settings: Settings, ticket: BuildTicket) -> None:
    """This worker's project (recipes.lock, the component's row) is the ticket's."""
    try:
        lock_sha = sha256_file(settings.lock_path)
    except OSError:
        lock_sha = "none"
    if lock_sha != ticket.lock_sha256:
        raise TicketRefused(
            f"{ticket.what}: refused: this worker's recipes.lock ({settings.lock_path}) is "
            f"sha256 {lock_sha[:12]}, the ticket's {ticket.lock_sha256[:12]}",
            "run the workers on the publisher's checkout of the project (FACTORY_ROOT)")
    locked = load_lock(settings).get(ticket.component, ticket.version)
    if locked is None or locked.sdist.sha256 != ticket.sdist.sha256 \
            or locked.recipe_digest != ticket.recipe_digest:
        raise TicketRefused(f"{ticket.what}: refused: the lock does not pin the ticket's "
                            "sdist and recipe")


def _fetch_sdist(settings: Settings, store: ArtifactStore, item: Input) -> Path:
    """An sdist into this worker's source cache, verified against the ticket's digest."""
    path = cache_path(settings, item.sha256, item.filename)
    if path.is_file() and sha256_file(path) == item.sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    return store.get(item.blob(), path)


def _fetch_wheel(settings: Settings, store: ArtifactStore, item: Input) -> Path:
    """A build-environment wheel into ``<state>/inputs/<sha256>/``, verified."""
    if not builder.WHEEL_NAME.fullmatch(item.filename):
        raise TicketRefused(f"a ticket names the wheel {printable(item.filename)[:120]!r}")
    path = settings.state_dir / "inputs" / item.sha256 / item.filename
    if path.is_file() and sha256_file(path) == item.sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    return store.get(item.blob(), path)


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _names(filename: str, ticket: BuildTicket) -> bool:
    """Whether a worker's wheel file name is a wheel of the ticket's project and version
    (another name would be placed, signed and published as another project's wheel)."""
    try:
        if not builder.WHEEL_NAME.fullmatch(filename):
            return False
        name, version, _, _ = parse_wheel_filename(filename)
        return name == ticket.component and version == Version(ticket.version)
    except (InvalidWheelFilename, InvalidVersion):
        return False


_RECORD_TEXT = ("invocation_id", "component", "version", "wheel_filename", "wheel_sha256",
                "recipe_name", "recipe_digest", "builder_image", "builder_image_id",
                "started_on", "finished_on", "log_filename", "log_sha256", "network_mode")


def _recorded_tree(record: BuildRecord) -> str | None:
    """The tree digest of the built interpreter a record names; None: the image's own."""
    described = record.builder_settings.get("interpreter")
    found = described.get("tree_sha256") if isinstance(described, dict) else None
    return found if isinstance(found, str) else None


def _recorded_tag(record: BuildRecord) -> str | None:
    """The interpreter tag a record names, its version's (cp313 for 3.13.5); a record that
    names none ran the image's own python3; None when the tag and version disagree."""
    described = record.builder_settings.get("interpreter")
    if described is None:
        return interpreters.SYSTEM_TAG
    if not isinstance(described, dict):
        return None
    tag, version = described.get("tag"), described.get("version")
    if not isinstance(tag, str) or not isinstance(version, str):
        return None
    return tag if tag == "cp" + "".join(version.split(".")[:2]) else None


def _tags_fit(filename: str, ticket: BuildTicket) -> bool:
    """A worker's wheel carries only tags the ticket's interpreter gives (the check the
    host makes of its own builds, which the worker's host made or did not)."""
    try:
        return not builder.wrong_tags(filename, ticket.interpreter_tag
                                      or interpreters.SYSTEM_TAG,
                                      built=ticket.interpreter_tag is not None
                                      and ticket.variant)
    except (InvalidWheelFilename, InvalidVersion):
        return False


def ticket_interpreter(settings: Settings, ticket: BuildTicket) -> Interpreter | None:
    """The interpreter the ticket names, as this worker keeps it (found and checked,
    never built here): TicketRefused, in one line, when it keeps none or another."""
    if ticket.interpreter_tag is None:
        return None
    pin = next((p for p in interpreters.PINS.values() if p.tag == ticket.interpreter_tag),
               None)
    image = held_image(settings, interpreters.BUILD_PACKAGES) if pin else None
    found = interpreters.usable(settings, image, pin) if pin and image else None
    if found is None or found.tree_sha256 != ticket.interpreter_tree_sha256:
        held = f"keeps tree {found.tree_sha256[:12]}" if found else "keeps none"
        raise TicketRefused(
            f"{ticket.what}: refused: the ticket pins interpreter {ticket.interpreter_tag} "
            f"tree {str(ticket.interpreter_tree_sha256)[:12]}; this worker {held}",
            "give every worker the same interpreters_dir, or build it there with "
            "`factory builder bootstrap --interpreters` on the same image")
    return found


def _check_record_shape(record: BuildRecord) -> None:
    """A worker's record holds the types a local build writes (ValueError otherwise): the
    publisher compares, attests and describes it field by field."""
    def strings(value: object, *names: str) -> bool:
        return all(isinstance(getattr(value, n), str) for n in names)

    source = record.source
    if not (strings(record, *_RECORD_TEXT)
            and strings(source, "name", "version", "filename", "url", "sha256")
            and type(source.size) is int
            and isinstance(record.builder_settings, dict)
            and isinstance(record.build_tools, list)
            and all(isinstance(t, InstalledTool)
                    and strings(t, "name", "version", "filename", "sha256")
                    for t in record.build_tools)
            and isinstance(record.patches, list)
            and all(isinstance(p, dict) and all(isinstance(v, str) for v in p.values())
                    for p in record.patches)
            and all(isinstance(packages, list) and all(
                isinstance(p, SystemPackage)
                and strings(p, "name", "version", "architecture", "distro") for p in packages)
                for packages in (record.system_packages, record.image_packages))
            and (record.upstream_provenance_sha256 is None
                 or isinstance(record.upstream_provenance_sha256, str))):
        raise ValueError("a field of the record has the wrong type")
    repair = record.builder_settings.get("repair")
    if repair is not None and not (
            isinstance(repair, dict) and isinstance(repair.get("tools", []), list)
            and all(isinstance(t, dict) and isinstance(t.get("sha256"), str)
                    for t in repair.get("tools", []))):
        raise ValueError("the record's repair entry has the wrong shape")


def _bounded(blob: Blob, limit: int) -> Blob:
    if blob.size > limit:
        raise TicketRefused(f"a store object of {blob.size} bytes was to be read as a ticket, "
                            f"result or record (limit {limit})")
    return blob


# -- checking what comes back from the store ---------------------------------------------------
def _object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # [[[[... past the parser
        raise TicketRefused(f"a {what} is not JSON") from None
    if not isinstance(value, dict):
        raise TicketRefused(f"a {what} is not a JSON object")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT * 4:
        raise ValueError("a string field is not a bounded string")
    return value


def _name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{printable(repr(value))[:80]} is not a plain name")
    return value


def _sha(value: object) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError("a digest is not 64 lowercase hex digits")
    return value


def _tag(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"cp3[0-9]{1,2}", value):
        raise ValueError(f"{printable(repr(value))[:40]} is not an interpreter tag (cp313)")
    return value


def _true(value: object) -> bool:
    """A flag written only when set: present, it is JSON true, nothing else."""
    if value is not False and value is not True:
        raise ValueError(f"{printable(repr(value))[:40]} is not true or false")
    return value


def _image(value: object) -> str:
    if not isinstance(value, str) or not _IMAGE_ID.fullmatch(value):
        raise ValueError("the image ID is not sha256:<64 hex>")
    return value


def _choice(value: object) -> str:
    if value not in OUTCOMES:
        raise ValueError("an unknown outcome")
    return str(value)


def _list(value: object) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_INPUTS:
        raise ValueError("a list field is not a bounded list")
    return value


def _blob(value: object) -> Blob:
    if not isinstance(value, dict) or set(value) != {"sha256", "size"}:
        raise ValueError("a blob is not {sha256, size}")
    size = value["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError("a blob's size is not a count of bytes")
    return Blob(_sha(value["sha256"]), size)


def _input(value: object) -> Input:
    if not isinstance(value, dict) or set(value) != {"filename", "sha256", "size"}:
        raise ValueError("an input is not {filename, sha256, size}")
    blob = _blob({"sha256": value["sha256"], "size": value["size"]})
    return Input(_name(value["filename"]), blob.sha256, blob.size)


def _inputs(value: object) -> tuple[Input, ...]:
    return tuple(_input(v) for v in _list(value))


def _requires(value: object) -> dict[str, Any]:
    if value == {}:
        return {}
    if not isinstance(value, dict) or set(value) != {"static", "dynamic", "missing", "backend",
                                                     "backend_path"}:
        raise ValueError("requires is not {static, dynamic, missing, backend, backend_path}")
    lists = {k: [_text(v) for v in _list(value[k])] for k in ("static", "dynamic", "missing")}
    path = value["backend_path"]
    return {**lists, "backend": _text(value["backend"]),
            "backend_path": None if path is None else [_text(v) for v in _list(path)]}
