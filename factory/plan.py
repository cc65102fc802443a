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
factory/build/repair.py): auditwheel's run-time closure is then part of the
plan, and every node outside the build closure of auditwheel itself waits for
it (``Node.repair``); those inside that closure are built without it.

Dynamic requirements (``get_requires_for_build_wheel``) are learnt from builds:
a build reports what its backend asked for, the executor (factory/build/executor.py)
adds what is missing with ``regrow`` and builds again, and the answer is cached
per sdist (``remember_dynamic``) for the next plan. A backend may answer otherwise
under another interpreter (``cffi`` only under 3.13): a build for another interpreter
records its own answer beside the first build's, and that interpreter's build
environment is planned with it (``Node.dynamic_for``). The repair tools are planned
per interpreter too (``Node.repair_for``): their markers may differ.

    plan = make_plan(settings, ["requests"])
    print(plan.explain())          # every node, why it is there, its build environment
"""

from __future__ import annotations

import functools
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from factory._internal.atomic import write_json
from factory.config import REPAIR_TOOL, Settings, repair_mode
from factory.errors import FactoryError, one_line
from factory.lock import Lock, LockedComponent, load_lock, marker_environment
from factory.lock.resolve import dynamic_requires_path, recorded_dynamic
from factory.recipes import load_recipes
from factory.upstream import cache

REPAIR_NOT_LOCKED = (f"{REPAIR_TOOL} is not locked: approve recipes/{REPAIR_TOOL}.toml "
                     '(kind = "build-tool") and run `factory lock`')


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
    # what another interpreter's build (tag, cp313) recorded its backend asked for, where
    # it recorded it: that interpreter's environment is planned with it, not ``dynamic``
    dynamics: dict[str, list[str]] = field(default_factory=dict)
    env: list[str] = field(default_factory=list)  # node ids of its build environment
    reasons: list[str] = field(default_factory=list)
    self_bootstrap: str = ""  # the backend-path, when the backend builds itself
    upstream_wheel: tuple[str, str] | None = None  # (filename, sha256) a recipe allows
    repair: list[str] = field(default_factory=list)  # node ids of the repair tools (auditwheel)
    repair_note: str = ""  # why it has no repair tools, when repair is on
    # another interpreter's repair tools (cp313 -> node ids) where its markers make them
    # differ from ``repair``; or why they cannot be planned (its builds fail alone)
    repairs: dict[str, list[str]] = field(default_factory=dict)
    repair_problems: dict[str, PlanError] = field(default_factory=dict)
    problem: PlanError | None = None  # why its environment cannot be planned (fails alone)
    # Another interpreter's build environment (interpreter tag, cp313 -> node ids), where
    # its markers make it differ from ``env`` (the image's 3.11's); or why it cannot be
    # planned (that interpreter's build fails alone).
    envs: dict[str, list[str]] = field(default_factory=dict)
    env_problems: dict[str, PlanError] = field(default_factory=dict)

    @property
    def deps(self) -> list[str]:
        """The nodes built before this one: its build environment and its repair tools."""
        return [d for d in (*self.env, *self.repair) if d != self.id]

    def env_for(self, tag: str) -> list[str]:
        """Its build environment for interpreter ``tag`` (cp313); PlanError when that
        one cannot be planned."""
        if tag in self.env_problems:
            raise self.env_problems[tag]
        return self.envs.get(tag, self.env)

    def deps_for(self, tag: str) -> list[str]:
        """``deps`` of its build for interpreter ``tag``."""
        return [d for d in (*self.env_for(tag), *self.repair_for(tag)) if d != self.id]

    def repair_for(self, tag: str) -> list[str]:
        """The repair tools of its build for interpreter ``tag``; PlanError when that
        interpreter's cannot be planned."""
        if tag in self.repair_problems:
            raise self.repair_problems[tag]
        return self.repairs.get(tag, self.repair)

    def dynamic_for(self, tag: str) -> list[str] | None:
        """What its backend asks for under interpreter ``tag`` ("": the first build's):
        that interpreter's own recorded answer, else the first build's."""
        return self.dynamics.get(tag, self.dynamic) if tag else self.dynamic

    @property
    def id(self) -> str:
        return node_id(self.name, self.version)


@dataclass
class Plan:
    nodes: dict[str, Node]
    order: list[str]
    cycles: list[str] = field(default_factory=list)
    interpreters: tuple[str, ...] = ()  # [build] interpreters, when more than the image's

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
            for tag, asked in sorted(node.dynamics.items()):
                if asked != node.dynamic:
                    lines.append(f"       dynamic requires for {tag}: "
                                 f"{', '.join(asked) or 'none'}")
            for tag, env in sorted(node.envs.items()):
                lines.append(f"       build env for {tag}: {', '.join(env) or 'empty'}")
            for tag, problem in sorted(node.env_problems.items()):
                lines.append(f"       cannot be built for {tag}: "
                             + problem.diagnostics().removeprefix("error: "))
            if node.problem:
                lines.append("       cannot be built: "
                             + node.problem.diagnostics().removeprefix("error: "))
        for cycle in self.cycles:
            lines.append(f"cycle broken: {cycle}")
        lines += self._explain_repair()
        if len(self.interpreters) > 1:
            lines.append(f"interpreters: {', '.join(self.interpreters)}; a component is "
                         "built first with 3.11, or with the first other one its sdist's "
                         "Requires-Python admits when it excludes 3.11; one whose first wheel "
                         "is native (cp311-cp311, not abi3) is built again for each other one "
                         "its Requires-Python admits (said in the run's summary when it is "
                         "not), with the build tools' wheels for that interpreter; pure and "
                         "abi3 wheels are built once")
        return "\n".join(lines)

    @property
    def problems(self) -> dict[str, str]:
        """Node id -> why it cannot be planned (the rest of the plan stands)."""
        return {nid: node.problem.diagnostics().removeprefix("error: ")
                for nid, node in self.nodes.items() if node.problem}

    def _explain_repair(self) -> list[str]:
        found = next((n for n in self.nodes.values() if n.repair), None)
        tools = found.repair if found else []
        notes: dict[str, list[str]] = {}
        for nid in self.order:
            if self.nodes[nid].repair_note:
                notes.setdefault(self.nodes[nid].repair_note, []).append(nid)
        lines = []
        if tools:
            lines.append("native wheels are repaired to a manylinux tag after their build with "
                         + ", ".join(tools))
        for tag, other in sorted(found.repairs.items()) if found else ():
            lines.append(f"  for {tag} with {', '.join(other) or 'nothing'}")
        for tag, problem in sorted(found.repair_problems.items()) if found else ():
            lines.append(f"  not repaired for {tag}: "
                         + problem.diagnostics().removeprefix("error: "))
        lines += [f"not repaired ({note}): {', '.join(ids)}" for note, ids in notes.items()]
        return lines


@functools.lru_cache(maxsize=65536)
def _requirement(line: str) -> Requirement | None:
    """``line`` parsed, or None: a catalogue's plan meets each line hundreds of times.
    Callers only read what it returns."""
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None


@functools.lru_cache(maxsize=65536)  # asked for every dependency of every node, each round
def node_id(name: str, version: str) -> str:
    return f"{canonicalize_name(name)}=={version}"


def python_tag(version: str) -> str:
    """``cp313`` for CPython ``3.13``: how a build for it is named."""
    return "cp" + version.replace(".", "")


# -- building the graph ---------------------------------------------------------

class _Graph:
    """The lock, the marker environment and the nodes found so far."""

    def __init__(self, settings: Settings, lock: Lock, repair: bool = True) -> None:
        self.settings, self.lock = settings, lock
        self.repair = repair and repair_mode(settings.build_repair) == REPAIR_TOOL
        self.markers = marker_environment(settings)
        # the other interpreters' marker environments by tag (cp313): a build for one of
        # them has its own environment where a marker says so
        self.others = {python_tag(v): marker_environment(settings, v)
                       for v in settings.pythons[1:]}
        self.versions = {python_tag(v): v for v in settings.pythons[1:]}  # cp313 -> 3.13
        # a locked row's sdist Requires-Python, read once per plan (node id -> text)
        self._requires_python: dict[str, str | None] = {}
        self.nodes: dict[str, Node] = {}
        self.recipes = load_recipes(settings) if settings.recipes_dir.is_dir() else {}
        # (line, extras, interpreter tag) -> whether it applies: markers are fixed
        self._applies: dict[tuple[str, frozenset[str], str], bool] = {}

    def requirements(self, lines: list[str] | tuple[str, ...], origin: str,
                     extras: frozenset[str] = frozenset(), tag: str = "") -> list[Requirement]:
        """The requirements of ``lines`` that apply for interpreter ``tag`` (default:
        the image's 3.11)."""
        markers = self.others[tag] if tag else self.markers
        found = []
        for line in lines:
            req = _requirement(line)
            if req is None:
                raise PlanError(f"{origin}: invalid requirement {line!r}")
            applies = self._applies.get((line, extras, tag))
            if applies is None:
                try:
                    applies = req.marker is None or any(
                        req.marker.evaluate({**markers, "extra": e}) for e in ("", *extras))
                except (ValueError, KeyError):  # KeyError: a name the environment lacks
                    raise PlanError(f"{origin}: requirement {line!r} has a marker that cannot "
                                    "be evaluated") from None
                self._applies[(line, extras, tag)] = applies
            if applies:
                found.append(req)
        return found

    def add(self, locked: LockedComponent, reason: str) -> Node:
        nid = node_id(locked.name, locked.version)
        node = self.nodes.get(nid)
        if node is None:
            node = Node(locked.name, locked.version, locked.kind, locked,
                        static=[*locked.build_requires, *locked.build_pins])
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
                node.dynamics = {tag: found for tag in self.others if (
                    found := recorded_dynamic(self.settings, locked, tag)) is not None}
            self.nodes[nid] = node
        if reason not in node.reasons:
            node.reasons.append(reason)
        return node

    def environment(self, node: Node, tag: str = "") -> list[LockedComponent]:
        """The locked components of ``node``'s build environment (a fixed point) for
        interpreter ``tag`` (default: the image's 3.11)."""
        origin = f"{node.name} {node.version}" + (f" for {tag}" if tag else "")
        wanted: dict[str, list[Requirement]] = {}
        queue = self.requirements([*node.static, *(node.dynamic_for(tag) or [])], origin,
                                  tag=tag)
        chosen: dict[str, LockedComponent] = {}
        while queue:
            req = queue.pop(0)
            key = canonicalize_name(req.name)
            wanted.setdefault(key, []).append(req)
            pick = self._pick(key, wanted[key], node, tag)
            if chosen.get(key) is pick:
                continue
            chosen[key] = pick
            extras = frozenset().union(*(r.extras for r in wanted[key]))
            queue += self.requirements(pick.requires_dist, f"{pick.name} {pick.version}", extras,
                                       tag)
        return sorted(chosen.values(), key=lambda c: c.key)

    def _pick(self, key: str, reqs: list[Requirement], node: Node,
              tag: str = "") -> LockedComponent:
        spec = reqs[0].specifier
        for req in reqs[1:]:
            spec &= req.specifier
        found = self._newest_admitted(key, spec, tag)
        if found is None:
            asked = "; ".join(str(r) for r in reqs)
            raise PlanError(
                f"{node.name} {node.version} needs {asked} to build"
                + (f" for {tag}" if tag else "") + ", and no locked version satisfies it",
                f"widen versions in recipes/{key}.toml and run `factory lock`"
                if key in self.recipes else
                f"approve it with `factory add \"{key}{spec}\"` (it writes the recipe and locks)",
            )
        return found


    def _newest_admitted(self, key: str, spec: SpecifierSet, tag: str) -> LockedComponent | None:
        """The newest locked row of ``key`` satisfying ``spec`` whose sdist's
        Requires-Python admits interpreter ``tag``; the newest satisfying it when none
        does (that build then fails and says why). The lock keeps an older row every
        interpreter admits beside a newer one for build environments
        (factory.lock.resolve.serve_every_interpreter). Only where there is such a
        choice is an sdist read (and fetched when it is not cached)."""
        newest = self.lock.find(key, spec)
        if newest is None or len(self.settings.pythons) < 2:
            return newest
        others = [c for c in self.lock.components if c.key == key and c is not newest
                  and spec.contains(c.version, prereleases=True)]
        if not others:
            return newest
        python = self.versions.get(tag, self.settings.python_version)
        if self._admits(newest, python):
            return newest
        older = [c for c in others if self._admits(c, python)]
        return max(older, key=lambda c: Version(c.version), default=newest)

    def _admits(self, locked: LockedComponent, python: str) -> bool:
        nid = node_id(locked.name, locked.version)
        if nid not in self._requires_python:
            self._requires_python[nid] = _sdist_requires_python(self.settings, locked)
        requires = self._requires_python[nid]
        if requires is _UNFETCHABLE:
            return False  # its own build cannot fetch it either: an older row serves
        try:
            return not requires or SpecifierSet(requires).contains(python, prereleases=True)
        except InvalidSpecifier:
            return False


_UNFETCHABLE = "\0unfetchable"  # no Requires-Python reads so: not a specifier


def _sdist_requires_python(settings: Settings, locked: LockedComponent) -> str | None:
    """The verified sdist's Requires-Python (bounded reads of PKG-INFO or pyproject),
    fetched when it is not cached yet: one not cached (another machine, a cleared cache,
    an intake run that fetched only what it names) was taken to admit every interpreter,
    and 3.11's environment got a row whose build then refuses 3.11. None: it says none;
    _UNFETCHABLE: it cannot be had (the executor's fetch of it fails the same way)."""
    from factory.build.variants import sdist_requires_python  # it imports this module

    try:
        return sdist_requires_python(cache.fetch(settings, locked.sdist))
    except FactoryError:
        return _UNFETCHABLE


def _backend_path(settings: Settings, locked: LockedComponent) -> str:
    """The backend-path of a backend that builds itself, read from the cached sdist."""
    path = cache.cache_path(settings, locked.sdist.sha256, locked.sdist.filename)
    if not path.is_file():
        return ""
    return str(cache.remembered(path, "backend-path-1", lambda: _read_backend_path(path)))


def _read_backend_path(path: Path) -> str:
    raw = cache.read_member(path, "pyproject.toml")
    if raw is None:
        return ""
    try:
        system = tomllib.loads(raw.decode("utf-8")).get("build-system", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return ""
    if system.get("backend-path") and not system.get("requires"):
        return json.dumps(system["backend-path"])
    return ""


def make_plan(settings: Settings, names: list[str] | None = None) -> Plan:
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
    _add_users_rows(graph, names)
    _expand(graph)
    plan = _ordered(graph)
    plan.interpreters = tuple(settings.build_interpreters)
    return plan


def _add_users_rows(graph: _Graph, names: list[str] | None) -> None:
    """Add the locked rows a user on each configured interpreter installs that the
    approved rows are not: a version a requirement pins below the approved one, and,
    where the newest version excludes an interpreter, the lock
    keeps the newest one it admits beside it (django 5.2 for 3.11 beside 6.1), and
    that row's own runtime requirements (factory.lock.resolve.serve_each_interpreter).
    Walked as pip there walks the index: from each approved project (or each of
    ``names``), through Requires-Dist under that interpreter's markers, taking the
    newest locked row it admits. With one interpreter too: a requirement the approved
    row does not satisfy (``newhelper<1`` beside an approved 1.0) has its own row."""
    by_key = graph.lock.by_key()
    roots = ([c.key for c in graph.lock.components if c.is_primary] if names is None
             else [canonicalize_name(n) for n in names])
    for tag in ("", *graph.others):
        who = f"a user on {graph.versions.get(tag, graph.settings.python_version)}"
        queue = [(key, SpecifierSet(), frozenset[str](), "approved") for key in roots]
        seen: set[tuple[str, frozenset[str]]] = set()
        while queue:
            key, spec, extras, origin = queue.pop()
            rows = by_key.get(key)
            if not rows:
                continue  # not locked: not approved, nothing of it to build
            for row in rows[:1] if len(rows) == 1 else _users_pick(graph, rows, spec, tag):
                if (node_id(row.name, row.version), extras) in seen:
                    continue
                seen.add((node_id(row.name, row.version), extras))
                if not row.is_primary:  # approved rows are planned when asked for
                    graph.add(row, f"{origin}, for {who}")
                here = f"{row.name} {row.version}"
                for line in row.requires_dist:
                    try:
                        found = graph.requirements([line], here, extras, tag)
                    except PlanError:  # pip cannot read it either; the lock left it out
                        continue
                    queue += [(canonicalize_name(req.name), req.specifier, frozenset(req.extras),
                               f"runtime requirement of {here}") for req in found]


def _users_pick(graph: _Graph, rows: list[LockedComponent], spec: SpecifierSet,
                tag: str) -> list[LockedComponent]:
    """The rows of one project pip on interpreter ``tag`` may take for ``spec``: the
    newest it admits (the newest when none does), and any newer one whose sdist cannot be
    had. That one is planned so that its build says why in one line: taken to admit
    nothing, it left the row the lock kept for this interpreter out of the plan unseen."""
    if len(graph.settings.pythons) < 2:
        newest = graph.lock.find(rows[0].key, spec)
        return [newest] if newest is not None else []
    python = graph.versions.get(tag, graph.settings.python_version)
    unread: list[LockedComponent] = []
    for row in sorted((c for c in rows if spec.contains(c.version, prereleases=True)),
                      key=lambda c: Version(c.version), reverse=True):
        if graph._admits(row, python):
            return [*unread, row]
        if graph._requires_python.get(node_id(row.name, row.version)) == _UNFETCHABLE:
            unread.append(row)
    newest = graph.lock.find(rows[0].key, spec)
    return [*unread, *([newest] if newest is not None and newest not in unread else [])]


def regrow(settings: Settings, lock: Lock, plan: Plan, node: Node,
           built_with: list[str], tag: str = "", tried: Sequence[list[str]] = ()) -> None:
    """Add to ``plan`` what ``node``'s build reported it needs (its new ``dynamic``
    requirements), transitively, and order it again; ``node`` then waits for them.

    ``built_with`` is the environment that build ran in (for interpreter ``tag``;
    default: the image's 3.11). It is compared, not the node's environment now:
    another node's regrow may already have grown this one (both builds learnt at
    once), and that is progress, not a build that lies. ``tried``: the environments
    its earlier builds in this run ran in and asked more of.

    Raises PlanError when nothing was added: the requirements are locked, in the
    environment it was built in, and its build still said they were not met; or when
    the new environment is one an earlier build already ran in (a backend whose answer
    flips between builds would otherwise be built again for ever).
    """
    graph = _Graph(settings, lock)
    graph.nodes = plan.nodes
    _expand(graph)
    if node.problem:
        raise node.problem
    now = node.env_for(tag) if tag else node.env
    asked = ", ".join(node.dynamic_for(tag) or ()) or "nothing"
    where = f" for {tag}" if tag else ""
    if now == built_with:
        raise PlanError(f"{node.name} {node.version}: its build requirements{where} "
                        f"({one_line(asked, 400)}) are locked but still not met")
    if now in tried:
        raise PlanError(
            f"{node.name} {node.version}: its backend's answer to get_requires_for_build_wheel"
            f"{where} changes from build to build (now {one_line(asked, 400)}), back to an "
            "environment an earlier build of this run already ran in",
            "the backend is not deterministic: name what it needs in its recipe's build "
            "requirements, or report it upstream")
    plan.order = _ordered(graph).order


def _expand(graph: _Graph) -> None:
    """Add the environment of every node, transitively, and the repair tools."""
    pending = list(graph.nodes.values())
    while pending:
        _expand_env(graph, pending)
        pending = _attach_repair(graph)


def _expand_env(graph: _Graph, pending: list[Node]) -> None:
    while pending:
        node = pending.pop(0)
        try:
            env = graph.environment(node)
        except PlanError as exc:  # this node alone: what needs it waits, the rest is planned
            node.problem = exc
            continue
        node.problem = None
        node.env = [node_id(c.name, c.version) for c in env]
        node.envs, node.env_problems = {}, {}
        for tag in graph.others:
            try:
                other = graph.environment(node, tag)
            except PlanError as exc:  # that interpreter's build alone fails
                node.env_problems[tag] = exc
                continue
            if [node_id(c.name, c.version) for c in other] != node.env:
                node.envs[tag] = [node_id(c.name, c.version) for c in other]
                env += [c for c in other if c not in env]
        for comp in env:
            if node_id(comp.name, comp.version) == node.id:
                continue  # a self-requirement is a cycle; _ordered reports it
            known = node_id(comp.name, comp.version) in graph.nodes
            child = graph.add(comp, f"in the build environment of {node.name} {node.version}")
            if not known:
                pending.append(child)


@dataclass
class _RepairClosure:
    """auditwheel's run-time closure per interpreter ("": the image's 3.11; another tag
    where its markers make it differ, or why it cannot be planned), and the ids of every
    node needed to build any of them."""

    closure: list[LockedComponent]
    others: dict[str, list[LockedComponent]]
    problems: dict[str, PlanError]
    builders: set[str]


def _repair_closure(graph: _Graph) -> _RepairClosure | None:
    tool = graph.lock.find(REPAIR_TOOL)
    if tool is None:
        return None
    scratch = _Graph(graph.settings, graph.lock, repair=False)
    wanted = Node(tool.name, tool.version, tool.kind, tool, static=[f"{tool.key}=={tool.version}"],
                  dynamic=[])
    closure = graph.environment(wanted)
    others: dict[str, list[LockedComponent]] = {}
    problems: dict[str, PlanError] = {}
    for tag in graph.others:  # a tool's dependency may be marked for 3.12+ only
        try:
            other = graph.environment(wanted, tag)
        except PlanError as exc:  # that interpreter's native builds alone fail
            problems[tag] = exc
            continue
        if other != closure:
            others[tag] = other
    for comp in [*closure, *(c for other in others.values() for c in other)]:
        scratch.add(comp, "")
    _expand(scratch)
    return _RepairClosure(closure, others, problems, set(scratch.nodes))


def _attach_repair(graph: _Graph) -> list[Node]:
    """Make the nodes that may produce a native wheel wait for auditwheel; the new nodes."""
    if not graph.repair:
        return []
    found = _repair_closure(graph)
    if found is None:
        for node in graph.nodes.values():
            node.repair, node.repair_note = [], REPAIR_NOT_LOCKED
            node.repairs, node.repair_problems = {}, {}
        return []
    builders = found.builders
    tools = [node_id(c.name, c.version) for c in found.closure]
    others = {tag: [node_id(c.name, c.version) for c in other]
              for tag, other in found.others.items()}
    users = [n for n in graph.nodes.values() if n.id not in builders and n.upstream_wheel is None]
    for node in graph.nodes.values():
        node.repair, node.repair_note, node.repairs, node.repair_problems = [], "", {}, {}
        if node.id in builders and node.upstream_wheel is None:
            node.repair_note = f"built before {REPAIR_TOOL}, whose own build needs it"
    for node in users:
        node.repair = list(tools)
        node.repairs = {tag: list(ids) for tag, ids in others.items()}
        node.repair_problems = dict(found.problems)
    added = []
    every = [*found.closure, *(c for other in found.others.values() for c in other
                               if c not in found.closure)]
    for comp in every if users else []:
        known = node_id(comp.name, comp.version) in graph.nodes
        child = graph.add(comp, f"repairs native wheels after their build ({REPAIR_TOOL})")
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

def _cached_dynamic(settings: Settings, locked: LockedComponent) -> list[str] | None:
    return recorded_dynamic(settings, locked)  # the lock reads them too


def remember_dynamic(settings: Settings, locked: LockedComponent, dynamic: list[str],
                     image_id: str, tag: str = "") -> None:
    """Cache what a build of ``locked`` reported its backend asked for: its first
    build's (``tag`` ""; the record as it has always been), or a build's for interpreter
    ``tag`` (cp313), in a record of its own beside it."""
    record: dict[str, object] = {
        "component": node_id(locked.name, locked.version), "dynamic": dynamic,
        "builder_image_id": image_id,
    }
    if tag:
        record["interpreter"] = tag
    write_json(dynamic_requires_path(settings, locked, tag), record)
