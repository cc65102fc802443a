"""Recipes: the approved components, one TOML file each under recipes/.

A recipe is policy written by a human, so it is parsed strictly: an unknown
key, a bad specifier or a wrong type is an error naming the file and the field.
A typo must never silently approve something.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from factory.config import Settings
from factory.errors import RecipeError, printable

TRACKS = ("patch", "minor", "any")
KINDS = ("runtime", "build-tool")

_TOP_KEYS = {
    "name", "versions", "track", "kind", "licenses", "cooldown_days",
    "system_packages", "patches", "source", "upstream_wheel", "description",
    "allow_pth", "allow_prebuilt", "alternatives", "status", "status_reason",
}
# PEP 792 statuses a recipe may set (active is what no status means).
RECIPE_STATUSES = ("deprecated", "archived", "quarantined")
MAX_ALTERNATIVES = 10
MAX_STATUS_REASON = 300
_SOURCE_KEYS = {"index", "git", "tag"}
# A Debian package, or one pinned to a version: NAME or NAME=VERSION, in Debian's
# charsets (policy 5.6.1 and 5.6.12: [epoch:]upstream[-revision]); nothing else
# reaches apt or debootstrap.
SYSTEM_PACKAGE = re.compile(
    r"[a-z0-9][a-z0-9+.-]{1,99}(=([0-9]{1,9}:)?[0-9][A-Za-z0-9.+~-]{0,99})?")
_WHEEL_KEYS = {"filename", "sha256"}
# A project name (PEP 508), bounded: what an alternative may name.
_PROJECT = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]{0,198}[A-Z0-9]", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """Where the component's source comes from: an sdist index or a git tag."""

    index: str | None = None
    git: str | None = None
    tag: str = "v{version}"


@dataclass(frozen=True)
class UpstreamWheel:
    """An explicitly allowed, pinned upstream wheel (build tools only)."""

    filename: str
    sha256: str


@dataclass(frozen=True)
class Recipe:
    name: str
    versions: SpecifierSet
    path: Path
    digest: str
    track: str = "minor"
    kind: str = "runtime"
    licenses: tuple[str, ...] = ()
    cooldown_days: float | None = None
    system_packages: tuple[str, ...] = ()
    patches: tuple[Path, ...] = ()
    source: Source = field(default_factory=Source)
    upstream_wheel: UpstreamWheel | None = None
    description: str = ""
    # Allowances the admission gate (factory.admission) honours and records in the
    # provenance: start-up hooks (.pth) in the wheel, prebuilt files in the sdist.
    allow_pth: bool = False
    allow_prebuilt: tuple[str, ...] = ()
    # Approved components to use instead of this one (normalized names), and the PEP 792
    # status policy gives the project (None: active), with a reason shown to users.
    alternatives: tuple[str, ...] = ()
    status: str | None = None
    status_reason: str | None = None

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)


class _Fields:
    """Typed access to a TOML table, with errors that name file and field."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str = "") -> None:
        self.path, self.table, self.prefix = path, table, prefix

    def fail(self, key: str, message: str, hint: str | None = None) -> RecipeError:
        return RecipeError(f"{self.path.name}: field '{self.prefix}{key}': {message}", hint)

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                raise self.fail(key, "unknown key", f"allowed keys: {', '.join(sorted(allowed))}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in self.table:
            if default is _REQUIRED:
                raise self.fail(key, "missing (required)")
            return default
        value = self.table[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, f"expected {names}, got {type(value).__name__}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) and v for v in values):
            raise self.fail(key, "expected a list of non-empty strings")
        return tuple(values)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return str(value)


_REQUIRED = object()


def _parse_source(path: Path, table: dict[str, Any]) -> Source:
    fields = _Fields(path, table, "source.")
    fields.check_keys(_SOURCE_KEYS)
    index, git = fields.get("index", str), fields.get("git", str)
    if index and git:
        raise fields.fail("git", "give either an sdist index or a git URL, not both")
    tag = fields.get("tag", str, "v{version}")
    if "{version}" not in tag:
        raise fields.fail("tag", "the tag pattern must contain {version}")
    return Source(index=index, git=git, tag=tag)


def _parse_wheel(path: Path, table: dict[str, Any], kind: str) -> UpstreamWheel:
    fields = _Fields(path, table, "upstream_wheel.")
    fields.check_keys(_WHEEL_KEYS)
    sha = fields.get("sha256", str, _REQUIRED)
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise fields.fail("sha256", "expected 64 lowercase hex digits")
    if kind != "build-tool":
        raise fields.fail("filename", "an upstream wheel may only be allowed for a build tool")
    return UpstreamWheel(filename=fields.get("filename", str, _REQUIRED), sha256=sha)


def _patch_path(fields: _Fields, recipes_dir: Path, relative: str) -> Path:
    """A patch file under recipes/: a recipe must not apply a file from elsewhere."""
    if "\0" in relative or PurePosixPath(relative).is_absolute() or \
            ".." in PurePosixPath(relative).parts:
        raise fields.fail("patches", f"{relative!r} is not a relative path inside recipes/")
    patch = recipes_dir / relative
    if not patch.resolve().is_relative_to(recipes_dir.resolve()):
        raise fields.fail("patches", f"{relative!r} leads outside recipes/ (through a link)")
    if not patch.is_file():
        raise fields.fail("patches", f"{patch} does not exist")
    return patch


def _system_packages(fields: _Fields) -> tuple[str, ...]:
    packages = fields.strings("system_packages")
    for entry in packages:
        if not SYSTEM_PACKAGE.fullmatch(entry):
            raise fields.fail("system_packages", f"{entry[:120]!r} is not a Debian package "
                              "name, or NAME=VERSION", 'for example "libffi-dev" or '
                              '"libffi-dev=3.4.4-1"')
    return packages


def _prebuilt_globs(fields: _Fields) -> tuple[str, ...]:
    """Globs of sdist paths (below its top directory) whose prebuilt files are accepted."""
    globs = fields.strings("allow_prebuilt")
    for glob in globs:
        parts = PurePosixPath(glob).parts
        if "\0" in glob or "\\" in glob or glob.startswith("/") or ".." in parts:
            raise fields.fail("allow_prebuilt", f"{glob!r} is not a relative path glob",
                              'for example "tests/data/*.so"')
        if not glob.strip("*?/[]!"):
            raise fields.fail("allow_prebuilt", f"{glob!r} would allow every file",
                              "name the directory or files that are legitimately prebuilt")
    return globs


def _alternatives(fields: _Fields, key: str) -> tuple[str, ...]:
    """Project names, normalized: at most MAX_ALTERNATIVES, none twice, not the recipe's
    own. Whether each is approved is checked with the other recipes (``check_recipes``)."""
    names = fields.strings("alternatives")
    if len(names) > MAX_ALTERNATIVES:
        raise fields.fail("alternatives", f"{len(names)} names; at most {MAX_ALTERNATIVES}")
    found: list[str] = []
    for name in names:
        if not _PROJECT.fullmatch(name):
            raise fields.fail("alternatives", f"{printable(name)[:120]!r} is not a project name")
        normal = canonicalize_name(name)
        if normal == key:
            raise fields.fail("alternatives", f"{name!r} is this recipe's own project")
        if normal in found:
            raise fields.fail("alternatives", f"{name!r} is named twice")
        found.append(normal)
    return tuple(found)


def _status(fields: _Fields) -> tuple[str | None, str | None]:
    """The PEP 792 status policy sets (None: active) and its reason (printable, bounded)."""
    status = fields.get("status", str)
    if status is not None and status not in RECIPE_STATUSES:
        raise fields.fail("status", f"{printable(status)[:40]!r} is not one of "
                          f"{', '.join(RECIPE_STATUSES)}", "leave it out for an active project")
    reason = fields.get("status_reason", str)
    if reason is not None:
        if status is None:
            raise fields.fail("status_reason", "a reason without a status",
                              f"set status to one of {', '.join(RECIPE_STATUSES)}")
        if not reason.strip() or len(reason) > MAX_STATUS_REASON or not reason.isprintable():
            raise fields.fail("status_reason", f"must be one line of 1 to {MAX_STATUS_REASON} "
                              "printable characters", "it is shown to whoever installs it")
    return status, reason


# Parsed recipes by (file, directory, bytes): a catalogue's recipes are read by every
# stage of a run. One with patches is parsed each time: its patch files are checked too.
_PARSED: dict[tuple[str, str, bytes], Recipe] = {}
_MAX_PARSED = 20_000


def parse_recipe(path: Path, recipes_dir: Path) -> Recipe:
    raw = path.read_bytes()
    key = (str(path), str(recipes_dir), raw)
    known = _PARSED.get(key)
    if known is not None:
        return known
    recipe = _parse_recipe(path, recipes_dir, raw)
    if not recipe.patches:
        if len(_PARSED) >= _MAX_PARSED:
            _PARSED.clear()
        _PARSED[key] = recipe
    return recipe


def _parse_recipe(path: Path, recipes_dir: Path, raw: bytes) -> Recipe:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path.name}: not valid TOML ({exc})") from None
    fields = _Fields(path, data)
    fields.check_keys(_TOP_KEYS)
    name = fields.get("name", str, _REQUIRED)
    if canonicalize_name(name) != canonicalize_name(path.stem):
        raise fields.fail("name", f"{name!r} does not match the file name {path.name}")
    spec_text = fields.get("versions", str, _REQUIRED)
    try:
        versions = SpecifierSet(spec_text)
    except InvalidSpecifier:
        raise fields.fail("versions", f"{spec_text!r} is not a PEP 440 specifier",
                          "for example \">=2.31,<3\"") from None
    kind = fields.choice("kind", KINDS, "runtime")
    cooldown = fields.get("cooldown_days", (int, float))
    if cooldown is not None and not 0 <= cooldown < math.inf:  # also refuses NaN
        raise fields.fail("cooldown_days", "must be a finite number of days, not negative")
    patches = tuple(_patch_path(fields, recipes_dir, p) for p in fields.strings("patches"))
    source_table = fields.get("source", dict, {})
    wheel_table = fields.get("upstream_wheel", dict)
    if source_table.get("git") and cooldown:
        raise fields.fail("cooldown_days", "git tags carry no upload time, so a cooldown "
                          "cannot be checked", "set cooldown_days = 0 for a git source")
    status, status_reason = _status(fields)
    return Recipe(
        name=name,
        versions=versions,
        path=path,
        digest="sha256:" + hashlib.sha256(raw).hexdigest(),
        track=fields.choice("track", TRACKS, "minor"),
        kind=kind,
        licenses=fields.strings("licenses"),
        cooldown_days=float(cooldown) if cooldown is not None else None,
        system_packages=_system_packages(fields),
        patches=patches,
        source=_parse_source(path, source_table),
        upstream_wheel=_parse_wheel(path, wheel_table, kind) if wheel_table else None,
        description=fields.get("description", str, ""),
        allow_pth=fields.get("allow_pth", bool, False),
        allow_prebuilt=_prebuilt_globs(fields),
        alternatives=_alternatives(fields, canonicalize_name(name)),
        status=status,
        status_reason=status_reason,
    )


def recipe_files(settings: Settings) -> list[Path]:
    directory = settings.recipes_dir
    if not directory.is_dir():
        raise RecipeError(f"no recipes directory at {directory}",
                          "create recipes/<name>.toml, one per approved component")
    return sorted(directory.glob("*.toml"))


def check_recipes(settings: Settings) -> tuple[dict[str, Recipe], list[RecipeError]]:
    """Parse every recipe; return the good ones and every error (not just the first)."""
    recipes: dict[str, Recipe] = {}
    errors: list[RecipeError] = []
    for path in recipe_files(settings):
        try:
            recipe = parse_recipe(path, settings.recipes_dir)
        except RecipeError as exc:
            errors.append(exc)
            continue
        if recipe.key in recipes:
            errors.append(RecipeError(f"{path.name}: field 'name': {recipe.name!r} is "
                                      f"already approved by {recipes[recipe.key].path.name}"))
            continue
        recipes[recipe.key] = recipe
    for recipe in recipes.values():
        for alternative in recipe.alternatives:
            if alternative not in recipes:
                errors.append(RecipeError(
                    f"{recipe.path.name}: field 'alternatives': {alternative!r} is not an "
                    "approved component", f"approve it (recipes/{alternative}.toml) or leave "
                    "it out"))
    return recipes, errors


def load_recipes(settings: Settings) -> dict[str, Recipe]:
    """All recipes, keyed by normalized name; the first error is raised."""
    recipes, errors = check_recipes(settings)
    if errors:
        first = errors[0]
        more = ""
        if len(errors) > 1:
            more = f" (and {len(errors) - 1} more; run `factory recipes check`)"
        raise RecipeError(first.message + more, first.hint)
    if not recipes:
        raise RecipeError(f"no recipes in {settings.recipes_dir}",
                          "add recipes/<name>.toml, one per approved component")
    return recipes
