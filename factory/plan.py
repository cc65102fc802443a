"""The build plan: which locked sdists to build, in which order, and why.

Every node is one locked (name, version). Its build environment is the closure
of its build requirements -- static ``[build-system].requires`` plus the
backend's dynamic ``get_requires_for_build_wheel`` -- together with the runtime
requirements (Requires-Dist) of every build tool in it, each resolved to the
newest locked version that satisfies every specifier on that name. A node is
built after every node of its environment; nothing comes from an upstream
binary wheel. Self-bootstrapping backends (flit_core, setuptools, hatchling's
ouroboros, poetry-core, pdm-backend) build from their own tree through
``backend-path`` and need no node before them (hatchling's ouroboros asks for
its runtime deps dynamically, and those are built first). A cycle that remains
is an error naming it, unless a member's recipe allows a pinned upstream wheel:
then that wheel breaks the cycle, and the plan records it.

Native wheels are repaired to a manylinux tag after their build (see
factory/builders/repair.py): auditwheel's run-time closure is then part of the
plan, and every node outside the build closure of auditwheel itself waits for
it (``Node.repair``); those inside that closure are built without it.

Dynamic requirements are learnt by running the hook in a network-less
container once the node's static environment exists (at plan time when it
already does; otherwise at build time, where the build reports what is missing
and the executor adds it) and are cached per sdist and builder image.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from factory._internal.atomic import sha256_file, write_json
from factory.admission import admit_sdist
from factory.build import job as builder
from factory.build import repair as repairing
from factory.build.env import KIT_TOOLS, Kit, KitPart, import_root
from factory.build.image import ImageRef, bootstrap_image
from factory.build.record import RECORD_SUFFIX, BuildRecord
from factory.config import Settings
from factory.errors import BuildError, FactoryError
from factory.lock import Lock, LockedComponent, load_lock, marker_environment
from factory.recipes import Recipe, load_recipes
from factory.upstream import archive, cache
from factory.upstream.client import Upstream


class PlanError(FactoryError):
    default_hint = "approve the missing build tool (recipes/<name>.toml) and run `factory lock`"


@dataclass
class Node:
    name: str
    version: str
    kind: str
    locked: LockedComponent
    static: list[str]
    dynamic: list[str] | None = None  # None: not probed yet
    env: list[str] = field(default_factory=list)  # node ids of its build environment
    reasons: list[str] = field(default_factory=list)
    self_bootstrap: str = ""  # the backend-path, when the backend builds itself
    upstream_wheel: tuple[str, str] | None = None  # (filename, sha256) a recipe allows
    repair: list[str] = field(default_factory=list)  # node ids of the repair tools (auditwheel)
    repair_note: str = ""  # why it has no repair tools, when repair is on

    @property
    def deps(self) -> list[str]:
        """The nodes built before this one: its build environment and its repair tools."""
        return [d for d in (*self.env, *self.repair) if d != self.id]

    @property
    def id(self) -> str:
        return node_id(self.name, self.version)


@dataclass
class Plan:
    nodes: dict[str, Node]
    order: list[str]
    cycles: list[str] = field(default_factory=list)

    def explain(self) -> str:
        lines = []
        for number, nid in enumerate(self.order, 1):
            node = self.nodes[nid]
            tag = " (self-bootstrapping: backend-path " + node.self_bootstrap + ")" \
                if node.self_bootstrap else ""
            if node.upstream_wheel:
                tag = f" (pinned upstream wheel {node.upstream_wheel[0]}, allowed by its recipe)"
            lines.append(f"{number:3}. {node.name} {node.version} [{node.kind}]{tag}")
            for reason in node.reasons:
                lines.append(f"       why: {reason}")
            dynamic = "not probed yet" if node.dynamic is None else (", ".join(node.dynamic)
                                                                       or "none")
            lines.append(f"       build env: {', '.join(node.env) or 'empty'}; "
                         f"dynamic requires: {dynamic}")
        for cycle in self.cycles:
            lines.append(f"cycle broken: {cycle}")
        lines += self._explain_repair()
        return "\n".join(lines)

    def _explain_repair(self) -> list[str]:
        tools = next((n.repair for n in self.nodes.values() if n.repair), [])
        notes: dict[str, list[str]] = {}
        for nid in self.order:
            if self.nodes[nid].repair_note:
                notes.setdefault(self.nodes[nid].repair_note, []).append(nid)
        lines = []
        if tools:
            lines.append("native wheels are repaired to a manylinux tag after their build with "
                         + ", ".join(tools))
        lines += [f"not repaired ({note}): {', '.join(ids)}" for note, ids in notes.items()]
        return lines


def node_id(name: str, version: str) -> str:
    return f"{canonicalize_name(name)}=={version}"


# -- building the graph ---------------------------------------------------------

class _Graph:
    """The lock, the marker environment and the nodes found so far."""

    def __init__(self, settings: Settings, lock: Lock, repair: bool = True) -> None:
        self.settings, self.lock = settings, lock
        self.repair = repair and repairing.mode(settings) == repairing.TOOL
        self.markers = marker_environment(settings)
        self.nodes: dict[str, Node] = {}
        self.recipes = load_recipes(settings) if settings.recipes_dir.is_dir() else {}

    def requirements(self, lines: list[str] | tuple[str, ...], origin: str,
                     extras: frozenset[str] = frozenset()) -> list[Requirement]:
        found = []
        for line in lines:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                raise PlanError(f"{origin}: invalid requirement {line!r}") from None
            try:
                applies = req.marker is None or any(
                    req.marker.evaluate({**self.markers, "extra": e}) for e in ("", *extras))
            except (ValueError, KeyError):  # KeyError: a name the environment lacks
                raise PlanError(f"{origin}: requirement {line!r} has a marker that cannot be "
                                "evaluated") from None
            if applies:
                found.append(req)
        return found

    def add(self, locked: LockedComponent, reason: str) -> Node:
        nid = node_id(locked.name, locked.version)
        node = self.nodes.get(nid)
        if node is None:
            node = Node(locked.name, locked.version, locked.kind, locked,
                        static=list(locked.build_requires))
            recipe = self.recipes.get(locked.key)
            if recipe is not None and recipe.upstream_wheel is not None:
                # Explicitly allowed by the recipe: taken, not built, so it needs no
                # build environment, and it breaks any cycle through it.
                node.upstream_wheel = (recipe.upstream_wheel.filename,
                                       recipe.upstream_wheel.sha256)
                node.static, node.dynamic = [], []
            else:
                node.self_bootstrap = _backend_path(self.settings, locked)
                node.dynamic = _cached_dynamic(self.settings, locked)
            self.nodes[nid] = node
        if reason not in node.reasons:
            node.reasons.append(reason)
        return node

    def environment(self, node: Node) -> list[LockedComponent]:
        """The locked components of ``node``'s build environment (a fixed point)."""
        origin = f"{node.name} {node.version}"
        wanted: dict[str, list[Requirement]] = {}
        queue = self.requirements([*node.static, *(node.dynamic or [])], origin)
        chosen: dict[str, LockedComponent] = {}
        while queue:
            req = queue.pop(0)
            key = canonicalize_name(req.name)
            wanted.setdefault(key, []).append(req)
            pick = self._pick(key, wanted[key], node)
            if chosen.get(key) is pick:
                continue
            chosen[key] = pick
            extras = frozenset().union(*(r.extras for r in wanted[key]))
            queue += self.requirements(pick.requires_dist, f"{pick.name} {pick.version}", extras)
        return sorted(chosen.values(), key=lambda c: c.key)

    def _pick(self, key: str, reqs: list[Requirement], node: Node) -> LockedComponent:
        spec = reqs[0].specifier
        for req in reqs[1:]:
            spec &= req.specifier
        found = self.lock.find(key, spec)
        if found is None:
            asked = "; ".join(str(r) for r in reqs)
            raise PlanError(
                f"{node.name} {node.version} needs {asked} to build, and no locked version "
                "satisfies it",
                f"approve it (recipes/{key}.toml, kind = \"build-tool\") and run `factory lock`",
            )
        return found


def _backend_path(settings: Settings, locked: LockedComponent) -> str:
    """The backend-path of a backend that builds itself, read from the cached sdist."""
    path = cache.cache_path(settings, locked.sdist.sha256, locked.sdist.filename)
    if not path.is_file():
        return ""
    raw = cache.read_member(path, "pyproject.toml")
    if raw is None:
        return ""
    import tomllib

    try:
        system = tomllib.loads(raw.decode("utf-8")).get("build-system", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return ""
    if system.get("backend-path") and not system.get("requires"):
        return json.dumps(system["backend-path"])
    return ""


def make_plan(settings: Settings, names: list[str] | None = None, probe: bool = False) -> Plan:
    """The build graph of ``names`` (default: every approved component), in build order."""
    lock = load_lock(settings)
    graph = _Graph(settings, lock)
    if names is None:
        for c in lock.components:
            if c.is_primary:
                graph.add(c, "approved (recipes/" + c.key + ".toml)")
    else:
        for name in names:
            found = lock.primary(name)
            if found is None:
                raise PlanError(f"{name} is not in the lock",
                                f"approve it in recipes/{canonicalize_name(name)}.toml and run "
                                "`factory lock`")
            graph.add(found, "asked for")
    _expand(graph)
    if probe:
        _probe_ready(settings, graph)
    return _ordered(graph)


def _expand(graph: _Graph) -> None:
    """Add the environment of every node, transitively, and the repair tools."""
    pending = list(graph.nodes.values())
    while pending:
        _expand_env(graph, pending)
        pending = _attach_repair(graph)


def _expand_env(graph: _Graph, pending: list[Node]) -> None:
    while pending:
        node = pending.pop(0)
        env = graph.environment(node)
        node.env = [node_id(c.name, c.version) for c in env]
        for comp in env:
            if node_id(comp.name, comp.version) == node.id:
                continue  # a self-requirement is a cycle; _ordered reports it
            known = node_id(comp.name, comp.version) in graph.nodes
            child = graph.add(comp, f"in the build environment of {node.name} {node.version}")
            if not known:
                pending.append(child)


def _repair_closure(graph: _Graph) -> tuple[list[LockedComponent], set[str]] | None:
    """auditwheel's run-time closure, and the ids of every node needed to build it."""
    tool = graph.lock.find(repairing.TOOL)
    if tool is None:
        return None
    scratch = _Graph(graph.settings, graph.lock, repair=False)
    wanted = Node(tool.name, tool.version, tool.kind, tool, static=[f"{tool.key}=={tool.version}"],
                  dynamic=[])
    closure = graph.environment(wanted)
    for comp in closure:
        scratch.add(comp, "")
    _expand(scratch)
    return closure, set(scratch.nodes)


def _attach_repair(graph: _Graph) -> list[Node]:
    """Make the nodes that may produce a native wheel wait for auditwheel; the new nodes."""
    if not graph.repair:
        return []
    found = _repair_closure(graph)
    if found is None:
        for node in graph.nodes.values():
            node.repair, node.repair_note = [], repairing.NOT_LOCKED
        return []
    closure, builders = found
    tools = [node_id(c.name, c.version) for c in closure]
    users = [n for n in graph.nodes.values() if n.id not in builders and n.upstream_wheel is None]
    for node in graph.nodes.values():
        node.repair, node.repair_note = [], ""
        if node.id in builders and node.upstream_wheel is None:
            node.repair_note = f"built before {repairing.TOOL}, whose own build needs it"
    for node in users:
        node.repair = list(tools)
    added = []
    for comp in closure if users else []:
        known = node_id(comp.name, comp.version) in graph.nodes
        child = graph.add(comp, f"repairs native wheels after their build ({repairing.TOOL})")
        if not known:
            added.append(child)
    return added


def _ordered(graph: _Graph) -> Plan:
    """Kahn's algorithm, stable by name; what remains is a cycle."""
    nodes = graph.nodes
    done: set[str] = set()
    order: list[str] = []
    while len(done) < len(nodes):
        ready = sorted(n for n in nodes if n not in done
                       and all(d in done for d in nodes[n].deps))
        if not ready:
            left = sorted(set(nodes) - done)
            raise PlanError(
                "build-dependency cycle: " + " -> ".join(left),
                "allow a pinned upstream wheel for one member ([upstream_wheel] in its recipe) "
                "to break it",
            )
        order += ready
        done.update(ready)
    for nid in order:
        if nid in nodes[nid].env:
            raise PlanError(f"{nid} needs itself to build (and has no backend-path)",
                            "allow a pinned upstream wheel for it in its recipe")
    return Plan(nodes=nodes, order=order)


# -- dynamic requirements ---------------------------------------------------------

def _requires_cache(settings: Settings, locked: LockedComponent) -> Path:
    return settings.builds_dir / "requires" / f"{locked.sdist.sha256}.json"


def _cached_dynamic(settings: Settings, locked: LockedComponent) -> list[str] | None:
    path = _requires_cache(settings, locked)
    if not path.is_file():
        return None
    return list(json.loads(path.read_text(encoding="utf-8"))["dynamic"])


def _remember_dynamic(settings: Settings, locked: LockedComponent, dynamic: list[str],
                      image: ImageRef) -> None:
    write_json(_requires_cache(settings, locked), {
        "component": node_id(locked.name, locked.version), "dynamic": dynamic,
        "builder_image_id": image.id,
    })


def _probe_ready(settings: Settings, graph: _Graph) -> None:
    """Probe the nodes whose static environment is already built."""
    session = _Session(settings, graph.lock)
    for node in list(graph.nodes.values()):
        if node.dynamic is not None:
            continue
        env = graph.environment(replace(node, dynamic=[]))
        wheels = [session.built_wheel(c) for c in env]
        if any(w is None for w in wheels):
            continue
        inputs = session.inputs(node, [w for w in wheels if w is not None])
        result = builder.probe(settings, inputs)
        node.dynamic = result.dynamic
        _remember_dynamic(settings, node.locked, result.dynamic, inputs.image)
    _expand(graph)


# -- executing ------------------------------------------------------------------

class _Session:
    """Shared inputs of one run: recipes, kit, images, unpacked trees."""

    def __init__(self, settings: Settings, lock: Lock) -> None:
        self.settings, self.lock = settings, lock
        self.recipes: dict[str, Recipe] = load_recipes(settings)
        self._kit: Kit | None = None
        self._images: dict[tuple[str, ...], ImageRef] = {}
        self._mutex = threading.RLock()  # builds run in threads; preparation is shared

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
        tag = "-".join([locked.sdist.sha256[:32], *(sha256_file(p)[:12] for p in patches)])
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

    def built_wheel(self, locked: LockedComponent) -> Path | None:
        """The wheel the factory built from exactly this locked sdist, if any."""
        for record_path in sorted(self.settings.wheels_dir.glob("*" + RECORD_SUFFIX)):
            record = BuildRecord.load(record_path)
            wheel = record_path.with_name(record.wheel_filename)
            if (record.component == locked.key and record.version == locked.version
                    and record.source.sha256 == locked.sdist.sha256 and wheel.is_file()):
                return wheel
        return None

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
        with Upstream(index, retries=self.settings.http_retries,
                      timeout=self.settings.http_timeout) as upstream:
            offered = next((f for f in upstream.project(node.name).files
                            if f.filename == filename), None)
            if offered is None:
                raise PlanError(f"{node.name}: upstream does not offer {filename}",
                                "check [upstream_wheel] filename in its recipe")
            return upstream.download(offered.url, target, sha256=sha256, size=offered.size)

    def inputs(self, node: Node, wheels: list[Path],
               repair_wheels: list[Path] | None = None) -> builder.BuildInputs:
        locked = node.locked
        sdist, tree = self.tree(locked)
        patches = tuple({"path": str(p.name), "sha256": sha256_file(p)}
                        for p in self.patches(locked))
        recipe = self.recipes.get(locked.key)
        return builder.BuildInputs(
            name=locked.key, version=locked.version, sdist=sdist, tree=tree,
            # the record names the project normalized, however the lock row spells it
            source=replace(locked.sdist, name=locked.key),
            tools=tuple(wheels), kit=self.kit(), image=self.image(locked),
            recipe_name=recipe.path.name if recipe else locked.key,
            recipe_digest=locked.recipe_digest, patches=patches,
            upstream_wheels=tuple(w.name for w in [*wheels, *(repair_wheels or [])]
                                  if "upstream-wheels" in w.parts),
            repair_tools=tuple(repair_wheels or ()), repair_note=node.repair_note,
        )


def _up_to_date(session: _Session, inputs: builder.BuildInputs) -> BuildRecord | None:
    """The existing record when a wheel was built from the very same inputs."""
    wanted_tools = sorted([*(sha256_file(w) for w in inputs.tools),
                           *(p.sha256 for p in inputs.kit.parts)])
    repair_tools = [sha256_file(w) for w in inputs.repair_tools]
    for record_path in sorted(session.settings.wheels_dir.glob("*" + RECORD_SUFFIX)):
        record = BuildRecord.load(record_path)
        if (record.component == inputs.name and record.version == inputs.version
                and record.source.sha256 == inputs.source.sha256
                and record.recipe_digest == inputs.recipe_digest
                and record.builder_image_id == inputs.image.id
                and repairing.build_env_shas(record) == wanted_tools
                and repairing.up_to_date(record, session.settings, repair_tools)
                and record.patches == [dict(p) for p in inputs.patches]
                and record_path.with_name(record.wheel_filename).is_file()):
            return record
    return None


# How each build is run: the flows wrap it in an orchestrator task; by default
# it is simply called.
BuildWrapper = Callable[[Node, Callable[[], BuildRecord]], BuildRecord]


def _call(node: Node, build: Callable[[], BuildRecord]) -> BuildRecord:
    return build()


class _Executor:
    def __init__(self, settings: Settings, plan: Plan, concurrency: int,
                 wrap: BuildWrapper = _call) -> None:
        self.settings, self.plan, self.wrap = settings, plan, wrap
        self.concurrency = max(1, concurrency)
        self.lock = load_lock(settings)
        self.graph = _Graph(settings, self.lock)
        self.graph.nodes = plan.nodes
        self.session = _Session(settings, self.lock)
        self.done: dict[str, BuildRecord] = {}
        self.taken: dict[str, Path] = {}  # allowed upstream wheels, by node id
        self.failed: dict[str, str] = {}

    def ready(self, running: set[str]) -> list[Node]:
        for node in self.plan.nodes.values():  # taken, not built: first, and at once
            if node.upstream_wheel is not None and node.id not in self.taken | self.failed.keys():
                self._take(node)
        out = []
        for nid in sorted(self.plan.nodes):
            node = self.plan.nodes[nid]
            if nid in self.done or nid in self.taken or nid in self.failed or nid in running:
                continue
            deps = node.deps
            if any(d in self.failed for d in deps):
                bad = [d for d in deps if d in self.failed]
                what = "a build requirement" if set(bad) & set(node.env) else "a repair tool"
                self.failed[nid] = f"{what} failed: " + ", ".join(bad)
                continue
            if all(d in self.done or d in self.taken for d in deps):
                out.append(node)
        return out

    def _take(self, node: Node) -> None:
        try:
            self.taken[node.id] = self.session.upstream_wheel(node)
        except FactoryError as exc:
            self.failed[node.id] = exc.message

    def _wheel(self, nid: str) -> Path:
        if nid in self.taken:
            return self.taken[nid]
        return self.settings.wheels_dir / self.done[nid].wheel_filename

    def build(self, node: Node) -> BuildRecord:
        wheels = [self._wheel(d) for d in node.env if d != node.id]
        inputs = self.session.inputs(node, wheels, [self._wheel(d) for d in node.repair])
        existing = _up_to_date(self.session, inputs)
        if existing is not None:
            return existing
        # Only real builds go through the wrapper (an orchestrator task, say).
        return self.wrap(node, functools.partial(self._build_fresh, node, inputs))

    def _build_fresh(self, node: Node, inputs: builder.BuildInputs) -> BuildRecord:
        try:
            record = builder.build(self.settings, inputs)
        except builder.MissingRequirementsError as exc:
            node.dynamic = exc.requires.dynamic
            _remember_dynamic(self.settings, node.locked, node.dynamic, inputs.image)
            raise
        if node.dynamic is None:
            node.dynamic = list(record.builder_settings["build_requires"]["dynamic"])
            _remember_dynamic(self.settings, node.locked, node.dynamic, inputs.image)
        return record

    def grow(self, node: Node) -> None:
        """New dynamic requirements: add their nodes, and make ``node`` wait for them."""
        before = list(node.env)
        _expand(self.graph)
        if node.env == before:
            raise PlanError(f"{node.name} {node.version}: its build requirements "
                            f"{node.dynamic} are locked but still not met")
        self.plan.order = _ordered(self.graph).order

    def run(self) -> list[BuildRecord]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            running: dict[Future[BuildRecord], Node] = {}
            while True:
                for node in self.ready({n.id for n in running.values()}):
                    if len(running) >= self.concurrency:
                        break
                    running[pool.submit(self.build, node)] = node
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    self.collect(running.pop(future), future)
        return [self.done[n] for n in self.plan.order if n in self.done]

    def collect(self, node: Node, future: Future[BuildRecord]) -> None:
        try:
            self.done[node.id] = future.result()
        except builder.MissingRequirementsError:
            try:
                self.grow(node)
            except FactoryError as exc:
                self.failed[node.id] = exc.message
        except FactoryError as exc:
            self.failed[node.id] = exc.message


@dataclass
class Outcome:
    """What an execution did: records of what stands built, and what failed (why)."""

    records: list[BuildRecord]
    failed: dict[str, str]


def run_plan(settings: Settings, plan: Plan, concurrency: int | None = None,
             wrap: BuildWrapper = _call) -> Outcome:
    """Build every node of ``plan`` (independent ones concurrently); skip up-to-date ones.

    A failure stops only what depends on it; everything else is built.
    """
    executor = _Executor(settings, plan, concurrency or settings.build_concurrency, wrap)
    records = executor.run()
    return Outcome(records, dict(sorted(executor.failed.items())))


def execute(settings: Settings, plan: Plan, concurrency: int | None = None) -> list[BuildRecord]:
    """run_plan, raising one BuildError naming every node that failed."""
    outcome = run_plan(settings, plan, concurrency)
    if outcome.failed:
        detail = "; ".join(f"{nid}: {why}" for nid, why in outcome.failed.items())
        raise BuildError(f"{len(outcome.failed)} build(s) failed: {detail}")
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
