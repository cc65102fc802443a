"""Resolution: choose each recipe's pin from upstream, and the closure of requirements.

A pin is never moved silently under a changed upstream: when the file a pin
names changed (another sha256, a moved tag, a listing or file that now lives on
another host), the pin is kept as it was and reported as an ``Alarm`` until the
operator accepts the change.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from factory._internal.atomic import sha256_file
from factory._internal.graphs import held_back
from factory._internal.plainfile import NotPlain, read_plain
from factory.config import Settings
from factory.errors import (
    AlarmError,
    FactoryError,
    LockError,
    PolicyError,
    UpstreamError,
    one_line,
)
from factory.lock.backend import (
    LOCKED_BEFORE,
    MAX_REASON,
    MAX_WHEEL_BYTES,
    Backend,
    backend_of,
    clean,
    wheel_generator,
)
from factory.lock.model import (
    ACCEPTED,
    ALARMED,
    APPROVED,
    LEGACY_BUILD_REQUIRES,
    Alarm,
    Change,
    Lock,
    LockedComponent,
    Problem,
    Resolution,
    alarm_error,
)
from factory.lock.policy import (
    BUILD_ENVIRONMENT,
    MAX_PASSED,
    Context,
    Selection,
    Skipped,
    allowed_version,
    check_license,
    every_refusal,
    for_users,
    passed_over,
    select_version,
    why_passed,
    without,
)
from factory.recipes import Recipe
from factory.upstream import cache, git
from factory.upstream.advisories import for_settings
from factory.upstream.cache import Sdist
from factory.upstream.listing import ProjectListing, UpstreamFile

if TYPE_CHECKING:  # the HTTP client is loaded by the first resolution that needs it
    from factory.upstream.client import Upstream


def marker_environment(settings: Settings, python: str | None = None) -> dict[str, str]:
    """The PEP 508 marker environment of a build with CPython ``python`` (``3.13``;
    default: the builder image's python_version) on the builder's Linux."""
    version = python or settings.python_version
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.update(python_version=version, python_full_version=version + ".0",
               sys_platform="linux", platform_system="Linux", os_name="posix",
               implementation_name="cpython", platform_python_implementation="CPython")
    return env


def marker_environments(settings: Settings) -> tuple[dict[str, str], ...]:
    """One marker environment per CPython the builder builds with (Settings.pythons): a
    requirement is followed when it applies under any of them."""
    return tuple(marker_environment(settings, python) for python in settings.pythons)


def parse_requirements(lines: Iterable[str], envs: Sequence[Mapping[str, str]], origin: str,
                       extras: Iterable[str] = ()) -> list[Requirement]:
    """Requirements that apply on the builder under any of ``envs`` (one per interpreter):
    markers evaluated with no extra and with each of ``extras`` (those a requirement on
    this project asked for)."""
    wanted = ("", *sorted(canonicalize_name(e) for e in extras))
    found = []
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            raise LockError(f"{origin}: invalid requirement {line!r}") from None
        try:
            applies = req.marker is None or any(
                req.marker.evaluate({**env, "extra": extra}) for env in envs for extra in wanted)
        except (KeyError, ValueError, TypeError):  # a marker variable no environment has
            raise LockError(f"{origin}: requirement {line!r} has a marker that cannot be "
                            "evaluated", "report it upstream or pin another version") from None
        if applies:
            found.append(req)
    return found


class Resolver:
    """One resolution run: the upstream listings and policy context it shares."""

    def __init__(self, settings: Settings, recipes: dict[str, Recipe], previous: Lock | None,
                 update: bool | set[str], now: datetime | None = None,
                 on_fetch: Callable[[str], None] | None = None, *,
                 accept: Iterable[str] = (),
                 sticky: dict[tuple[str, str], str] | None = None) -> None:
        self.settings, self.recipes, self.previous = settings, recipes, previous or Lock()
        self.update, self.on_fetch = update, on_fetch
        self.accept = set(accept)  # components whose upstream change the operator accepts
        self.sticky = sticky or {}  # (name, version) -> why: alarms still open in the ledger
        self.alarms: list[Alarm] = []
        self.accepted: list[Alarm] = []
        self.problems: list[Problem] = []  # pins kept as they were after a failure
        self.now = now or datetime.now(UTC)
        # An unreachable source is said (advisories_problem), not fatal: the lock goes on
        # and the watch cycle yanks what an advisory hits once the source answers again.
        self.advisories, self.advisories_problem = for_settings(settings)
        self.envs = marker_environments(settings)
        # What policy admits (one of these) and whose markers runtime requirements are
        # read under: every configured interpreter, or one while its users' rows are
        # locked (users_of)
        self.pythons: tuple[str, ...] = settings.pythons
        self.runtime_envs: tuple[dict[str, str], ...] = self.envs
        self._upstreams: dict[str, Upstream] = {}
        self._listings: dict[str, ProjectListing] = {}
        self._unapproved: dict[str, ProjectListing] = {}  # listings of projects with no recipe
        self._matching: set[str] = set()  # components whose backend is being matched
        # (key, sdist sha256) -> the Requires-Python its sdist and its listing give
        self._requires_python: dict[tuple[str, str], tuple[str | None, ...]] = {}
        self._sdist_read: set[tuple[str, str]] = set()  # of those, whose sdist was read

    def close(self) -> None:
        for upstream in self._upstreams.values():
            upstream.close()

    def upstream_for(self, recipe: Recipe) -> Upstream:
        url = recipe.source.index or self.settings.upstream
        if url not in self._upstreams:
            from factory.upstream.client import open_upstream

            self._upstreams[url] = open_upstream(self.settings, url)
        return self._upstreams[url]

    def listing(self, recipe: Recipe) -> ProjectListing:
        if recipe.key not in self._listings:
            if recipe.source.git:
                self._listings[recipe.key] = _git_listing(recipe)
            else:
                try:
                    self._listings[recipe.key] = self.upstream_for(recipe).project(recipe.name)
                except AlarmError as exc:
                    raise AlarmError(exc.message, exc.hint, component=recipe.key) from None
        return self._listings[recipe.key]

    @contextmanager
    def users_of(self, python: str) -> Iterator[None]:
        """Lock for the users of ``python`` alone: a version it admits, and what it
        requires under its markers (a row pip on 3.11 installs needs nothing 3.13 asks
        for, and the newest version 3.13 admits would not serve it)."""
        self.pythons, self.runtime_envs = (python,), (marker_environment(self.settings,
                                                                          python),)
        try:
            yield
        finally:
            self.pythons, self.runtime_envs = self.settings.pythons, self.envs

    def context(self, current: Version | None, extra: SpecifierSet | None = None) -> Context:
        return Context(now=self.now, cooldown_days=self.settings.cooldown_days,
                       pythons=self.pythons,
                       advisories=self.advisories, current=current, extra=extra)

    def every_refusal(self, entry: LockedComponent, pythons: tuple[str, ...] = (),
                      serves: str = BUILD_ENVIRONMENT) -> str | None:
        """Why not every one of ``pythons`` (default: every configured interpreter) may
        take ``entry`` (``serves`` says for what), or None: its cached sdist's own
        Requires-Python (PKG-INFO, read bounded: what its builds judge by) and the one
        upstream's listing gives must both admit them all.

        For users (``serves`` is not BUILD_ENVIRONMENT) the sdist's own alone, once read:
        pip on our index judges by what the built wheel states, which is the sdist's. A
        listing saying >=3.12 of an sdist that admits 3.11 locked a row for 3.11 that pip
        there never takes and the plan (which reads the sdist) never built."""
        said = self.requires_python(entry)
        if serves != BUILD_ENVIRONMENT and (entry.key, entry.sdist.sha256) in self._sdist_read:
            said = said[:1]
        for requires in said:
            why = every_refusal(requires, pythons or self.settings.pythons, serves)
            if why is not None:
                return why
        return None

    def requires_python(self, entry: LockedComponent) -> tuple[str | None, ...]:
        """The Requires-Python of ``entry``'s cached sdist, then its listing's (None: says
        none, or unread). Read once per (component, sdist) in a run: the walks ask it per
        edge, and a catalogue lock has tens of thousands."""
        known = (entry.key, entry.sdist.sha256)
        if known not in self._requires_python:
            self._requires_python[known] = self._read_requires_python(entry)
        return self._requires_python[known]

    def _read_requires_python(self, entry: LockedComponent) -> tuple[str | None, ...]:
        from factory.build.variants import sdist_requires_python  # it imports the lock

        path = cache.cache_path(self.settings, entry.sdist.sha256, entry.sdist.filename)
        own = sdist_requires_python(path) if path.is_file() else None
        if path.is_file():
            self._sdist_read.add((entry.key, entry.sdist.sha256))
        recipe = self.recipes.get(entry.key)
        if recipe is None or entry.sdist.from_git:
            return (own,)
        try:
            files = self.listing(recipe).sdists()
        except FactoryError:
            return (own,)
        found = next((f for f in files if f.filename == entry.sdist.filename), None)
        return (own, found.requires_python if found is not None else None)

    def wants_update(self, key: str) -> bool:
        return self._wants_update(key)

    def _wants_update(self, key: str) -> bool:
        return self.update is True or (isinstance(self.update, set) and key in self.update)

    def _keep(self, recipe: Recipe, old: LockedComponent) -> str | None:
        """None when the old pin still passes policy (cooldown aside), else why not."""
        version = Version(old.version)
        file = next((f for f in self.listing(recipe).sdists()
                     if f.filename == old.sdist.filename), None)
        if file is None:
            return "no longer offered upstream"
        if file.sha256 and file.sha256 != old.sdist.sha256:
            return "upstream file changed its hash"
        if file.url != old.sdist.url and old.sdist.url.startswith(git.PREFIX):
            return "the tag now names another commit"
        # a pin that was taken stays taken whatever the cooldown says now
        return allowed_version(recipe, file, version, replace(self.context(version), urgent=True))

    def _alarm(self, recipe: Recipe, old: LockedComponent) -> str | None:
        """Why upstream no longer offers what the pin ``old`` names, or None: its bytes
        (another sha256 for the pinned file, a tag that moved), its host (a listing that
        redirects away, a file now hosted elsewhere), or an alarm still open."""
        try:
            listing = self.listing(recipe)
        except AlarmError as exc:
            return exc.message
        if old.sdist.url.startswith(git.PREFIX):
            tag = next((f for f in listing.files if f.version == Version(old.version)), None)
            if tag is not None and tag.url != old.sdist.url:
                return (f"the tag of {old.version} now names commit "
                        f"{git.parse_url(tag.url)[1]}, pinned "
                        f"{git.parse_url(old.sdist.url)[1]}")
        else:
            for file in listing.files:
                if file.filename == old.sdist.filename and file.sha256 not in (
                        None, old.sdist.sha256):
                    return (f"upstream now lists {file.filename} with sha256 {file.sha256}, "
                            f"pinned {old.sdist.sha256}")
            for refused in listing.rejected:
                if refused.filename == old.sdist.filename:
                    return f"upstream's entry for {refused.filename} is refused: {refused.reason}"
        return self.sticky.get((recipe.key, old.version))

    def _alarmed(self, old: LockedComponent, why: str) -> tuple[LockedComponent, str]:
        """Keep ``old`` as it was, and say so."""
        alarm = Alarm(old.key, old.version, why)
        if all((a.name, a.version) != (alarm.name, alarm.version) for a in self.alarms):
            self.alarms.append(alarm)
        return old, ALARMED

    def choose(self, recipe: Recipe, reason: str, extra: SpecifierSet | None = None,
               ) -> tuple[LockedComponent, str]:
        """Pin for ``recipe``: the previous one when allowed, else policy's newest.

        A previous pin whose file changed upstream is kept as it was (``ALARMED``),
        whatever ``update`` says, unless the operator accepts the change.
        """
        olds = [c for c in self.previous.components if c.key == recipe.key
                and (c.is_primary if reason == APPROVED else
                     extra is None or extra.contains(c.version, prereleases=True))]
        old = max(olds, key=lambda c: Version(c.version), default=None)
        accepting = recipe.key in self.accept
        alarm = self._alarm(recipe, old) if old is not None else None
        if old is not None and alarm is not None:
            if not accepting:
                return self._alarmed(old, alarm)
            self.accepted.append(Alarm(old.key, old.version, alarm))
        entry, why = self._choose(recipe, reason, extra, old)
        if old is not None and entry.version == old.version \
                and entry.sdist.sha256 != old.sdist.sha256:
            change = (f"upstream now offers {entry.sdist.filename} (sha256 {entry.sdist.sha256}) "
                      f"for {old.version}, pinned {old.sdist.filename} (sha256 "
                      f"{old.sdist.sha256})")
            if not accepting:
                return self._alarmed(old, change)
            if alarm is None:
                self.accepted.append(Alarm(old.key, old.version, change))
            why = f"{ACCEPTED}: {alarm or change}"
        elif (old is not None and not accepting and entry.version == old.version
              and entry.sdist.sha256 == old.sdist.sha256):
            # the same bytes: the verified pin stands (a listing that now says another
            # size or upload time for them does not rewrite it)
            entry = replace(entry, sdist=_named(old.sdist, recipe.key))
        return entry, why

    def _choose(self, recipe: Recipe, reason: str, extra: SpecifierSet | None,
                old: LockedComponent | None) -> tuple[LockedComponent, str]:
        why = "new"
        if old is not None and not self._wants_update(recipe.key):
            refusal = self._keep(recipe, old)
            if refusal is None:
                return self._entry(recipe, old.sdist, reason,
                                   self._skipped_above(recipe, old, extra)), "kept"
            why = refusal
        current = Version(old.version) if old is not None else None
        ctx = self.context(current, extra)
        if why.startswith("advisory"):  # a security fix does not wait out the cooldown
            ctx = replace(ctx, urgent=True)
        selection = select_version(recipe, self.listing(recipe).sdists(), ctx)
        if old is not None and why == "new":
            why = "update" if selection.version != current else "kept"
        return self._from_selection(recipe, selection, reason), why

    def pin(self, recipe: Recipe, reason: str, extra: SpecifierSet | None = None,
            ) -> tuple[LockedComponent, str]:
        """``choose``, then read the sdist's requirements; a kept pin whose download
        is now other bytes or comes from another host stays as it was (an alarm).

        A newly chosen version whose requirements cannot be met at all (a project
        upstream does not have, no version another recipe allows) is passed over for
        the next one policy allows, and the lock records why."""
        passed: list[Skipped] = []
        while True:
            try:
                entry, why = self.choose(recipe, reason, without(extra, passed))
            except PolicyError:
                if not passed:
                    raise
                raise LockError(f"no version of {recipe.name} can be built: "
                                + why_passed(passed),
                    f"approve what it needs, or widen versions in {recipe.path.name}") from None
            if why == ALARMED:
                return entry, why
            entry, why = self._read(recipe, entry, why)
            if why != ALARMED:
                entry = replace(entry, backend=self.upstream_backend(recipe, entry))
            problem = None if why in ("kept", ALARMED) or len(passed) >= MAX_PASSED \
                else self.unmet(entry)
            if problem is None:
                return _with_passed(entry, passed), why
            passed.append(Skipped(entry.version, problem))

    # -- upstream's backend (factory.lock.backend) --------------------------------------
    def upstream_backend(self, recipe: Recipe, entry: LockedComponent) -> Backend | None:
        """What generated upstream's pure wheel of ``entry``'s version, and whether this
        build pins that backend version: only when it satisfies the sdist's own
        [build-system].requires and the backend's recipe and policy (as any locked
        version must), and when it and what it requires can be locked. Never fails the
        lock: a refusal is the reason recorded. None: no upstream pure wheel, a git
        source, or the setting is off."""
        if entry.sdist.from_git or entry.key in self._matching:
            return None
        wheel = upstream_pure_wheel(self.listing(recipe).files, entry.version)
        if wheel is None:
            return None
        pinned = ({"filename": wheel.filename, "url": wheel.url, "sha256": wheel.sha256,
                   "size": wheel.size} if wheel.sha256 and wheel.size is not None else None)
        if not self.settings.match_upstream_backend:
            return Backend(None, None, "not matched: [equivalence] match_upstream_backend is "
                           "off", pinned)
        old = self.previous.get(entry.key, entry.version)
        if old is not None and old.sdist.sha256 == entry.sdist.sha256 and (
                old.backend is None or old.backend.reason == LOCKED_BEFORE):
            # Locked (and maybe built and published) before its backend was matched: its
            # build environment stays, or a rebuild would make other bytes under a
            # published name. A new version matches.
            return Backend(None, None, LOCKED_BEFORE, pinned)
        self._matching.add(entry.key)
        try:
            generator = self._generator(recipe, wheel, entry)
            found = generator if isinstance(generator, Backend) else self._match(entry,
                                                                                 generator)
            return replace(found, wheel=pinned)
        finally:
            self._matching.discard(entry.key)

    def _generator(self, recipe: Recipe, wheel: UpstreamFile,
                   entry: LockedComponent) -> str | Backend:
        """The Generator line of upstream's ``wheel`` (downloaded into the cache, bounded
        by the listing's size and sha256), or the Backend saying why it was not read."""
        if not wheel.sha256 or wheel.size is None or wheel.size > MAX_WHEEL_BYTES:
            return Backend(None, None, f"upstream's {wheel.filename} was not read (no sha256 "
                           f"and size, or larger than {MAX_WHEEL_BYTES >> 20} MiB)")
        try:
            path = cache.cache_path(self.settings, wheel.sha256, wheel.filename)
            if not path.is_file() or sha256_file(path) != wheel.sha256:
                self.upstream_for(recipe).download(wheel.url, path, sha256=wheel.sha256,
                                                   size=wheel.size)
        except FactoryError as exc:
            return Backend(None, None, clean(f"upstream's {wheel.filename} could not be read: "
                                             f"{exc.message}", MAX_REASON))
        generator = cache.remembered(path, "wheel-generator-1",
                                     lambda: wheel_generator(path, entry.key, entry.version))
        if not isinstance(generator, str):
            return Backend(None, None, f"upstream's {wheel.filename} names no Generator")
        return generator

    def _match(self, entry: LockedComponent, generator: str) -> Backend:
        said = f"upstream's wheel was generated by {generator}"
        found = backend_of(generator)
        if isinstance(found, str):
            return Backend(generator, None, f"{found}: built with the default backend version")
        project, version = found

        def refused(why: str) -> Backend:
            return Backend(generator, None, clean(f"{said}; not matched: {why}", MAX_REASON))

        if project == entry.key:
            return Backend(generator, None, f"{said}; the project builds itself")
        origin = f"{entry.name} {entry.version}"
        named = [r for r in parse_requirements(entry.build_requires, self.envs, origin)
                 if canonicalize_name(r.name) == project]
        if not named:
            return refused(f"the sdist's [build-system] requires does not name {project}")
        if not all(r.specifier.contains(version, prereleases=True) for r in named):
            return refused(f"{project} {version} does not satisfy the sdist's [build-system] "
                           f"requires ({'; '.join(str(r) for r in named)})")
        recipe = self.recipes.get(project)
        if recipe is None:
            return refused(f"{project} is not approved")
        exact = SpecifierSet(f"=={version}")
        file = next((f for f in self.listing(recipe).sdists() if f.version == Version(version)),
                    None)
        if file is None:
            return refused(f"upstream has no sdist of {project} {version}")
        refusal = allowed_version(recipe, file, Version(version), self.context(None, exact))
        if refusal is not None:
            return refused(f"policy refused {project} {version} ({refusal})")
        try:  # it and what it requires must lock, or the component would be left out
            backend, why = self.pin(recipe, f"upstream's backend for {origin}", exact)
            if why == ALARMED:
                return refused(f"{project} {version} is under an upstream alarm")
            for req, _kind in self.requirements_of(backend):
                if canonicalize_name(req.name) not in self.recipes:
                    return refused(f"{project} {version} needs {req}, which is not approved")
        except FactoryError as exc:
            return refused(f"{project} {version} cannot be locked ({exc.message})")
        try:
            self._fetchable(recipe, backend)
        except FactoryError as exc:
            return refused(f"the fetch stage refuses {project} {version} ({exc.message})")
        return Backend(generator, f"{project}=={version}", said)

    def _fetchable(self, recipe: Recipe, entry: LockedComponent) -> None:
        """The fetch stage's gate on ``entry``'s sdist (licence, prebuilt files), now: a
        backend version it would refuse would leave the component it builds unbuilt."""
        from factory.admission import admit_sdist

        path = cache.fetch(self.settings, entry.sdist, self.upstream_for(recipe))
        meta = cache.read_metadata(path)
        if meta is not None:
            check_license(recipe, meta.license_expression, meta.license, meta.classifiers)
        else:
            check_license(recipe, None, None, ())
        admit_sdist(path, recipe)

    def _read(self, recipe: Recipe, entry: LockedComponent,
              why: str) -> tuple[LockedComponent, str]:
        try:
            return self.with_requirements(entry), why
        except AlarmError as exc:
            old = self.previous.get(entry.key, entry.version)
            if (old is None or _named(old.sdist, recipe.key) != entry.sdist
                    or recipe.key in self.accept):
                raise
            return self._alarmed(old, exc.message)

    def unmet(self, entry: LockedComponent) -> str | None:
        """Why ``entry``'s requirements can never be met as things stand, or None: a
        project upstream does not have, or one whose recipe allows no matching version.
        A project merely not approved yet is no reason: approving it is the fix."""
        try:
            requirements = self.requirements_of(entry)
        except FactoryError:
            return None  # reported when the closure is walked
        for req, kind in requirements:
            key = canonicalize_name(req.name)
            recipe = self.recipes.get(key)
            try:
                if recipe is not None:
                    select_version(recipe, self.listing(recipe).sdists(),
                                   self.context(None, req.specifier or None))
                elif not self._upstream_has(key, req):
                    return f"needs {req} ({kind}), which upstream has no sdist of"
            except PolicyError:
                return f"needs {req} ({kind}), which recipes/{key}.toml allows no version of"
            except UpstreamError as exc:
                if "does not know" in exc.message:
                    return f"needs {req} ({kind}), which upstream does not have"
        return None

    def _upstream_has(self, key: str, req: Requirement) -> bool:
        """Whether the default upstream lists an unyanked sdist ``req`` allows."""
        if key not in self._unapproved:
            url = self.settings.upstream
            if url not in self._upstreams:
                from factory.upstream.client import open_upstream

                self._upstreams[url] = open_upstream(self.settings)
            self._unapproved[key] = self._upstreams[url].project(key)
        return self._unapproved[key].offers(req.specifier)

    def _skipped_above(self, recipe: Recipe, old: LockedComponent,
                       extra: SpecifierSet | None = None) -> tuple[Skipped, ...]:
        """The newer versions passed over, as a new selection under the same requirement
        would say (a re-lock writes the bytes the first lock wrote)."""
        try:
            sel = select_version(recipe, self.listing(recipe).sdists(),
                                 self.context(Version(old.version), extra))
        except Exception:  # only informative: the kept pin stands regardless
            return ()
        return tuple(s for s in sel.skipped if Version(s.version) > Version(old.version))

    def _from_selection(self, recipe: Recipe, sel: Selection, reason: str) -> LockedComponent:
        file: UpstreamFile = sel.file
        if file.url.startswith(git.PREFIX):
            return self._from_git(recipe, file, sel, reason)
        if not file.sha256:
            raise UpstreamError(f"upstream gives no sha256 for {file.filename}",
                                "use an index that publishes hashes (PEP 503 #sha256=...)")
        size = file.size if file.size is not None else self.upstream_for(recipe).size_of(file.url)
        if size is None:
            raise UpstreamError(f"upstream gives no size for {file.filename}")
        pin = Sdist.from_listing(file, recipe.key, str(sel.version), size=size)
        return self._entry(recipe, pin, reason, sel.skipped)

    def _from_git(self, recipe: Recipe, file: UpstreamFile, sel: Selection,
                  reason: str) -> LockedComponent:
        """Archive the tag's commit once to pin its digest; the archive is then cached."""
        staging = self.settings.sources_dir / "git-staging" / file.filename
        git.make_archive(file.url, recipe.key, str(sel.version), staging)
        pin = Sdist.from_listing(file, recipe.key, str(sel.version),
                                 sha256=sha256_file(staging), size=staging.stat().st_size)
        final = cache.cache_path(self.settings, pin.sha256, file.filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.replace(final)
        return self._entry(recipe, pin, reason, sel.skipped)

    def _entry(self, recipe: Recipe, pin: Sdist, reason: str,
               skipped: tuple[Skipped, ...]) -> LockedComponent:
        return LockedComponent(kind=recipe.kind, reason=reason, recipe_digest=recipe.digest,
                               sdist=_named(pin, recipe.key), skipped=skipped)

    def with_upstream_status(self, key: str, entry: LockedComponent) -> LockedComponent:
        """``entry`` (an approved row) with the PEP 792 status its listing says now; as
        it was when the listing was not read this run (an alarm, a git source)."""
        listing = self._listings.get(key)
        if listing is None:
            return entry
        return replace(entry, upstream_status=listing.status,
                       upstream_status_reason=listing.status_reason)

    def with_requirements(self, entry: LockedComponent) -> LockedComponent:
        """Read the sdist's static build and runtime requirements (downloads it)."""
        if self.on_fetch:
            self.on_fetch(entry.sdist.filename)
        path = cache.fetch(self.settings, entry.sdist, self.upstream_for(self.recipes[entry.key]))
        build, runtime = sdist_requirements(path, entry.sdist.filename)
        return dataclasses.replace(entry, build_requires=build, requires_dist=runtime)

    def requirements_of(self, entry: LockedComponent, extras: Iterable[str] = (),
                        ) -> list[tuple[Requirement, str]]:
        """``entry``'s build requirements under every configured interpreter's markers
        (one build environment serves them all), its runtime ones under runtime_envs'."""
        origin = f"{entry.name} {entry.version}"
        reqs = [(r, "build") for r in parse_requirements(
            (*entry.build_requires, *entry.build_pins), self.envs, origin)]
        reqs += [(r, "runtime") for r in parse_requirements(entry.requires_dist,
                                                            self.runtime_envs, origin, extras)]
        return reqs




def upstream_pure_wheel(files: Iterable[UpstreamFile], version: str) -> UpstreamFile | None:
    """Upstream's pure wheel of ``version`` (the first by name when there are several)."""
    wanted = Version(version)
    found = sorted((f for f in files if f.filename.endswith(".whl") and f.version == wanted
                    and not f.yanked and _pure(f.filename)), key=lambda f: f.filename)
    return found[0] if found else None


def _pure(filename: str) -> bool:
    try:
        tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return False
    return all(t.abi == "none" and t.platform == "any" for t in tags)


def _with_passed(entry: LockedComponent, passed: list[Skipped]) -> LockedComponent:
    """``entry`` recording the newer versions passed over for unmet requirements (in
    place of the "!=" the narrowing made them fail)."""
    if not passed:
        return entry
    over = {s.version for s in passed}
    skipped = [s for s in entry.skipped if s.version not in over] + passed
    return replace(entry, skipped=tuple(sorted(skipped, key=lambda s: Version(s.version),
                                               reverse=True)))


def sdist_requirements(path: Path, filename: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A cached sdist's static build requirements (``[build-system].requires``, PEP 517's
    default without one) and its runtime requirements (core metadata Requires-Dist)."""
    pyproject = cache.read_member(path, "pyproject.toml")
    build = list(LEGACY_BUILD_REQUIRES)
    if pyproject is not None:
        try:
            table = tomllib.loads(pyproject.decode("utf-8")).get("build-system")
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            raise LockError(f"{filename}: pyproject.toml is not valid TOML",
                            "report it upstream or pin another version") from None
        if isinstance(table, dict) and "requires" in table:
            requires = table["requires"]
            if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
                raise LockError(f"{filename}: [build-system] requires is not a list of strings",
                                "report it upstream or pin another version")
            build = requires
    meta = cache.read_metadata(path)
    return tuple(build), (meta.requires_dist if meta else ())


def _named(pin: Sdist, key: str) -> Sdist:
    """``pin`` under the recipe's normalized name, as the resolver names every pin it
    writes (a hand-edited lock may spell the project otherwise)."""
    return pin if pin.name == key else replace(pin, name=key)


def _git_listing(recipe: Recipe) -> ProjectListing:
    """Tags matching the recipe's pattern, as files of a listing (no hashes, no times)."""
    assert recipe.source.git is not None
    files = tuple(UpstreamFile(
        filename=git.archive_name(recipe.key, str(tag.version)),
        url=git.source_url(recipe.source.git, tag), sha256=None, size=None,
        upload_time=None, yanked=False, yanked_reason=None, requires_python=None,
        declared_version=str(tag.version),
    ) for tag in git.list_tags(recipe.source.git, recipe.source.tag))
    return ProjectListing(recipe.key, files)


def resolve(settings: Settings, recipes: dict[str, Recipe], previous: Lock | None = None,
            update: bool | set[str] = False, now: datetime | None = None,
            on_fetch: Callable[[str], None] | None = None) -> tuple[Lock, list[Change]]:
    """Resolve every recipe and the closure of their requirements; AlarmError when a
    pin had to be kept because upstream changed under it."""
    result = resolve_report(settings, recipes, previous, update, now, on_fetch)
    if result.alarms:
        raise alarm_error(result.alarms)
    return result.lock, result.changes


def resolve_report(settings: Settings, recipes: dict[str, Recipe], previous: Lock | None = None,
                   update: bool | set[str] = False, now: datetime | None = None,
                   on_fetch: Callable[[str], None] | None = None, *,
                   accept: Iterable[str] = (),
                   sticky: dict[tuple[str, str], str] | None = None) -> Resolution:
    """Resolve every recipe; pins under alarm are kept as they were and reported."""
    previous = previous or Lock()
    accept = set(accept)
    for (name, version), why in sorted((sticky or {}).items()):
        if name in recipes and name not in accept and previous.get(name, version) is None:
            raise LockError(f"{name} {version} has an open upstream alarm and its pin is no "
                            f"longer in the lock ({why})",
                            f"accept the change with `factory lock --accept-change {name}`")
    resolver = Resolver(settings, recipes, previous, update, now, on_fetch,
                        accept=accept, sticky=sticky)
    try:
        lock, changes, broken = Lock(), [], _Broken()
        for key in sorted(recipes):
            try:
                entry, why = resolver.pin(recipes[key], APPROVED)
            except AlarmError:
                raise
            except FactoryError as exc:  # this component only: the others are locked
                old = previous.primary(key)
                if old is None:
                    broken.add(key, None, exc)
                    continue
                # the last good pin stands while upstream or the recipe is fixed
                resolver.problems.append(Problem(key, f"{exc.message}; kept {key} {old.version}",
                                                 exc.hint, error=type(exc)))
                entry, why = old, "kept"
            entry = resolver.with_upstream_status(key, entry)
            lock.components.append(entry)
            old = previous.primary(key)
            if why != ALARMED and (why != "kept" or old is None or old.version != entry.version):
                changes.append(Change(key, old.version if old else None, entry.version, why))
        _close_requirements(resolver, lock, changes, broken)
        problems = resolver.problems + broken.prune(lock)
        serve_every_interpreter(resolver, lock, changes)
        if serve_each_interpreter(resolver, lock, changes):
            serve_every_interpreter(resolver, lock, changes)  # the new rows' build closures
        changes = [c for c in changes if lock.find(c.name, f"=={c.new}" if c.new else "")]
        return Resolution(lock.sorted(), changes, resolver.alarms, resolver.accepted, problems,
                          resolver.advisories_problem)
    finally:
        resolver.close()


class _Broken:
    """What could not be locked, and which locked rows need what: a component whose
    closure reaches a broken one is left out of the lock with it, the rest stays."""

    def __init__(self) -> None:
        self.errors: dict[str, FactoryError] = {}  # node -> why
        self.needs: dict[str, set[str]] = {}  # node -> nodes (or keys) it needs

    @staticmethod
    def node(key: str, version: str | None) -> str:
        return f"{key}=={version}" if version else key

    def add(self, key: str, version: str | None, exc: FactoryError) -> None:
        self.errors.setdefault(self.node(key, version), exc)

    def edge(self, parent: LockedComponent, child: str) -> None:
        self.needs.setdefault(self.node(parent.key, parent.version), set()).add(child)

    def prune(self, lock: Lock) -> list[Problem]:
        if not self.errors:
            return []
        cause = held_back(self.needs, set(self.errors))  # everything that needs a bad one
        waiting: dict[str, list[str]] = {n: [] for n in self.errors}
        for c in lock.components:
            node = self.node(c.key, c.version)
            if c.is_primary and node in cause:
                waiting[cause[node]].append(c.key)
        lock.components = [c for c in lock.components if self.node(c.key, c.version)
                           not in self.errors and self.node(c.key, c.version) not in cause]
        return [Problem(node.split("==")[0], exc.message, exc.hint, tuple(waiting[node]),
                        type(exc)) for node, exc in sorted(self.errors.items())]


def _close_requirements(resolver: Resolver, lock: Lock, changes: list[Change],
                        broken: _Broken,
                        start: list[tuple[LockedComponent, frozenset[str]]] | None = None,
                        ) -> None:
    """Lock what the locked components (or ``start``, each with the extras asked of it)
    require, transitively; a requirement with extras (``requests[socks]``) also locks
    what those extras of its project require. What cannot be locked is recorded in
    ``broken``; the walk goes on with the rest."""
    pending: list[tuple[LockedComponent, frozenset[str]]] = (
        [(c, frozenset()) for c in lock.components] if start is None else list(start))
    extras_seen: dict[tuple[str, str], frozenset[str]] = {}
    # (key, specifier, row met) -> the users' own row or None: a lib<2 many components
    # require asks policy once, not once per component (40 users: 43 choices)
    newer_seen: dict[tuple[str, str, str], LockedComponent | None] = {}
    while pending:
        entry, extras = pending.pop(0)
        try:
            requirements = resolver.requirements_of(entry, extras)
        except FactoryError as exc:
            broken.add(entry.key, entry.version, exc)
            continue
        for req, kind in requirements:
            key = canonicalize_name(req.name)
            found_entry = lock.find(key, req.specifier)
            if found_entry is not None and kind == "runtime" and not found_entry.is_primary:
                asked = (key, str(req.specifier), found_entry.version)
                if asked not in newer_seen:
                    newer_seen[asked] = _newer_for_users(resolver, lock, changes, entry, req,
                                                         found_entry)
                    newer = newer_seen[asked]
                else:
                    newer = None  # asked already: lock.find meets its row from now on
                if newer is not None:
                    found_entry = newer
                    pending.append((newer, frozenset()))
            if found_entry is None:
                try:
                    found_entry = _lock_requirement(resolver, lock, changes, entry, req, kind)
                except AlarmError:
                    raise
                except FactoryError as exc:
                    broken.add(key, None, exc)
                    broken.edge(entry, broken.node(key, None))
                    continue
                pending.append((found_entry, frozenset()))
            broken.edge(entry, broken.node(key, found_entry.version))
            seen = extras_seen.get((key, found_entry.version), frozenset())
            if req.extras and not set(req.extras) <= seen:
                extras_seen[(key, found_entry.version)] = seen | req.extras
                pending.append((found_entry, frozenset(req.extras - seen)))


def _newer_for_users(resolver: Resolver, lock: Lock, changes: list[Change],
                     entry: LockedComponent, req: Requirement,
                     found: LockedComponent) -> LockedComponent | None:
    """A runtime requirement's own row, when the one it met was locked for something else
    (a build tool's ``lib==1.0`` pin meeting ``lib<2``) and policy allows a newer one:
    pip would install the newest, and which row the walk met first depended on the order
    of the recipes. None: the row it met is the one policy chooses (or none can be)."""
    recipe = resolver.recipes.get(found.key)
    if recipe is None:
        return None
    reason = f"runtime requirement of {entry.name} {entry.version} ({req})"
    try:
        chosen, _ = resolver.choose(recipe, reason, req.specifier or None)
    except FactoryError:
        return None
    if Version(chosen.version) <= Version(found.version):
        return None
    if lock.get(found.key, chosen.version) is not None:
        return None  # met already: lock.find gave the newest satisfying row
    try:
        return _lock_requirement(resolver, lock, changes, entry, req, "runtime")
    except AlarmError:
        raise
    except FactoryError:
        return None  # the row it met still serves


def _lock_requirement(resolver: Resolver, lock: Lock, changes: list[Change],
                      entry: LockedComponent, req: Requirement, kind: str) -> LockedComponent:
    key = canonicalize_name(req.name)
    found = resolver.recipes.get(key)
    if found is None:
        raise LockError(
            f"{kind} requirement {req} of {entry.name} {entry.version} is not approved",
            f"approve it with `factory add {key}`")
    reason = f"{kind} requirement of {entry.name} {entry.version} ({req})"
    extra, why = resolver.pin(found, reason, req.specifier or None)
    lock.components.append(extra)
    _note_change(resolver, changes, extra, why, reason)
    return extra


def _note_change(resolver: Resolver, changes: list[Change], entry: LockedComponent,
                 why: str, reason: str) -> None:
    """What a newly locked row changed, for the lock's report: an upstream change the
    operator accepted, or a row the previous lock did not hold."""
    if why.startswith(ACCEPTED):
        changes.append(Change(entry.key, entry.version, entry.version, why))
    elif why != ALARMED and not resolver.previous.get(entry.key, entry.version):
        changes.append(Change(entry.key, None, entry.version, reason))


# -- build environments serve every interpreter ---------------------------------------

_RECORD_LIMIT = 1 << 20  # a record of what a backend asked for: a few lines
_RECORD_LINES = 256  # what a build reports at most (factory.build.env.MAX_REQUIREMENTS)


def dynamic_requires_path(settings: Settings, locked: LockedComponent, tag: str = "") -> Path:
    """Where a build of ``locked`` recorded what its backend asked for (factory.plan):
    its first build's answer at ``<sha256>.json`` (as ever: a project with one
    interpreter keeps its state), a build for another interpreter ``tag`` (cp313),
    whose backend may answer otherwise, beside it at ``<sha256>.cp313.json``."""
    leaf = f"{locked.sdist.sha256}.{tag}.json" if tag else f"{locked.sdist.sha256}.json"
    return settings.builds_dir / "requires" / leaf


def recorded_dynamic(settings: Settings, locked: LockedComponent,
                     tag: str = "") -> list[str] | None:
    """The dynamic build requirements a build of ``locked`` recorded (for interpreter
    ``tag``; default: its first build's); None: none yet, or a record that is not one
    (not JSON, not a list of lines, a link, a FIFO, huge): the next build records them
    again, where a traceback would stop every lock and plan."""
    try:
        raw = read_plain(dynamic_requires_path(settings, locked, tag), _RECORD_LIMIT)
        record = json.loads(raw) if raw is not None else None
        found = record["dynamic"] if record is not None else None
        # a record copied or swapped from another component or interpreter is not its
        # answer: the name is the sdist's digest, what it says it is must agree
        if record is not None and (
                record.get("component") != f"{locked.key}=={locked.version}"
                or record.get("interpreter", "") != tag):
            return None
    except (NotPlain, ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(found, list) or len(found) > _RECORD_LINES \
            or not all(isinstance(line, str) for line in found):
        return None  # more than a build reports: not its answer
    return list(found)


def every_recorded_dynamic(settings: Settings, locked: LockedComponent) -> list[str]:
    """Every line any build of ``locked`` recorded: its first build's, then each other
    configured interpreter's (a backend may ask for more under 3.13), each once."""
    from factory.plan import python_tag  # factory.plan imports this module

    found = list(recorded_dynamic(settings, locked) or ())
    for version in settings.pythons[1:]:
        other = recorded_dynamic(settings, locked, python_tag(version)) or []
        found += [line for line in other if line not in found]
    return found


def serve_every_interpreter(resolver: Resolver, lock: Lock, changes: list[Change]) -> None:
    """Give every requirement of a build environment a locked row every configured
    interpreter admits, when policy allows one.

    One build environment serves the builds of every interpreter, so a runtime component
    a build tool requires (or any other member of the build closure) taking the newest
    version only 3.12 admits would take away 3.11's builds of everything whose backend
    needs it. The newer row stays for runtime users; the older one is locked beside it
    and the plan gives each interpreter the newest its Requires-Python admits. When no
    version admits them all, the lock stays as it is (the builds say which interpreters
    cannot build). With one interpreter nothing changes (recipes.lock keeps its bytes).
    """
    if len(resolver.settings.pythons) < 2:
        return
    tried: set[tuple[str, str]] = set()  # (key, specifier) no every-row could be locked for
    closed: set[tuple[str, str, frozenset[str]]] = set()  # (key, version, extras) closed
    _serve(resolver, lock, changes, lambda: _every_rows(resolver, lock, changes, tried, closed))


def serve_each_interpreter(resolver: Resolver, lock: Lock, changes: list[Change]) -> bool:
    """Give a user on each configured interpreter the newest version it admits of what
    they install: every approved project and its runtime closure under that
    interpreter's markers, as pip there would take it from PyPI.

    The closure takes the newest version any interpreter admits (django 6.1, >=3.12,
    built by 3.13), and pip on 3.11 would find no django in the index. Where no locked
    row a requirement reaches admits the interpreter, the newest version policy allows
    that admits it is locked beside (django 5.2), and its own requirements under that
    interpreter's markers are locked and walked in turn. When none does, the newest row
    the requirement reaches records why (its skipped notes). Whether anything was added:
    with one interpreter, or when every newest row admits every one, nothing is.
    """
    if len(resolver.settings.pythons) < 2:
        return False
    added = False
    notes: dict[tuple[str, str], list[Skipped]] = {}  # (key, version) -> why none for one
    for python in resolver.settings.pythons:
        tried: set[tuple[str, str]] = set()  # (key, specifier) tried for python
        closed: set[tuple[str, str, frozenset[str]]] = set()  # (key, version, extras) closed
        walk = _UsersWalk(resolver, lock, changes, python, tried, closed, notes)
        with resolver.users_of(python):
            added |= _serve(resolver, lock, changes, walk.rows, walk.left_out)
    # Noted last: a row is replaced by its noted copy, which the rounds above would not
    # know by its id.
    for i, row in enumerate(lock.components):
        said = {s.version for s in row.skipped}
        new = [n for n in notes.get((row.key, row.version), ()) if n.version not in said]
        if new:
            lock.components[i] = replace(row, skipped=(*row.skipped, *new))
    return added


def _serve(resolver: Resolver, lock: Lock, changes: list[Change],
           walk: Callable[[], list[tuple[LockedComponent, frozenset[str]]]],
           left_out: Callable[[LockedComponent, str], None] | None = None) -> bool:
    """Walk, lock what the rows the walk added require, and walk again until the walk
    adds nothing; whether it added any. ``left_out`` is told of each new row left out
    again, and why (what of its closure could not be locked)."""
    added_any = False
    while True:
        before = {id(c) for c in lock.components}  # what this round may not leave out
        added = walk()
        if not added:
            return added_any
        added_any = True
        # What the new rows require (with the extras the walk asks of them) is locked as
        # any row's is; a row whose closure cannot be locked is left out again, silently:
        # the newer row still serves.
        broken = _Broken()
        _close_requirements(resolver, lock, changes, broken, added)
        closing = list(lock.components)
        problems = broken.prune(lock)
        # only what this pass locked is left out: a row the lock already had (another
        # user's, reached here with an extra that cannot be met) stays for that user
        kept = {id(c) for c in lock.components}
        lock.components = [c for c in closing if id(c) in kept or id(c) in before]
        if left_out is not None and problems:
            why = one_line("; ".join(p.message for p in problems[:3]), 300)
            for row, _ in added:
                if id(row) not in kept and id(row) not in before:
                    left_out(row, why)


def _every_rows(resolver: Resolver, lock: Lock, changes: list[Change],
                tried: set[tuple[str, str]], closed: set[tuple[str, str, frozenset[str]]],
                ) -> list[tuple[LockedComponent, frozenset[str]]]:
    """Walk the build closure (build requirements of every row, recorded dynamic ones
    included, then through Requires-Dist under the union of the interpreters' markers);
    lock a row every interpreter admits where the one the closure took is not. What to
    close now: the new rows, and a row the walk reached with extras (``helper[fast]``)
    not closed with them yet (the main closure locks an extra's requirements only for
    the row it took, and an older row's extra may ask for other versions)."""
    rows = lock.by_key()
    queue: list[tuple[LockedComponent, Requirement, str]] = []
    for c in lock.components:
        lines = (*c.build_requires, *c.build_pins, *every_recorded_dynamic(resolver.settings, c))
        queue += [(c, r, "build") for r in _each_requirement(
            lines, resolver.envs, f"{c.name} {c.version}")]
    added: list[tuple[LockedComponent, frozenset[str]]] = []
    walked: set[tuple[str, str, frozenset[str]]] = set()
    while queue:
        parent, req, kind = queue.pop(0)
        key = canonicalize_name(req.name)
        matching = _newest_first(rows.get(key, ()), req)
        if not matching:
            continue  # not locked: the closure said why
        row = next((c for c in matching
                    if resolver.every_refusal(c) is None), None)
        if row is None and (key, str(req.specifier)) not in tried:
            tried.add((key, str(req.specifier)))
            reason = (f"{kind} requirement of {parent.name} {parent.version} ({req}) in a "
                      "build environment, a version every configured interpreter admits")
            row = _lock_admitted(resolver, lock, changes, req, reason)
            if row is not None:
                rows[key].append(row)
                closed.add((row.key, row.version, frozenset()))
                added.append((row, frozenset()))
        row = row or matching[0]
        if not _reached(row, frozenset(req.extras), walked, closed, added):
            continue
        queue += [(row, r, "runtime") for r in _each_requirement(
            row.requires_dist, resolver.envs, f"{row.name} {row.version}", req.extras)]
    return added


def _reached(row: LockedComponent, extras: frozenset[str],
             walked: set[tuple[str, str, frozenset[str]]],
             closed: set[tuple[str, str, frozenset[str]]],
             added: list[tuple[LockedComponent, frozenset[str]]]) -> bool:
    """A walk reaches ``row`` with ``extras``: False when it has been there already;
    else True, and a row reached with extras it is not closed with yet is to be closed
    with them (``added``)."""
    if (row.key, row.version, extras) in walked:
        return False
    walked.add((row.key, row.version, extras))
    if extras and (row.key, row.version, extras) not in closed:
        closed.add((row.key, row.version, extras))
        added.append((row, extras))
    return True


def _newest_first(rows: Iterable[LockedComponent], req: Requirement) -> list[LockedComponent]:
    """The rows ``req``'s specifier allows, newest first."""
    return sorted((c for c in rows if req.specifier.contains(c.version, prereleases=True)),
                  key=lambda c: Version(c.version), reverse=True)


class _UsersWalk:
    """What a user on ``python`` installs: each approved project, then through
    Requires-Dist under ``python``'s markers, taking at each requirement the newest locked
    row whose Requires-Python admits ``python`` (as pip there takes from the index)."""

    def __init__(self, resolver: Resolver, lock: Lock, changes: list[Change], python: str,
                 tried: set[tuple[str, str]], closed: set[tuple[str, str, frozenset[str]]],
                 notes: dict[tuple[str, str], list[Skipped]]) -> None:
        self.resolver, self.lock, self.changes, self.python = resolver, lock, changes, python
        self.tried, self.closed, self.notes = tried, closed, notes
        self.envs = (marker_environment(resolver.settings, python),)
        self.serves = for_users(python)
        # id of a row this walk locked -> the newest row of its project it stands beside
        self.beside: dict[int, LockedComponent] = {}
        self._previous: dict[str, list[LockedComponent]] | None = None

    def rows(self) -> list[tuple[LockedComponent, frozenset[str]]]:
        """Walk; lock a row ``python`` admits where none the walk reaches does (or note
        why none can be). What to close now: the new rows, and a row reached with extras
        not closed with them yet, as ``_every_rows``."""
        resolver, python = self.resolver, self.python
        rows = self.lock.by_key()
        queue: list[tuple[LockedComponent | None, Requirement]] = [
            (None, Requirement(key)) for key in sorted(resolver.recipes) if key in rows]
        added: list[tuple[LockedComponent, frozenset[str]]] = []
        walked: set[tuple[str, str, frozenset[str]]] = set()
        while queue:
            parent, req = queue.pop(0)
            key = canonicalize_name(req.name)
            matching = _newest_first(rows.get(key, ()), req)
            if not matching:
                continue  # not locked: the closure said why
            row = next((c for c in matching
                        if resolver.every_refusal(c, (python,), self.serves) is None), None)
            # The newest excludes python. An older locked row it admits (a build
            # environment's, another requirement's pin) may not be the newest policy
            # allows: pip there would take a newer one from PyPI. What the previous lock
            # gave python's users stands until an update, as every pin does.
            if row is not matching[0] and (key, str(req.specifier)) not in self.tried \
                    and not (row is not None and not resolver.wants_update(key) and any(
                        Version(c.version) <= Version(row.version)
                        for c in self._served_before(req))):
                self.tried.add((key, str(req.specifier)))
                reason = (f"approved, the newest version {python} admits" if parent is None
                          else f"runtime requirement of {parent.name} {parent.version} "
                               f"({req}), the newest version {python} admits")
                failures: list[Skipped] = []
                newer = _lock_admitted(resolver, self.lock, self.changes,
                                       _above(req, row), reason, (python,), self.serves,
                                       failures)
                if newer is not None:
                    row = newer
                    self.beside[id(row)] = matching[0]
                    rows[key].append(row)
                    self.closed.add((row.key, row.version, frozenset()))
                    added.append((row, frozenset()))
                elif row is None:
                    self._note_none(matching[0], req, failures)
            if row is None:
                continue  # python's users get none of it: the newest row says why
            if not _reached(row, frozenset(req.extras), walked, self.closed, added):
                continue
            queue += [(row, r) for r in _each_requirement(
                row.requires_dist, self.envs, f"{row.name} {row.version}", req.extras)]
        return added

    def _served_before(self, req: Requirement) -> list[LockedComponent]:
        """The newest row of the previous lock ``req`` allows that ``python`` admits
        (none, or one)."""
        if self._previous is None:  # asked per edge: the previous lock by key, once
            self._previous = self.resolver.previous.by_key()
        older = _newest_first(self._previous.get(canonicalize_name(req.name), ()), req)
        return next(([c] for c in older if self.resolver.every_refusal(
            c, (self.python,), self.serves) is None), [])

    def left_out(self, row: LockedComponent, why: str) -> None:
        """``row``, locked by this walk, was left out again (``why``: what of its closure
        could not be locked): the newest row it stood beside says so."""
        newest = self.beside.get(id(row))
        if newest is not None:
            self._note(newest, [Skipped(row.version, why)])

    def _note_none(self, newest: LockedComponent, req: Requirement,
                   failures: Sequence[Skipped] = ()) -> None:
        """Record on ``newest`` why ``python``'s users get no version ``req`` allows: the
        versions that could not be pinned (``failures``: their requirements cannot be
        met...), the older versions policy refused for it, and why (or that there is
        none)."""
        recipe = self.resolver.recipes.get(newest.key)
        if recipe is None:
            return
        ctx = replace(self.resolver.context(None, req.specifier or None),
                      pythons=(self.python,), serves=self.serves)
        try:
            files = self.resolver.listing(recipe).sdists()
        except FactoryError:
            return
        older = [*failures, *(s for s in passed_over(recipe, files, ctx)
                              if Version(s.version) < Version(newest.version)
                              and req.specifier.contains(s.version, prereleases=True))]
        if not older:
            why = self.resolver.every_refusal(newest, (self.python,), self.serves)
            older = [Skipped(newest.version,
                             f"{why}; no older version could be locked for {self.python}")]
        self._note(newest, older[:MAX_PASSED])

    def _note(self, newest: LockedComponent, found: Sequence[Skipped]) -> None:
        said = f"for {self.python}, which {newest.version} excludes: none is locked"
        noted = self.notes.setdefault((newest.key, newest.version), [])
        for skip in found:
            note = skip if skip.version == newest.version else Skipped(
                skip.version, f"{skip.reason} ({said})")
            if all(n.version != note.version for n in noted):
                noted.append(note)


def _above(req: Requirement, row: LockedComponent | None) -> Requirement:
    """``req`` narrowed to versions newer than ``row`` (None: as it is). By its public
    version: PEP 440 allows no local label after '>' (a hostile index's 1.0+local made
    the specifier, and the lock, fail), and '>1.0' leaves out 1.0's local versions."""
    if row is None:
        return req
    narrowed = Requirement(str(req))
    narrowed.specifier = req.specifier & SpecifierSet(f">{Version(row.version).public}")
    return narrowed


def _each_requirement(lines: Iterable[str], envs: Sequence[Mapping[str, str]], origin: str,
                      extras: Iterable[str] = ()) -> list[Requirement]:
    """``parse_requirements`` line by line, a line that cannot be read left out alone:
    the main closure vetted the locked rows' own lines, but not what a backend recorded
    at build time, and one bad recorded line hid every static build requirement of its
    component from this walk (3.11 lost its row)."""
    found: list[Requirement] = []
    for line in lines:
        try:
            found += parse_requirements([line], envs, origin, extras)
        except FactoryError:  # the closure or the build that recorded it says why
            continue
    return found


def _lock_admitted(resolver: Resolver, lock: Lock, changes: list[Change], req: Requirement,
                   reason: str, pythons: tuple[str, ...] = (),
                   serves: str = BUILD_ENVIRONMENT,
                   failures: list[Skipped] | None = None) -> LockedComponent | None:
    """Lock the version of ``req`` every one of ``pythons`` (default: every configured
    interpreter) admits, for what ``serves`` says: the previous lock's when it still
    stands, else policy's newest; None when there is none (``failures`` is told of the
    versions policy allowed that could not be pinned, and why)."""
    key = canonicalize_name(req.name)
    recipe = resolver.recipes.get(key)
    if recipe is None:
        return None
    pythons = pythons or resolver.settings.pythons
    # versions whose sdist leaves an interpreter out (the listing may not say so)
    refused = {c.version: why for c in lock.components if c.key == key
               and (why := resolver.every_refusal(c, pythons, serves)) is not None}
    previous = [c for c in resolver.previous.components if c.key == key
                and req.specifier.contains(c.version, prereleases=True)
                and resolver.every_refusal(c, pythons, serves) is None]
    # a re-lock keeps the row it took before
    olds = [] if resolver.wants_update(key) else [c.version for c in previous]
    try:
        files = resolver.listing(recipe).sdists()
    except FactoryError:
        # Upstream cannot be read: its approved row is kept as it was (the lock says
        # why), and so is the row the previous lock had beside it; dropped, the users of
        # that interpreter lost the project until upstream answered again.
        old = max(previous, key=lambda c: Version(c.version), default=None)
        if old is None or lock.get(key, old.version) is not None:
            return None
        lock.components.append(old)
        return old
    for _ in range(MAX_PASSED):
        ctx = replace(resolver.context(None, without(req.specifier or None, [
            Skipped(v, why) for v, why in refused.items()])), pythons=pythons, serves=serves)
        try:
            selection = select_version(recipe, files, ctx)
        except FactoryError:
            return None  # none admits every interpreter: the builds say which cannot build
        versions = [str(selection.version)]
        versions[:0] = sorted(set(olds) - set(versions) - set(refused), key=Version,
                              reverse=True)[:1]
        entry, why = _pin_first(resolver, recipe, reason, versions, failures)
        if entry is None:
            return None
        refusal = resolver.every_refusal(entry, pythons, serves) if why != ALARMED else None
        if refusal is None:
            break
        refused[entry.version] = refusal
    else:
        return None
    if why != ALARMED:  # the versions passed over, and why (not "outside !=2.0")
        skipped = [Skipped(s.version, refused.get(s.version, s.reason))
                   for s in selection.skipped]
        entry = replace(entry, skipped=tuple(s for s in skipped
                                             if Version(s.version) > Version(entry.version)))
    if lock.get(key, entry.version) is not None:
        return None
    lock.components.append(entry)
    _note_change(resolver, changes, entry, why, reason)
    return entry


def _pin_first(resolver: Resolver, recipe: Recipe, reason: str, versions: list[str],
               failures: list[Skipped] | None = None) -> tuple[LockedComponent | None, str]:
    """The first of ``versions`` that pins (the lock's rules), or None; ``failures`` is
    told why each before it did not."""
    for version in versions:
        try:
            return resolver.pin(recipe, reason, SpecifierSet(f"=={version}"))
        except AlarmError:
            raise
        except FactoryError as exc:
            if failures is not None:  # a line of the lock: one line, bounded
                failures.append(Skipped(version, one_line(exc.message, 300)))
            continue
    return None, ""
