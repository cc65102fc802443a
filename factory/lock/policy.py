"""Policy: which upstream version a recipe may take, and which licenses pass.

Version selection walks the upstream sdists newest first and takes the first
that is a final release, not yanked, inside the recipe's range and update
track, past its cooldown, buildable by at least one of the builder's Pythons (its
Requires-Python admits one of them), and not affected by a known advisory. Every
newer version passed over is reported with why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from factory.errors import PolicyError
from factory.license import judge
from factory.recipes import Recipe
from factory.upstream.advisories import AdvisoryDatabase
from factory.upstream.listing import UpstreamFile, names_prerelease


@dataclass(frozen=True)
class Skipped:
    version: str
    reason: str


# Releases passed over because their requirements can never be met, before the newest
# is taken anyway (lock) or a human is asked (add).
MAX_PASSED = 5


def without(spec: SpecifierSet | None, passed: list[Skipped]) -> SpecifierSet | None:
    """``spec`` with the releases passed over taken out."""
    for skip in passed:
        spec = (spec or SpecifierSet()) & SpecifierSet(f"!={skip.version}")
    return spec


def why_passed(passed: list[Skipped]) -> str:
    """The first few releases passed over and why, for one line."""
    return "; ".join(f"{s.version} {s.reason}" for s in passed[:3])


@dataclass(frozen=True)
class Selection:
    file: UpstreamFile
    version: Version
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True)
class Context:
    """What selection needs besides the recipe and the files."""

    now: datetime
    cooldown_days: float
    pythons: tuple[str, ...]  # the builder's CPythons (Settings.pythons): one must be admitted
    advisories: AdvisoryDatabase | None
    current: Version | None = None
    extra: SpecifierSet | None = None  # e.g. a build requirement's own specifier
    urgent: bool = False  # the current pin is affected by an advisory: skip the cooldown
    # Why the version must admit every one of ``pythons`` (BUILD_ENVIRONMENT, for_users):
    # the words its refusals give. Empty: one admitted is enough (factory.lock.resolve
    # locks such a row beside a newer one, for a build environment or one interpreter).
    serves: str = ""


# What a version locked for a build environment serves: every configured interpreter
# (one installs the same locked version into every interpreter's builds).
BUILD_ENVIRONMENT = "a build environment serves every configured interpreter"


def for_users(python: str) -> str:
    """What a row locked for ``python``'s users serves: pip there takes the newest
    version whose Requires-Python admits it."""
    return f"a user on {python} installs the newest version {python} admits"


def in_track(track: str, current: Version | None, candidate: Version) -> bool:
    if current is None or track == "any":
        return True
    if track == "minor":
        return candidate.major == current.major
    return candidate.release[:2] == current.release[:2]


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _refusal(recipe: Recipe, file: UpstreamFile, version: Version, ctx: Context) -> str | None:
    """Why ``version`` may not be taken, or None when policy allows it."""
    # A pre-release only when a range names one (PEP 440: ``==0.66b2``, ``>=2.0rc1``):
    # a project that publishes nothing else is then taken as its dependents ask.
    pre = names_prerelease(recipe.versions) or names_prerelease(ctx.extra)
    if (version.is_prerelease or version.is_devrelease) and not pre:
        return "pre-release"
    if file.yanked:
        return "yanked" + (f": {file.yanked_reason}" if file.yanked_reason else "")
    if not recipe.versions.contains(version, prereleases=pre):
        return f"outside range {recipe.versions}"
    if ctx.extra is not None and not ctx.extra.contains(version, prereleases=pre):
        return f"outside requirement {ctx.extra}"
    if not in_track(recipe.track, ctx.current, version):
        return f"outside track {recipe.track} (locked {ctx.current})"
    if file.requires_python:
        role = "a build tool" if recipe.kind == "build-tool" else ""
        why = _python_refusal(file.requires_python, ctx.pythons, every=role, serves=ctx.serves)
        if why is not None:
            return why
    cooldown = recipe.cooldown_days if recipe.cooldown_days is not None else ctx.cooldown_days
    if cooldown > 0 and not ctx.urgent:
        uploaded = parse_time(file.upload_time) if file.upload_time else None
        if uploaded is None:
            return "cooldown: upstream gives no upload time"
        if ctx.now - uploaded < timedelta(days=cooldown):
            return f"cooldown: uploaded {file.upload_time}, younger than {cooldown:g} days"
    if ctx.advisories is not None:
        hits = ctx.advisories.affecting(recipe.name, str(version))
        if hits:
            return "advisory " + ", ".join(sorted(a.id for a in hits))
    return None


def _python_refusal(requires: str, pythons: tuple[str, ...], every: str = "",
                    serves: str = "") -> str | None:
    """Why a Requires-Python admits none of ``pythons``; None when it admits one (that
    one builds it, the others are said not to). With one Python the reason reads as it
    always did: it is written into recipes.lock.

    A build tool (``every`` names the role: "a build tool") must admit them all: its one
    locked version is installed into the builds of every interpreter, so a newer one only
    3.12 admits would take the 3.11 builds of everything that uses it away; the version
    before it is kept instead. So must a version locked for what ``serves`` says (a
    build environment; one interpreter's users, ``pythons`` then being that one), which
    its refusal names."""
    try:
        spec = SpecifierSet(requires)
    except InvalidSpecifier:
        return f"invalid requires-python {requires!r}"
    if every and len(pythons) > 1:
        serves = f"{every} serves every configured interpreter"
    if serves:
        left_out = [python for python in pythons if not spec.contains(python)]
        return (f"requires-python {requires} excludes {', '.join(left_out)} ({serves})"
                if left_out else None)
    if any(spec.contains(python) for python in pythons):
        return None
    if len(pythons) == 1:
        return f"requires-python {requires}"
    return f"requires-python {requires} admits none of {', '.join(pythons)}"


def _newest_sdist_per_version(files: Iterable[UpstreamFile]) -> list[tuple[Version, UpstreamFile]]:
    chosen: dict[Version, UpstreamFile] = {}
    for file in files:
        version = file.version
        if version is None or not file.is_sdist:
            continue
        # One sdist per version is the norm; prefer .tar.gz (PEP 625) when both exist.
        if version not in chosen or file.filename.endswith(".tar.gz"):
            chosen[version] = file
    return sorted(chosen.items(), key=lambda item: item[0], reverse=True)


def _select(recipe: Recipe, files: Iterable[UpstreamFile], ctx: Context,
            ) -> tuple[Selection | None, list[Skipped]]:
    skipped: list[Skipped] = []
    for version, file in _newest_sdist_per_version(files):
        reason = _refusal(recipe, file, version, ctx)
        if reason is None:
            return Selection(file=file, version=version, skipped=tuple(skipped)), skipped
        skipped.append(Skipped(str(version), reason))
    return None, skipped


def passed_over(recipe: Recipe, files: Iterable[UpstreamFile], ctx: Context,
                ) -> tuple[Skipped, ...]:
    """Every version ``ctx`` refuses and why, newest first, down to the one it takes
    (all of them when it takes none)."""
    return tuple(_select(recipe, files, ctx)[1])


def select_version(recipe: Recipe, files: Iterable[UpstreamFile], ctx: Context) -> Selection:
    selection, skipped = _select(recipe, files, ctx)
    if selection is not None:
        return selection
    summary = "; ".join(f"{s.version}: {s.reason}" for s in skipped[:5]) or "no sdists upstream"
    raise PolicyError(f"no version of {recipe.name} satisfies policy ({summary})",
                      f"widen versions/track/cooldown in {recipe.path.name} if that is intended")


def allowed_version(recipe: Recipe, file: UpstreamFile, version: Version,
                    ctx: Context) -> str | None:
    """Public form of the refusal check, for re-validating a locked version."""
    return _refusal(recipe, file, version, ctx)


# -- licenses -----------------------------------------------------------------

def check_license(recipe: Recipe, expression: str | None, license_text: str | None,
                  classifiers: Iterable[str]) -> None:
    """The sdist's declared license must be one the recipe approves (``licenses``), read
    the way the site policy reads it (factory.license); no ``licenses``: not checked."""
    if not recipe.licenses:
        return
    verdict = judge(expression, license_text, classifiers, recipe.licenses, reviewed=True)
    if verdict.expression is None:
        raise PolicyError(f"{recipe.name}: the sdist declares no license we can read",
                          f"review it and set licenses in {recipe.path.name} to its SPDX id")
    if not verdict.allowed:
        raise PolicyError(
            f"{recipe.name}: license {verdict.expression} is not in the recipe's allowlist "
            f"({', '.join(recipe.licenses)})",
            f"add it to licenses in {recipe.path.name} if it is approved")


def every_refusal(requires: str | None, pythons: tuple[str, ...],
                  serves: str = BUILD_ENVIRONMENT) -> str | None:
    """Why a Requires-Python (None: says none) leaves out one of ``pythons``, in the
    words the lock records; None when it admits every one."""
    return _python_refusal(requires, pythons, serves=serves) if requires else None
