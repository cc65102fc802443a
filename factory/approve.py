"""Approve: recipes for named projects and everything they need (``factory add``).

``propose`` walks upstream from the requirements asked for: the runtime closure
(Requires-Dist, markers evaluated for the builder's interpreter, extras followed)
and the build closure (``[build-system].requires``, and the runtime requirements
of build tools), recursively, down to what is already approved. For each project
not approved yet it takes the newest release policy allows whose own requirements
upstream can meet, reads its license and judges it against the site policy
(factory.license). ``add`` writes one recipe per project that passes, never over
an existing file, and then locks once.

Nothing outside policy is approved silently: a project whose license is outside
the site policy or unreadable, that upstream does not have or offers no sdist of,
or whose requirements cannot be met, is reported as needing a human, and so is
everything that needs it (those recipes are not written).

Build requirements a backend asks for only when it runs (``get_requires_for_build_wheel``)
are learnt from builds: a build that needs one that is not approved fails naming
it, and ``factory add NAME`` approves it then.

    report = add(settings, ["flask>=3", "cffi"])
    for proposed in report.added: ...
    for problem in report.needs_human: ...
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import tomli_w
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from factory._internal.atomic import write_text
from factory._internal.graphs import held_back
from factory.admission import admit_sdist
from factory.admission.model import AdmissionError
from factory.config import REPAIR_TOOL, Settings, repair_mode
from factory.errors import FactoryError, PolicyError, RecipeError, UpstreamError, printable
from factory.license import allowed_ids, judge
from factory.lock import lock_report, marker_environments, parse_requirements
from factory.lock.model import Problem as LockProblem
from factory.lock.policy import MAX_PASSED, Context, Skipped, select_version, why_passed, without
from factory.lock.resolve import sdist_requirements
from factory.recipes import Recipe, check_recipes
from factory.upstream import cache
from factory.upstream.advisories import for_settings
from factory.upstream.cache import Sdist
from factory.upstream.client import Upstream, open_upstream
from factory.upstream.listing import ProjectListing, UpstreamFile, is_project_name

MAX_PROJECTS = 2000  # a closure this large is a mistake, not a catalogue
RUNTIME, BUILD_TOOL = "runtime", "build-tool"


@dataclass
class Proposed:
    """A recipe ``add`` writes: the project, the release it would take, and why."""

    key: str
    version: str
    versions: str  # the recipe's range
    kind: str
    licenses: tuple[str, ...]
    license: str
    description: str
    reasons: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    dynamic_requires_dist: bool = False
    allow_prebuilt: tuple[str, ...] = ()  # what a human reviewed (a catalogue's [[reviewed]])

    def recipe_text(self, asked: str) -> str:
        table: dict[str, object] = {"name": self.key, "description": self.description,
                                    "versions": self.versions,
                                    "track": "minor" if self.kind == RUNTIME else "any",
                                    "kind": self.kind, "licenses": list(self.licenses)}
        if self.allow_prebuilt:
            table["allow_prebuilt"] = list(self.allow_prebuilt)
        header = (f"# Added by `factory add {asked}` on {datetime.now(UTC):%Y-%m-%d}: "
                  f"{printable(self.reasons[0], keep='')[:160]}\n"
                  f"# License read as {printable(self.license, keep='')[:100]} "
                  f"(within the site policy); took {self.version}.\n")
        return header + tomli_w.dumps(table)


@dataclass(frozen=True)
class NeedsHuman:
    """A project ``add`` will not approve by itself, why, and who needs it."""

    key: str
    problem: str
    hint: str
    needed_by: tuple[str, ...] = ()


@dataclass
class AddReport:
    added: list[Proposed] = field(default_factory=list)
    needs_human: list[NeedsHuman] = field(default_factory=list)
    held_back: list[tuple[Proposed, str]] = field(default_factory=list)  # waits for a human
    approved_already: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    lock_problems: list[LockProblem] = field(default_factory=list)
    locked: int | None = None  # components in the lock after locking; None: not locked

    @property
    def ok(self) -> bool:
        return not (self.needs_human or self.held_back or self.lock_problems)


def parse_asked(items: Iterable[str]) -> list[Requirement]:
    """``NAME[SPEC]`` arguments as requirements; an error names the bad one."""
    asked = []
    for item in items:
        try:
            req = Requirement(item)
        except InvalidRequirement:
            raise RecipeError(f"{printable(item)[:80]!r} is not NAME or NAME<specifier>",
                              'write e.g. factory add "flask>=3,<4" cffi') from None
        if not is_project_name(req.name) or req.url or req.marker:
            raise RecipeError(f"{printable(item)[:80]!r} is not a project name with an "
                              "optional version range", 'write e.g. factory add "flask>=3"')
        asked.append(req)
    if not asked:
        raise RecipeError("name at least one project", 'e.g. factory add "flask>=3" cffi')
    return asked


@dataclass(frozen=True)
class Catalogue:
    """An optional catalogue file: projects to add, and what a human reviewed for
    some (``[[reviewed]]``: prebuilt files a project may ship, and why)."""

    items: list[str]
    reviewed: dict[str, tuple[str, ...]]  # project -> allow_prebuilt globs


def read_catalogue(path: Path) -> Catalogue:
    """``[[project]]`` tables (a ``name``, maybe ``versions``) and ``[[reviewed]]`` tables
    (a ``name``, ``allow_prebuilt`` globs and a ``why``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{path}: not a readable TOML catalogue ({type(exc).__name__})",
                          "give a file like catalogues/top-pypi.toml") from None
    rows, reviewed = data.get("project", []), data.get("reviewed", [])
    if not isinstance(rows, list) or not all(
            isinstance(r, dict) and isinstance(r.get("name"), str)
            and isinstance(r.get("versions", ""), str) for r in rows):
        raise RecipeError(f"{path}: expected [[project]] tables with a name",
                          'each entry: [[project]] name = "flask" (versions = ">=3" optional)')
    if not isinstance(reviewed, list) or not all(
            isinstance(r, dict) and is_project_name(r.get("name"))
            and isinstance(r.get("why"), str) and r["why"].strip()
            and isinstance(r.get("allow_prebuilt"), list)
            and all(isinstance(g, str) and g for g in r["allow_prebuilt"]) for r in reviewed):
        raise RecipeError(f"{path}: expected [[reviewed]] tables with a name, allow_prebuilt "
                          "and why", 'e.g. [[reviewed]] name = "wheel" allow_prebuilt = '
                          '["tests/testdata/*"] why = "test data the build does not read"')
    return Catalogue([f"{r['name']}{r.get('versions', '')}" for r in rows],
                     {canonicalize_name(r["name"]): tuple(r["allow_prebuilt"])
                      for r in reviewed})


class _Walk:
    """One walk of upstream from the requirements asked for.

    Like the lock, it takes for each project the newest release policy allows (within
    the range asked for, if it was asked for), plus, for each requirement that release
    does not satisfy, the newest release that does: several versions of one project
    when its dependents disagree (a build tool pinned by one, and a newer one wanted
    by another). The recipe's range covers every release taken."""

    def __init__(self, settings: Settings, recipes: dict[str, Recipe],
                 upstream: Upstream, reviewed: dict[str, tuple[str, ...]] | None = None,
                 ) -> None:
        self.settings, self.recipes, self.upstream = settings, recipes, upstream
        self.reviewed = reviewed or {}
        self.envs = marker_environments(settings)
        self.asked: dict[str, SpecifierSet] = {}
        self.wanted: dict[str, list[Requirement]] = {}
        self.extras: dict[str, set[str]] = {}
        self.edges: dict[str, set[tuple[str, str]]] = {}  # parent -> (child, build|runtime)
        self.proposed: dict[str, Proposed] = {}
        self.taken: dict[str, list[str]] = {}  # key -> every version taken (primary first)
        self.problems: dict[str, NeedsHuman] = {}
        self.already: set[str] = set()
        self.requirements: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._listings: dict[str, ProjectListing] = {}
        self.first_reason: dict[str, str] = {}
        self.advisories, self.advisories_problem = for_settings(settings)

    def run(self, asked: list[Requirement],
            tools: Iterable[tuple[Requirement, str]] = ()) -> None:
        """Walk from ``asked`` and from ``tools`` (what every build needs: the build
        front end, the repair tool), which are build tools, not asked for."""
        queue: list[str] = []
        for req in asked:
            name = canonicalize_name(req.name)
            self.asked[name] = self.asked.get(name, SpecifierSet()) & req.specifier
            self._want(req, "asked for", queue)
        for req, why in tools:
            self._want(req, why, queue)
        while queue:
            key = queue.pop(0)
            if len(self.proposed) + len(self.problems) > MAX_PROJECTS:
                raise PolicyError(f"the closure passed {MAX_PROJECTS} projects",
                                  "add fewer projects at a time")
            self._visit(key, queue)

    def _want(self, req: Requirement, why: str, queue: list[str]) -> None:
        key = canonicalize_name(req.name)
        self.wanted.setdefault(key, []).append(req)
        new_extras = set(req.extras) - self.extras.setdefault(key, set())
        self.extras[key] |= set(req.extras)
        if key in self.recipes:
            self.already.add(key)
            return
        self.first_reason.setdefault(key, why)
        if key in self.proposed:
            self.proposed[key].reasons.append(why)
            met = any(req.specifier.contains(v, prereleases=True) for v in self.taken[key])
            if (not met or new_extras) and key not in queue:
                queue.append(key)  # another release for this requirement, or new extras
        elif key not in self.problems and key not in queue:
            queue.append(key)

    def _listing(self, key: str) -> ProjectListing:
        if key not in self._listings:
            if len(self._listings) >= MAX_PROJECTS:  # one release naming 10,000 projects
                raise PolicyError(f"the closure passed {MAX_PROJECTS} projects",
                                  "add fewer projects at a time")
            self._listings[key] = self.upstream.project(key)
        return self._listings[key]

    def _visit(self, key: str, queue: list[str]) -> None:
        try:
            listing = self._listing(key)
        except UpstreamError as exc:
            self._problem(key, exc.message, "check the name (a typo?) or the upstream index")
            return
        if not listing.sdists():
            self._problem(key, "upstream offers no sdist of it (only wheels)",
                          "build tools may use a pinned upstream wheel (upstream_wheel in "
                          "the recipe); anything else needs its source")
            return
        base = self.asked.get(key, SpecifierSet())
        if key not in self.proposed:
            chosen = self._choose(key, listing, base)
            if chosen is None and key not in self.asked and self.wanted.get(key):
                # nothing policy takes unasked (only pre-releases, say): what the
                # first dependent asks for, if policy takes that
                first = self.problems.pop(key)
                chosen = self._choose(key, listing, self.wanted[key][0].specifier)
                if chosen is None:
                    self.problems[key] = first
            if chosen is None:
                return
            chosen.reasons.append(self.first_reason.get(key, "needed"))
            self.proposed[key], self.taken[key] = chosen, [chosen.version]
            chosen.versions = self._range(key)
            self._follow(key, chosen.version, queue)
        elif self.extras.get(key):
            for version in self.taken[key]:  # extras asked for since: follow them too
                self._follow(key, version, queue)
        for req in list(self.wanted.get(key, [])):
            if any(req.specifier.contains(v, prereleases=True) for v in self.taken[key]):
                continue
            extra = self._choose(key, listing, base & req.specifier)
            if extra is None:
                return
            self.taken[key].append(extra.version)
            primary = self.proposed[key]
            primary.versions = self._range(key)
            primary.licenses = tuple(dict.fromkeys(primary.licenses + extra.licenses))
            self._follow(key, extra.version, queue)

    def _choose(self, key: str, listing: ProjectListing, spec: SpecifierSet) -> Proposed | None:
        probe = Recipe(name=key, versions=spec, path=Path(f"recipes/{key}.toml"), digest="",
                       track="any")
        passed: list[Skipped] = []
        while len(passed) <= MAX_PASSED:
            try:
                sel = select_version(probe, listing.sdists(),
                                     self._context(without(spec, passed) or spec))
            except PolicyError as exc:
                detail = why_passed(passed) or exc.message
                self._problem(key, f"no release can be approved ({detail})",
                              "widen the range asked for, or approve what it needs by hand")
                return None
            try:
                proposed = self._read(key, sel.file, sel.version)
            except FactoryError as exc:
                passed.append(Skipped(str(sel.version), exc.message))
                continue
            unmet = self._unmet(key, str(sel.version))
            if unmet is None:
                proposed.skipped = passed
                return proposed
            passed.append(Skipped(str(sel.version), unmet))
        self._problem(key, f"no release can be approved ({why_passed(passed)})",
            "approve what it needs by hand, or pin an older range")
        return None

    def _context(self, spec: SpecifierSet) -> Context:
        return Context(now=datetime.now(UTC), cooldown_days=self.settings.cooldown_days,
                       pythons=self.settings.pythons, advisories=self.advisories,
                       extra=spec)

    def _read(self, key: str, file: UpstreamFile, version: Version) -> Proposed:
        size = file.size if file.size is not None else self.upstream.size_of(file.url)
        if not file.sha256 or size is None:
            raise UpstreamError(f"upstream gives no sha256 or size for {file.filename}")
        pin = Sdist.from_listing(file, key, str(version), size=size)
        path = cache.fetch(self.settings, pin, self.upstream)
        self.requirements[(key, str(version))] = sdist_requirements(path, file.filename)
        meta = cache.read_metadata(path)
        verdict = judge(meta.license_expression if meta else None,
                        meta.license if meta else None, meta.classifiers if meta else (),
                        self.settings.allowed_licenses)
        proposed = Proposed(
            key=key, version=str(version), versions="", kind=RUNTIME,
            # only what the policy allows: the recipe's list is what fetch then checks,
            # so a release relicensed to the other side of an OR goes to a human
            licenses=allowed_ids(verdict.licenses, self.settings.allowed_licenses),
            license=verdict.expression or "unknown",
            description=printable(meta.summary if meta else "", keep="")[:120],
            dynamic_requires_dist="requires-dist" in (meta.dynamic if meta else ()))
        if not verdict.allowed:
            self._license_problem(key, str(version), verdict.problem or "license")
        allowed = self.reviewed.get(key, ())
        try:  # prebuilt files in the source: a human decides whether the build uses them
            used = admit_sdist(path, Recipe(name=key, versions=SpecifierSet(), digest="",
                                            path=self.settings.recipes_dir / f"{key}.toml",
                                            allow_prebuilt=allowed))
            proposed.allow_prebuilt = allowed if used else ()
        except AdmissionError as exc:
            self.problems.setdefault(key, NeedsHuman(key, f"{version}: {exc.message}",
                                                     exc.hint))
        return proposed

    def _range(self, key: str) -> str:
        """The range asked for, else from the oldest release taken on (the lock takes the
        newest in range, and the older ones for the requirements that need them)."""
        asked = str(self.asked.get(key, ""))
        oldest = min((Version(v) for v in self.taken.get(key, [])), default=None)
        return asked or (f">={oldest}" if oldest is not None else "")

    def _license_problem(self, key: str, version: str, problem: str) -> None:
        self.problems[key] = NeedsHuman(
            key, f"{version}: {problem}",
            f"review it; approve it by writing recipes/{key}.toml with its licenses, or "
            "widen [policy] licenses in factory.toml")

    def _parsed(self, key: str, version: str) -> list[tuple[Requirement, str]]:
        build, runtime = self.requirements[(key, version)]
        origin = f"{key} {version}"
        found = [(r, "build") for r in parse_requirements(build, self.envs, origin)]
        found += [(r, "runtime") for r in parse_requirements(
            runtime, self.envs, origin, self.extras.get(key, ()))]
        return found

    def _unmet(self, key: str, version: str) -> str | None:
        """Why the requirements of ``key``'s candidate can never be met, or None."""
        try:
            parsed = self._parsed(key, version)
        except FactoryError as exc:
            return exc.message
        for req, kind in parsed:
            child = canonicalize_name(req.name)
            if child in self.recipes or child == key:
                continue
            try:
                listing = self._listing(child)
            except UpstreamError as exc:
                if "does not know" in exc.message:
                    return f"needs {req} ({kind}), which upstream does not have"
                continue
            if not listing.offers(req.specifier):
                return f"needs {req} ({kind}), which upstream has no sdist of"
        return None

    def _follow(self, key: str, version: str, queue: list[str]) -> None:
        for req, kind in self._parsed(key, version):
            child = canonicalize_name(req.name)
            if child == key:
                continue  # a project's extras naming itself
            self.edges.setdefault(key, set()).add((child, kind))
            self._want(req, f"{kind} requirement of {key} {version} ({req})", queue)

    def _problem(self, key: str, problem: str, hint: str) -> None:
        self.problems.setdefault(key, NeedsHuman(key, problem, hint))


def _kinds(walk: _Walk, roots: set[str]) -> dict[str, str]:
    """Runtime: reached from what was asked for through runtime requirements only;
    everything else the walk found is a build tool (or a build tool's dependency)."""
    runtime, stack = set(roots), list(roots)
    while stack:
        for child, kind in walk.edges.get(stack.pop(), ()):
            if kind == "runtime" and child not in runtime:
                runtime.add(child)
                stack.append(child)
    return {key: RUNTIME if key in runtime else BUILD_TOOL for key in walk.proposed}


def _blocked(walk: _Walk) -> dict[str, str]:
    """Proposed projects that need (transitively) one that needs a human -> which one."""
    needs = {key: [child for child, _ in walk.edges.get(key, ())] for key in walk.proposed}
    return held_back(needs, set(walk.problems))


def _needed_by(walk: _Walk, key: str) -> tuple[str, ...]:
    return tuple(sorted(parent for parent, children in walk.edges.items()
                        if any(child == key for child, _ in children)))


def _every_build_needs(settings: Settings) -> list[tuple[Requirement, str]]:
    """The build front end's tools, and the repair tool when native wheels are repaired:
    no recipe names them, every build needs them."""
    from factory.build.env import KIT_TOOLS  # here: the build package is costly to import

    tools = [(Requirement(t), "the build front end needs it") for t in KIT_TOOLS]
    if repair_mode(settings.build_repair) == REPAIR_TOOL:
        tools.append((Requirement(REPAIR_TOOL), "repairs native wheels ([build] repair)"))
    return tools


def propose(settings: Settings, asked: list[Requirement],
            reviewed: dict[str, tuple[str, ...]] | None = None) -> AddReport:
    """What ``add`` would write for ``asked``, and what needs a human (writes nothing
    but the sdist cache)."""
    recipes, errors = check_recipes(settings)
    if errors:
        raise errors[0]
    report = AddReport()
    with open_upstream(settings) as upstream:
        walk = _Walk(settings, recipes, upstream, reviewed)
        walk.run(asked, _every_build_needs(settings))
    kinds = _kinds(walk, {canonicalize_name(r.name) for r in asked})
    blocked = _blocked(walk)
    for key, proposed in sorted(walk.proposed.items()):
        proposed.kind = kinds[key]
        if key in walk.problems:
            continue
        if key in blocked:
            report.held_back.append((proposed, blocked[key]))
        else:
            report.added.append(proposed)
    report.needs_human = [NeedsHuman(p.key, p.problem, p.hint, _needed_by(walk, p.key))
                          for _, p in sorted(walk.problems.items())]
    report.approved_already = sorted(walk.already)
    return report


def add(settings: Settings, items: Iterable[str], dry_run: bool = False,
        reviewed: dict[str, tuple[str, ...]] | None = None) -> AddReport:
    """Write recipes for ``items`` and what they need (within policy), then lock once.
    ``reviewed``: prebuilt files a human allowed per project (a catalogue's [[reviewed]])."""
    asked = parse_asked(items)
    report = propose(settings, asked, reviewed)
    if dry_run:
        return report
    return write_proposed(settings, report, asked)


def write_proposed(settings: Settings, report: AddReport, asked: list[Requirement]) -> AddReport:
    """Write the recipes ``report`` (``propose`` of ``asked``) proposes, then lock once:
    what was judged is what is written (the intake's policy judges a walk, then writes
    it, with no second walk upstream could answer otherwise)."""
    shown = " ".join(str(r) for r in asked)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    settings.recipes_dir.mkdir(parents=True, exist_ok=True)
    for proposed in report.added:
        path = settings.recipes_dir / f"{proposed.key}.toml"
        if path.exists():  # written since the walk read the recipes: theirs stands
            continue
        write_text(path, proposed.recipe_text(shown))
        report.written.append(path)
    if report.written or report.approved_already:
        resolution = lock_report(settings)
        report.lock_problems = resolution.problems
        report.locked = len(resolution.lock.components)
    return report
