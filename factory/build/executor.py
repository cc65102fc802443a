"""Executing a build plan: every node built (independent ones at once), up-to-date ones kept.

A node is built once every node it depends on stands built; a failure stops only
what depends on it. With more interpreters than the builder image's own 3.11
(``[build] interpreters``), a node's first build runs the first of them its sdist's
Requires-Python admits (3.11 unless it excludes 3.11), and a node whose first wheel
is bound to its ABI (``cp311-cp311``: native, not abi3) is built again for each other
interpreter whose Requires-Python admits it (a ``Variant``; both decided by
factory/build/variants.py), once every build tool of its environment stands built for
that interpreter too (pure and abi3 wheels are shared; a native tool's own build for
that interpreter is used). A variant that
fails, or an interpreter that cannot be had, fails that variant alone. The inputs of
a node (its verified and patched source tree, the wheels of its environment, the kit,
the builder image) are made once per run and shared by the builds running in
threads. A build whose backend asks for requirements its environment lacks makes the
plan grow (``plan.regrow``) and is built again once they are built; a variant too (a
backend may ask for more under 3.13): its answer is recorded for its interpreter, what
it names is added to that interpreter's build environment, built, and the variant
built again.

    the_plan = make_plan(settings, ["requests"])
    outcome = run_plan(settings, the_plan)
    outcome.records, outcome.failed   # what stands built; node id -> why it failed
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from factory._internal.atomic import sha256_file
from factory._internal.digests import file_state, sha256_of
from factory.admission import admit_sdist
from factory.build import docker, interpreters
from factory.build import job as builder
from factory.build import patchelf as patchelf_tool
from factory.build import repair as repairing
from factory.build.env import KIT_TOOLS, Kit, KitPart, import_root
from factory.build.image import ImageRef, bootstrap_image
from factory.build.interpreters import Interpreter, InterpreterPin
from factory.build.record import RECORD_SUFFIX, BuildRecord
from factory.build.variants import (
    NotReady,
    Variant,
    Variants,
    same_interpreter,
    sdist_requires_python,
    variant_id,
)
from factory.config import Settings
from factory.errors import BuildError, FactoryError, one_line
from factory.lock import Lock, LockedComponent, load_lock
from factory.plan import Node, Plan, PlanError, make_plan, regrow, remember_dynamic
from factory.recipes import Recipe, load_recipes
from factory.upstream import archive, cache
from factory.upstream.client import open_upstream

_log = logging.getLogger(__name__)


class Session:
    """Shared inputs of one run: recipes, kit, images, unpacked trees."""

    def __init__(self, settings: Settings, lock: Lock) -> None:
        self.settings, self.lock = settings, lock
        self.recipes: dict[str, Recipe] = load_recipes(settings)
        self._kit: Kit | None = None
        self._images: dict[tuple[str, ...], ImageRef] = {}
        self._patchelf: dict[str, patchelf_tool.Patchelf | None] = {}  # image id -> it
        self._mutex = threading.RLock()  # builds run in threads; preparation is shared
        self._records: dict[str, tuple[str | None, BuildRecord]] = {}  # file -> (state, it)
        self._listing: tuple[tuple[int, int], dict[str, list[str]]] | None = None
        self._pythons: dict[str, Interpreter | FactoryError] = {}  # version -> it, or why not
        self._pythons_lock = threading.Lock()  # held while one is built (minutes, once)
        self._preparing: Future[None] | None = None  # the interpreters made in the background
        self._prepared: dict[str, Interpreter | FactoryError] = {}  # what it made, so far
        self._stopped = threading.Event()  # Ctrl-C: the preparation makes no more

    def interpreter(self, pin: InterpreterPin) -> Interpreter:
        """The factory-built CPython of ``pin``: kept and checked, or built now (once per
        machine with a shared interpreters_dir); the error again for every asker when it
        cannot be had."""
        with self._pythons_lock:
            if pin.version not in self._pythons:
                try:
                    image = bootstrap_image(self.settings, interpreters.BUILD_PACKAGES)
                    self._pythons[pin.version] = interpreters.for_build(self.settings, image,
                                                                        pin)
                except FactoryError as exc:
                    self._pythons[pin.version] = exc
            found = self._pythons[pin.version]
        if isinstance(found, FactoryError):
            raise found
        return found

    def prepare(self, pins: list[InterpreterPin]) -> Future[None] | None:
        """Start making ``pins``' interpreters in a thread of their own (once per run):
        one not kept is built (minutes, once per machine) while the image's builds go
        on. None when there are none to make."""
        if not pins:
            return None
        with self._mutex:
            if self._preparing is None:
                self._preparing = Future()
                # a daemon: Ctrl-C must not wait minutes for a CPython build to end (its
                # container is stopped with the builds'; a rerun makes it again)
                threading.Thread(target=self._prepare_into, args=(self._preparing, list(pins)),
                                 name="interpreters", daemon=True).start()
            return self._preparing

    def _prepare_into(self, future: Future[None], pins: list[InterpreterPin]) -> None:
        future.set_running_or_notify_cancel()
        try:
            self._prepare(pins)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on it
            future.set_exception(exc)
        else:
            future.set_result(None)

    def stop(self) -> None:
        """The run was stopped: the preparation makes no more interpreters (the one being
        built has its container killed with the builds')."""
        self._stopped.set()

    def _prepare(self, pins: list[InterpreterPin]) -> None:
        for pin in pins:
            if self._stopped.is_set():
                self._prepared[pin.version] = BuildError(
                    f"CPython {pin.version} was not prepared: the run was stopped")
                continue
            try:
                found: Interpreter | FactoryError = self.interpreter(pin)
            except FactoryError as exc:
                found = exc
            except Exception as exc:  # noqa: BLE001 - a bug must not leave builds waiting
                found = BuildError(f"CPython {pin.version} could not be prepared: "
                                   f"{one_line(repr(exc), 200)}")
            self._prepared[pin.version] = found

    def prepared(self, pin: InterpreterPin) -> Interpreter:
        """``pin``'s interpreter as the background preparation made it: NotReady while it
        is being made, its error when it cannot be had. Without a preparation: made now."""
        if self._preparing is None:
            return self.interpreter(pin)
        found = self._prepared.get(pin.version)
        if found is None:
            if self._preparing.done() and self._preparing.exception() is not None:
                raise BuildError(f"CPython {pin.version} could not be prepared")
            raise NotReady(pin.version)
        if isinstance(found, FactoryError):
            raise found
        return found

    def requires_python(self, locked: LockedComponent) -> str | None:
        """The Requires-Python of ``locked``'s verified sdist (fetched now when the fetch
        stage did not: one taken to admit every interpreter was built by 3.11 although
        its PKG-INFO excludes it, and its wheel was held to nothing)."""
        with self._mutex:  # as tree(): one download of it, verified
            return sdist_requires_python(cache.fetch(self.settings, locked.sdist))

    def kit(self) -> Kit:
        with self._mutex:
            return self._make_kit()

    def _make_kit(self) -> Kit:
        if self._kit is None:
            parts = []
            for tool in KIT_TOOLS:
                locked = self.lock.find(tool)
                if locked is None:
                    raise PlanError(f"the build front end needs {tool}, which is not locked",
                                    f"add recipes/{tool}.toml (kind = \"build-tool\") and run "
                                    "`factory lock`")
                sdist, tree = self.tree(locked)
                parts.append(KitPart(locked.key, locked.version, locked.sdist.filename,
                                     locked.sdist.sha256, import_root(tree)))
            self._kit = Kit(tuple(parts))
        return self._kit

    def image(self, locked: LockedComponent) -> ImageRef:
        recipe = self.recipes.get(locked.key)
        packages = tuple(sorted(recipe.system_packages)) if recipe else ()
        with self._mutex:
            if packages not in self._images:
                self._images[packages] = bootstrap_image(self.settings, packages)
            return self._images[packages]

    def kept_patchelf(self, image: ImageRef) -> patchelf_tool.Patchelf | None:
        """The patchelf already built for ``image`` (nothing fetched or built): what an
        up-to-date check compares a record's repair with."""
        with self._mutex:
            if image.id in self._patchelf:
                return self._patchelf[image.id]
        if repairing.mode(self.settings) != repairing.TOOL:
            return None
        try:
            return patchelf_tool.kept(self.settings, image)
        except FactoryError:
            return None

    def patchelf(self, image: ImageRef) -> patchelf_tool.Patchelf | None:
        """The patchelf built from source for ``image`` (once per image; kept by digest),
        or None when it cannot be had: the repair then uses the image's own, which
        cannot graft (the record says which patchelf ran). Asked for by a build that
        runs, so an image whose wheels are all up to date never pays for it."""
        with self._mutex:
            if image.id not in self._patchelf:
                found = None
                if repairing.mode(self.settings) == repairing.TOOL:
                    try:
                        found = patchelf_tool.for_image(self.settings, image)
                    except FactoryError as exc:
                        _log.warning("no patchelf built from source for %s (wheels that "
                                     "need grafted libraries stay linux_*): %s",
                                     image.tag, exc.message)
                self._patchelf[image.id] = found
            return self._patchelf[image.id]

    def patches(self, locked: LockedComponent) -> list[Path]:
        recipe = self.recipes.get(locked.key)
        return list(recipe.patches) if recipe else []

    def tree(self, locked: LockedComponent) -> tuple[Path, Path]:
        """The verified sdist and its unpacked, patched tree (made once, then reused)."""
        with self._mutex:
            return self._tree(locked)

    def _tree(self, locked: LockedComponent) -> tuple[Path, Path]:
        sdist = cache.fetch(self.settings, locked.sdist)
        recipe = self.recipes.get(locked.key)
        if recipe is not None:  # prebuilt files the recipe does not allow: no build
            admit_sdist(sdist, recipe)
        patches = self.patches(locked)
        tag = "-".join([locked.sdist.sha256[:32], *(sha256_of(p)[:12] for p in patches)])
        dest = self.settings.builds_dir / "trees" / tag
        if dest.exists():
            return sdist, archive.extract(sdist, dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-tree-", dir=dest.parent)) / "t"
        try:
            root = archive.extract(sdist, staging)
            archive.apply_patches(root, patches)
            try:
                staging.rename(dest)
            except OSError:
                if not dest.is_dir():
                    raise
                # Another factory process on this state dir made the same tree first.
        finally:
            shutil.rmtree(staging.parent, ignore_errors=True)
        return sdist, archive.extract(sdist, dest)

    def records(self, key: str) -> list[tuple[Path, BuildRecord]]:
        """The build records in the wheels directory whose wheel is of project ``key``.

        Each record file is read once per state of the file: a no-op build of a
        catalogue asks this for every node, and the records do not change under it.
        """
        found = []
        for name in self._record_names().get(key, []):
            path = self.settings.wheels_dir / name
            state = file_state(path)
            if state is None:
                continue  # removed since the directory was listed
            with self._mutex:
                known = self._records.get(name)
            if known is None or known[0] != state:
                known = (state, BuildRecord.load(path))
                with self._mutex:
                    self._records[name] = known
            found.append((path, known[1]))
        return found

    def _record_names(self) -> dict[str, list[str]]:
        """The record files in the wheels directory by project, listed again only when
        the directory changed (its modification time moves with every entry added,
        removed or renamed). A listing taken within a second of the last change is not
        kept: the clock the filesystem stamps with ticks coarsely, so a change in the
        same tick would not move it (git's "racy" index entries, the same cure)."""
        try:
            info = os.stat(self.settings.wheels_dir)
        except FileNotFoundError:
            return {}
        state = (info.st_ino, info.st_mtime_ns)
        with self._mutex:
            if self._listing is not None and self._listing[0] == state:
                return self._listing[1]
        by_project: dict[str, list[str]] = {}
        for name in sorted(os.listdir(self.settings.wheels_dir)):
            if name.endswith(RECORD_SUFFIX):
                by_project.setdefault(canonicalize_name(name.split("-", 1)[0]), []).append(name)
        if time.time_ns() - info.st_mtime_ns > 1_000_000_000:
            with self._mutex:
                self._listing = (state, by_project)
        return by_project

    def upstream_wheel(self, node: Node) -> Path:
        """The recipe's allowed upstream wheel, downloaded once and checked by sha256."""
        assert node.upstream_wheel is not None
        filename, sha256 = node.upstream_wheel
        _, version, _, _ = parse_wheel_filename(filename)
        if version != Version(node.version):
            raise PlanError(f"{node.name}: the allowed upstream wheel {filename} is version "
                            f"{version}, the lock has {node.version}",
                            f"pin the wheel of {node.version} in recipes/{node.locked.key}.toml")
        target = self.settings.state_dir / "upstream-wheels" / sha256 / filename
        if target.is_file() and sha256_file(target) == sha256:
            return target
        recipe = self.recipes.get(node.locked.key)
        index = (recipe.source.index if recipe else None) or self.settings.upstream
        with open_upstream(self.settings, index) as upstream:
            offered = next((f for f in upstream.project(node.name).files
                            if f.filename == filename), None)
            if offered is None:
                raise PlanError(f"{node.name}: upstream does not offer {filename}",
                                "check [upstream_wheel] filename in its recipe")
            return upstream.download(offered.url, target, sha256=sha256, size=offered.size)

    def inputs(self, node: Node, wheels: list[Path], repair_wheels: list[Path] | None = None,
               python: Interpreter | None = None, variant: bool = False,
               ) -> builder.BuildInputs:
        locked = node.locked
        sdist, tree = self.tree(locked)
        patches = tuple({"path": str(p.name), "sha256": sha256_of(p)}
                        for p in self.patches(locked))
        recipe = self.recipes.get(locked.key)
        image = self.image(locked)
        return builder.BuildInputs(
            name=locked.key, version=locked.version, sdist=sdist, tree=tree,
            # the record names the project normalized, however the lock row spells it
            source=replace(locked.sdist, name=locked.key),
            tools=tuple(wheels), kit=self.kit(), image=image,
            recipe_name=recipe.path.name if recipe else locked.key,
            recipe_digest=locked.recipe_digest, patches=patches,
            upstream_wheels=tuple(w.name for w in [*wheels, *(repair_wheels or [])]
                                  if "upstream-wheels" in w.parts),
            repair_tools=tuple(repair_wheels or ()), repair_note=node.repair_note,
            system_packages=tuple(recipe.system_packages) if recipe else (),
            patchelf=self.kept_patchelf(image) if repair_wheels else None,
            interpreter=python, variant=variant,
        )


def _up_to_date(session: Session, inputs: builder.BuildInputs) -> BuildRecord | None:
    """The existing record when a wheel was built from the very same inputs."""
    wanted_tools = sorted([*(sha256_of(w) for w in inputs.tools),
                           *(p.sha256 for p in inputs.kit.parts)])
    repair_tools = [sha256_of(w) for w in inputs.repair_tools]
    for record_path, record in session.records(inputs.name):
        if (record.component == inputs.name and record.version == inputs.version
                and record.source.sha256 == inputs.source.sha256
                and record.recipe_digest == inputs.recipe_digest
                and record.builder_image_id == inputs.image.id
                and same_interpreter(record, inputs)
                and repairing.build_env_shas(record) == wanted_tools
                and repairing.up_to_date(record, session.settings, repair_tools,
                                         inputs.patchelf.sha256 if inputs.patchelf else None)
                and record.patches == [dict(p) for p in inputs.patches]
                and record_path.with_name(record.wheel_filename).is_file()):
            return record
    return None


# How each build is run: the flows wrap it in an orchestrator task; by default
# it is simply called.
BuildWrapper = Callable[[Node, Callable[[], BuildRecord]], BuildRecord]


def _call(node: Node, build: Callable[[], BuildRecord]) -> BuildRecord:
    return build()


# What builds one node's inputs: here (factory.build.job.build, the default), or on a
# build worker (factory.build.ticket.remote_build, which the rebuild flow hands in).
Builder = Callable[[Settings, builder.BuildInputs], BuildRecord]


class _Executor:
    def __init__(self, settings: Settings, plan: Plan, concurrency: int,
                 wrap: BuildWrapper = _call, build: Builder | None = None) -> None:
        self.settings, self.plan, self.wrap = settings, plan, wrap
        self.builder: Builder = build or builder.build
        self.concurrency = max(1, concurrency)
        self.lock = load_lock(settings)
        self.session = Session(settings, self.lock)
        self.done: dict[str, BuildRecord] = {}
        self.taken: dict[str, Path] = {}  # allowed upstream wheels, by node id
        self.failed: dict[str, str] = {}
        self.built_with: dict[str, list[str]] = {}  # node id -> the env its last build had
        # node or variant id -> the envs its earlier builds in this run ran in and asked
        # more of: a backend whose answer flips must not be built again for ever
        self.tried: dict[str, list[list[str]]] = {}
        self.blockers: dict[str, str] = {}  # node id -> a dependency it waits for
        # the other interpreters' builds of native nodes
        self.variants = Variants(settings, interpreters.select(settings),
                                 self.session.prepared, self.done, self.taken, self.failed,
                                 reason)

    def ready(self, running: set[str]) -> list[Node]:
        """The nodes whose dependencies are all built; what needs a failed node is failed.

        Passes until no new failure is marked: a failure marked late in a pass must fail
        what needs it, even when nothing is left to run (a node two levels above a
        failure was once left out of the outcome altogether). A node waits on the first
        dependency it found unfinished, and is looked at again only once that one is
        finished or failed: a catalogue's no-op is one round per node."""
        settled = self.taken.keys() | self.failed.keys()
        for node in self.plan.nodes.values():  # taken, not built: first, and at once
            if node.upstream_wheel is not None and node.id not in settled:
                self._take(node)
        finished = self.done.keys() | self.taken.keys()
        marked = True
        while marked:
            marked, out = False, []
            for nid in sorted(self.plan.nodes):
                if nid in finished or nid in self.failed or nid in running:
                    continue
                blocker = self.blockers.get(nid)
                if blocker is not None and blocker not in finished and blocker not in self.failed:
                    continue
                node = self.plan.nodes[nid]
                deps = node.deps
                bad = [d for d in deps if d in self.failed]
                if bad:
                    what = "a build requirement" if set(bad) & set(node.env) else "a repair tool"
                    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
                    self.failed[nid] = f"{what} failed: " + ", ".join(bad[:5]) + more
                    marked = True
                    continue
                waiting = next((d for d in deps if d not in finished), None)
                if waiting is None:
                    self.blockers.pop(nid, None)
                    out.append(node)
                else:
                    self.blockers[nid] = waiting
        return [node for node in out if self._tools_for_first(node)] if self.variants.pins \
            else out

    def _tools_for_first(self, node: Node) -> bool:
        """With several interpreters: whether every tool of ``node`` stands built for the
        interpreter its first build runs (one whose build for it is still to come makes
        it wait; a native tool built only for another fails it). A tool 3.11 was skipped
        for moves the node's first build to the other interpreters."""
        try:
            python = (self.variants.firsts[node.id] if node.id in self.variants.firsts else
                      self.variants.first(node, self.session.requires_python(node.locked)))
        except NotReady:  # an interpreter it must judge is still being made
            return False
        except FactoryError as exc:
            self.failed[node.id] = reason(exc)
            return False
        if python is None:
            tag, deps = interpreters.SYSTEM_TAG, node.deps
        else:
            tag = python.tag
            try:
                deps = node.deps_for(tag)
            except PlanError as exc:
                self.failed[node.id] = reason(exc)
                return False
        found = [self.variants.wheel(d, tag) for d in deps]
        bad = [w for w in found if isinstance(w, str)]
        excluded = next((d for d in deps if variant_id(d, tag) in self.variants.skipped), None)
        if bad and python is None and excluded is not None:
            # a tool only other interpreters build: so is this one, by them
            self.variants.move_off_system(node, f"its build requirement {excluded} is not "
                                          f"built for {tag} ("
                                          f"{self.variants.skipped[variant_id(excluded, tag)]})")
            return self._tools_for_first(node)
        if bad:
            self.failed[node.id] = f"a build requirement for {tag}: {bad[0]}"
        return not bad and all(w is not None for w in found)

    def _take(self, node: Node) -> None:
        try:
            self.taken[node.id] = self.session.upstream_wheel(node)
        except FactoryError as exc:
            self.failed[node.id] = reason(exc)

    def _wheel(self, nid: str) -> Path:
        if nid in self.taken:
            return self.taken[nid]
        return self.settings.wheels_dir / self.done[nid].wheel_filename

    def _wheel_for(self, nid: str, tag: str) -> Path:
        """``nid``'s wheel for interpreter ``tag`` (ready() saw that it stands built)."""
        found = self.variants.wheel(nid, tag)
        if not isinstance(found, Path):
            raise BuildError(f"{nid} has no wheel for {tag}: {found or 'not built yet'}")
        return found

    def build(self, node: Node) -> BuildRecord:
        python = self.variants.firsts.get(node.id)  # None: the image's own python3
        env = self.built_with[node.id] = list(node.env if python is None
                                              else node.env_for(python.tag))
        wheel = self._wheel if python is None else functools.partial(self._wheel_for,
                                                                     tag=python.tag)
        wheels = [wheel(d) for d in env if d != node.id]
        repair = node.repair if python is None else node.repair_for(python.tag)
        inputs = self.session.inputs(node, wheels, [wheel(d) for d in repair], python=python)
        existing = _up_to_date(self.session, inputs)
        if existing is not None:
            return existing
        if inputs.repair_tools:  # a build runs: the patchelf it repairs with, built if need be
            inputs = replace(inputs, patchelf=self.session.patchelf(inputs.image))
        # Only real builds go through the wrapper (an orchestrator task, say).
        return self.wrap(node, functools.partial(self._build_fresh, node, inputs))

    def _build_fresh(self, node: Node, inputs: builder.BuildInputs) -> BuildRecord:
        # a first build by another interpreter (3.11 excluded) records its answer for
        # that one too, so a record an earlier build left for it is not planned with
        tag = inputs.interpreter.tag if inputs.interpreter is not None else ""
        try:
            record = self.builder(self.settings, inputs)
        except builder.MissingRequirementsError as exc:
            node.dynamic = exc.requires.dynamic
            remember_dynamic(self.settings, node.locked, node.dynamic, inputs.image.id)
            if tag:
                self._learn(node, tag, exc.requires.dynamic, inputs)
            raise
        if node.dynamic is None:
            node.dynamic = list(record.builder_settings["build_requires"]["dynamic"])
            remember_dynamic(self.settings, node.locked, node.dynamic, inputs.image.id)
        if tag:
            self._learn(node, tag, _asked(record), inputs)
        return record

    def _learn(self, node: Node, tag: str, dynamic: list[str] | None,
               inputs: builder.BuildInputs) -> None:
        """What ``node``'s backend asked for under interpreter ``tag`` (its build of
        ``inputs``), recorded for it when it is not what that interpreter's environment
        was planned with."""
        if dynamic is not None and dynamic != node.dynamic_for(tag):
            node.dynamics[tag] = list(dynamic)
            remember_dynamic(self.settings, node.locked, node.dynamics[tag], inputs.image.id,
                             tag)

    # -- variants: a native node again for each other interpreter --------------------

    def build_variant(self, variant: Variant) -> BuildRecord:
        node, tag = variant.node, variant.python.tag
        env = self.built_with[variant.id] = list(node.env_for(tag))
        wheels = [self.variants.wheel(d, tag) for d in env if d != node.id]
        tools = [self.variants.wheel(d, tag) for d in node.repair_for(tag)]
        inputs = self.session.inputs(node, [w for w in wheels if isinstance(w, Path)],
                                     [w for w in tools if isinstance(w, Path)],
                                     python=variant.python, variant=True)
        existing = _up_to_date(self.session, inputs)
        if existing is not None:
            return existing
        if inputs.repair_tools:
            inputs = replace(inputs, patchelf=self.session.patchelf(inputs.image))
        return self.wrap(node, functools.partial(self._build_variant, node, tag, inputs))

    def _build_variant(self, node: Node, tag: str, inputs: builder.BuildInputs) -> BuildRecord:
        # Its environment was planned with this interpreter's markers and with what its
        # backend asked for under it (recorded by an earlier build for it), else under
        # its first build's interpreter: a backend that asks for more here is grown as
        # a first build is (collect_variant).
        try:
            record = self.builder(self.settings, inputs)
        except builder.MissingRequirementsError as exc:
            self._learn(node, tag, exc.requires.dynamic, inputs)
            raise
        self._learn(node, tag, _asked(record), inputs)
        return record

    def grow(self, node: Node) -> None:
        """New dynamic requirements: add their nodes, and make ``node`` wait for them."""
        python = self.variants.firsts.get(node.id)
        tried = self.tried.setdefault(node.id, [])
        regrow(self.settings, self.lock, self.plan, node, self.built_with[node.id],
               python.tag if python is not None else "", tried)
        tried.append(self.built_with[node.id])

    def grow_variant(self, variant: Variant) -> None:
        """A variant's backend asked for more under its interpreter: add the nodes of
        that interpreter's new environment (built as any node is, and for it), and the
        variant waits for them (Variants.ready). PlanError when they are not locked."""
        tried = self.tried.setdefault(variant.id, [])
        regrow(self.settings, self.lock, self.plan, variant.node,
               self.built_with[variant.id], variant.python.tag, tried)
        tried.append(self.built_with[variant.id])

    def run(self) -> list[BuildRecord]:
        # the other interpreters are made meanwhile: the loop never waits for one while
        # anything else can be built
        docker.allow_new()  # a run after an interrupted one (a flow worker's next) builds
        preparing = self.session.prepare(self.variants.pins)
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                try:
                    self._loop(pool, preparing)
                except BaseException:  # Ctrl-C (or a bug): stop what runs, start no more
                    pool.shutdown(wait=False, cancel_futures=True)
                    self.session.stop()
                    docker.stop_running()
                    raise
        finally:
            # the preparation thread is not waited for: while it may still be creating a
            # CPython build's container, none may start (the next run allows them again)
            if preparing is None or preparing.done():
                docker.allow_new()
        self._unfinished()
        records = [self.done[n] for n in self.plan.order if n in self.done]
        return records + self.variants.records(self.plan.order)

    def _loop(self, pool: ThreadPoolExecutor, preparing: Future[None] | None) -> None:
        """Submit what is ready, collect what finished, until nothing is left to do."""
        running: dict[Future[BuildRecord], Node | Variant] = {}
        while True:
            # read before what is ready: an interpreter made after that look must
            # get one more look, not end the run with what waited for it unbuilt
            made = preparing is None or preparing.done()
            ids = {n.id for n in running.values()}
            jobs: list[Node | Variant] = [*self.ready(ids), *self.variants.ready(ids)]
            for job in jobs:
                if len(running) >= self.concurrency:
                    break
                future = (pool.submit(self.build_variant, job) if isinstance(job, Variant)
                          else pool.submit(self.build, job))
                running[future] = job
            if not running and made:
                break
            awaited: list[Future[Any]] = list(running)
            if preparing is not None and not made:  # it may free what waits for it
                awaited.append(preparing)
            finished, _ = wait(awaited, return_when=FIRST_COMPLETED)
            for done in finished:
                if done is preparing:
                    continue  # what waited for an interpreter is looked at again
                was = running.pop(done)
                if isinstance(was, Variant):
                    self.collect_variant(was, done)
                else:
                    self.collect(was, done)

    def _unfinished(self) -> None:
        """Whatever the run ends with neither built nor failed fails, saying what it
        waited for: a run must never look complete with a component (or an interpreter's
        build of one) silently missing."""
        finished = self.done.keys() | self.taken.keys() | self.failed.keys()
        for nid in self.plan.order:
            if nid not in finished:
                waited = self.blockers.get(nid) or "an interpreter or a build requirement"
                self.failed[nid] = f"not built: the run ended while it waited for {waited}"
        for nid in self.variants.pending:  # a native wheel whose variants were not judged
            for pin in self.variants.pins:
                vid = variant_id(nid, pin.tag)
                if pin.tag != self.variants.tag(nid) and not (
                        vid in self.variants.planned or vid in self.variants.skipped
                        or vid in self.failed):
                    self.failed[vid] = ("not built: the run ended before CPython "
                                        f"{pin.version} was judged for it")
        for vid in self.variants.planned:
            if vid not in self.variants.built and vid not in self.failed:
                self.failed[vid] = "not built: the run ended while it waited for its tools"

    def collect_variant(self, variant: Variant, future: Future[BuildRecord]) -> None:
        try:
            self.variants.built[variant.id] = future.result()
        except builder.MissingRequirementsError:
            try:
                self.grow_variant(variant)
            except FactoryError as exc:
                self.failed[variant.id] = reason(exc)
        except FactoryError as exc:
            self.failed[variant.id] = reason(exc)

    def collect(self, node: Node, future: Future[BuildRecord]) -> None:
        try:
            record = future.result()
            self.variants.plan(node, record)  # may refuse the wheel: then it is not done
            self.done[node.id] = record
        except builder.MissingRequirementsError:
            try:
                self.grow(node)
            except FactoryError as exc:
                self.failed[node.id] = reason(exc)
        except FactoryError as exc:
            self.failed[node.id] = reason(exc)


def _asked(record: BuildRecord) -> list[str] | None:
    """What a build's record says its backend asked for; None where it says nothing (a
    stand-in's record): nothing is learnt from it."""
    found = record.builder_settings.get("build_requires")
    asked = found.get("dynamic") if isinstance(found, dict) else None
    return list(asked) if isinstance(asked, list) else None


@dataclass
class Outcome:
    """What an execution did: records of what stands built, and what failed (why)."""

    records: list[BuildRecord]  # the image's interpreter's first, then the variants
    failed: dict[str, str]
    # variant id -> why a native component is not built for that interpreter (its
    # Requires-Python excludes it)
    skipped: dict[str, str] = field(default_factory=dict)


def run_plan(settings: Settings, plan: Plan, concurrency: int | None = None,
             wrap: BuildWrapper = _call, refused: Mapping[str, str] | None = None,
             build: Builder | None = None) -> Outcome:
    """Build every node of ``plan`` (independent ones concurrently); skip up-to-date ones.

    A failure stops only what depends on it; everything else is built. ``refused``
    (node id -> why, from fetch: a license, an alarm, a lock row its recipe no longer
    approves) are failed before anything runs. ``build`` builds one node's inputs
    (default: here, factory.build.job.build).
    """
    executor = _Executor(settings, plan, concurrency or settings.build_concurrency, wrap,
                         build)
    executor.failed.update({nid: why for nid, why in (refused or {}).items()
                            if nid in plan.nodes})
    for nid, why in plan.problems.items():  # its environment cannot be planned
        executor.failed.setdefault(nid, one_line(why, REASON_LIMIT + HINT_LIMIT))
    records = executor.run()
    return Outcome(records, dict(sorted(executor.failed.items())),
                   dict(executor.variants.skipped))


REASON_LIMIT = 400  # characters of one node's failure reason (its log path survives)
HINT_LIMIT = 600  # a hint is often a line to paste: cut, it would not work
SHOWN_FAILURES = 3  # failures named in the one-line summary; ``diagnostics`` lists all


def reason(exc: FactoryError) -> str:
    """Why a node failed, as one bounded line (the middle goes first, so the log path
    at the end of a build failure stays), with the failure's own hint when it has one
    (the Debian package a missing header needs, the `factory add` line to run)."""
    return exc.reason(REASON_LIMIT, HINT_LIMIT)


def summarise(failed: dict[str, str], what: str = "build(s) failed") -> str:
    """``N build(s) failed: a: why; b: why; c: why; and K more``: one line, bounded."""
    shown = "; ".join(f"{nid}: {one_line(why, REASON_LIMIT)}"
                      for nid, why in list(failed.items())[:SHOWN_FAILURES])
    more = (f"; and {len(failed) - SHOWN_FAILURES} more"
            if len(failed) > SHOWN_FAILURES else "")
    return f"{len(failed)} {what}: {shown}{more}"


class BuildsFailed(BuildError):
    """Some builds failed (every other one was built): a one-line summary, and one
    line per failure in ``diagnostics``."""

    def __init__(self, failed: dict[str, str]) -> None:
        super().__init__(summarise(failed))
        self.failed = dict(failed)

    def __reduce__(self) -> tuple[Any, ...]:  # an orchestrator may pickle it
        return type(self), (self.failed,)

    def diagnostics(self) -> str:
        return "\n".join([super().diagnostics(), *(f"  failed {nid}: {one_line(why, 1000)}"
                                                   for nid, why in self.failed.items())])


def execute(settings: Settings, plan: Plan, concurrency: int | None = None) -> list[BuildRecord]:
    """run_plan, raising BuildsFailed naming every node that failed."""
    outcome = run_plan(settings, plan, concurrency)
    if outcome.failed:
        raise BuildsFailed(outcome.failed)
    return outcome.records


def build_one(settings: Settings, name: str) -> BuildRecord:
    """Build one approved component and whatever build tools it still lacks."""
    plan = make_plan(settings, [name])
    records = execute(settings, plan)
    wanted = next(n for n in plan.nodes.values() if "asked for" in n.reasons)
    for record in records:
        if record.component == canonicalize_name(wanted.name) and \
                Version(record.version) == Version(wanted.version):
            return record
    raise BuildError(f"{name}: nothing was built")
