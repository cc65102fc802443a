"""Lock files for installers, from what the index serves (``factory export pylock``).

A PEP 751 ``pylock.toml`` of the approved set (recipes.lock) or of a requirements
file: each package with every wheel the index publishes of its version (URL on the
index, size, upload time, sha256) and ``attestation-identities`` naming the
factory's signing identity, the PEP 740 publisher its provenance carries. An
installer that checks attestations (or ``factory verify pylock.toml``) then accepts
only files the factory signed. A pin the index does not serve is an error: a lock
must never name a file nobody can fetch.

An installer takes every entry whose marker holds, and refuses two of one name
(PEP 751), so no two entries of one name may hold together:

- the approved set locks several versions of some projects (a build requirement of
  one component pinned at another version than the approved one): only the row an
  installer of the set wants is exported, the others are left out and named;
- a requirements line's environment marker becomes its entry's ``marker``: lines of
  one version that allow the same wheels share an entry (their markers or-ed), a line
  whose ``--hash`` options allow other wheels of it gets its own, so a hash never
  holds under another line's marker; two entries of one name need markers that never
  hold together, else the export is refused, as it is when the check cannot tell (a
  comparison installers decide differently, such as an order of text, or more
  comparisons and values than it tries: see ``MAX_COMPARISONS`` and the rest);
- a line's ``--hash`` options choose among the wheels served; none of them served
  is an error, as ``factory verify`` says of it.

    from factory.export import pylock_of
    exported = pylock_of(Path("requirements.txt"), view, settings.index_url, publisher)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import unquote, urlsplit, urlunsplit

import tomli_w

# packaging's parse of a marker (Marker._markers) is made of these: the only
# structured view of a marker it offers
from packaging._parser import Op, Value, Variable
from packaging.markers import Marker, default_environment
from packaging.specifiers import InvalidSpecifier, Specifier
from packaging.version import Version

from factory import __version__
from factory.environment import (
    Match,
    Pin,
    RequirementLine,
    TargetError,
    match,
    read_pins,
    requirement_lines,
)
from factory.errors import FactoryError, one_line
from factory.verify.view import IndexView, Published

if TYPE_CHECKING:
    from factory.lock.model import LockedComponent

PYLOCK_VERSION = "1.0"
MAX_SHOWN = 5  # pins or digests named in one error
# The overlap check of two entries' markers tries every environment their comparisons
# tell apart; past these bounds it answers that it cannot tell (the export is refused)
# rather than take seconds or gigabytes on a file someone else wrote.
MAX_COMPARISONS = 64  # in one entry's marker
MAX_LITERAL = 64  # characters of a version a marker compares with
MAX_RELEASE = 32  # parts of its release (3.12.1: three)
MAX_ENVIRONMENTS = 20_000  # environments tried for one pair of entries
MAX_PAIRS = 2_000  # pairs of entries of one name, in one export
MAX_WORK = 1_000_000  # in one export (~0.5 s), in lookups of a worked-out outcome:
_COST_OUTCOME = 10  # working out one comparison's outcome for one value
_COST_PARSE = 30  # reading one comparison from a marker
# variables compared as PEP 440 versions; every other one is text (platform_release
# too: packaging reads it as a version when it parses as one, other installers as text)
_VERSION_VARIABLES = frozenset({"python_version", "python_full_version",
                                "implementation_version"})
_PRE_LETTERS = ("a", "b", "rc")


class ExportError(FactoryError):
    default_hint = ("publish the missing releases (`factory build` and `factory publish`), "
                    "or drop them from the requirements")


class HashMismatchError(ExportError):
    default_hint = ("the requirements file pins another file than the index serves: check "
                    "where its hashes came from (`factory verify FILE` names each file)")


class MarkerConflictError(ExportError):
    default_hint = ("pin one version per project, or give each version a marker that "
                    "excludes the others (python_version < \"3.12\" / >= \"3.12\")")


class IndexUrlError(FactoryError):
    """--index-url names no place the index's files can be under: a usage error."""

    exit_code = 2
    default_hint = ("give the index's root or its simple page, http(s)://HOST[:PORT][/PATH]"
                    "[/simple/], with no query, fragment or . and .. segments")


@dataclass(frozen=True)
class LineOptions:
    """What a requirements line says beyond name==version."""

    marker: Marker | None = None  # None: the pin applies everywhere
    hashes: tuple[str, ...] | None = None  # "alg:digest" of its --hash options; None: none


@dataclass
class Exported:
    """A pylock.toml's text, and the locked rows left out of it (one line each, why)."""

    text: str
    left_out: list[str] = field(default_factory=list)


# -- what to export --------------------------------------------------------------------
def pylock_of(target: Path, index: IndexView, base_url: str,
              publisher: dict[str, Any]) -> Exported:
    """The pylock.toml of a TARGET (recipes.lock, a requirements file or a venv)."""
    kind, pins = read_pins(target)
    options: dict[str, LineOptions] = {}
    left_out: list[str] = []
    if kind == "requirements":  # read again for what read_pins drops: the same bounded text
        lines = requirement_lines(target.read_text(encoding="utf-8"), target.name)
        pins, options = [line.pin for line in lines], _options(lines)
        check_hashes(index, pins, options)
    elif kind == "lock":
        pins, left_out = approved_pins(target.read_text(encoding="utf-8"), target.name)
    try:
        text = pylock(match(index, pins), base_url, publisher, options)
    except RecursionError:  # markers are bounded when read; this is the net
        raise TargetError(f"{target}: a marker is nested too deeply to read") from None
    return Exported(text, left_out)


def approved_pins(text: str, origin: str) -> tuple[list[Pin], list[str]]:
    """One pin per project of a lock, and the rows left out (why, one line each)."""
    from factory.lock.model import Lock  # the lock stage sits above this module

    pins: list[Pin] = []
    left_out: list[str] = []
    for rows in Lock.from_toml(text, origin).sorted().by_key().values():
        kept = _installed_row(rows)
        if kept is not None:
            pins.append(Pin(kept.key, kept.version, origin, kept.kind))
        for row in rows:
            if row is not kept:
                left_out.append(_why_left_out(row, kept))
    return pins, left_out


def _installed_row(rows: list[LockedComponent]) -> LockedComponent | None:
    """The row of one project an installer of the approved set wants: the only one, the
    approved one, or the only one a runtime requirement reached; None when that is
    ambiguous. The others pin what one component's build needs (the lock's reason)."""
    if len(rows) == 1:
        return rows[0]
    for pool in ([r for r in rows if r.is_primary],
                 [r for r in rows if r.reason.startswith("runtime requirement")]):
        if len(pool) == 1:
            return pool[0]
    return None


def _why_left_out(row: LockedComponent, kept: LockedComponent | None) -> str:
    said = f"{row.key} {row.version} ({one_line(row.reason, 160)})"
    if kept is not None:
        return f"{said}: the approved set installs {kept.key} {kept.version}"
    return (f"{said}: several versions locked and none approved; export a requirements "
            "file that pins one (-r)")


def requirement_options(text: str, origin: str) -> dict[str, LineOptions]:
    """Each requirement line's marker and --hash options, by its pin's origin (file:line),
    from the one reading of the file read_pins makes (its logical lines, as pip's)."""
    return _options(requirement_lines(text, origin))


def _options(lines: Iterable[RequirementLine]) -> dict[str, LineOptions]:
    return {line.pin.origin: LineOptions(line.marker, line.pin.hashes or None)
            for line in lines}


def check_hashes(index: IndexView, pins: Sequence[Pin],
                 options: Mapping[str, LineOptions]) -> None:
    """HashMismatchError unless each sha256 a requirement's --hash gives is a wheel the
    index serves of it, as `factory verify` reads the file: an installer may take any
    of them, from anywhere. Without a sha256 the line names nothing the index vouches
    for."""
    bad = []
    for pin in pins:
        hashes = (options.get(pin.origin) or LineOptions()).hashes
        served = {f.entry.sha256.lower(): f for f in index.by_version(pin.name, pin.version)}
        if hashes is None or not served:  # not served: said when matched
            continue
        given = [h.partition(":")[2] for h in hashes if h.startswith("sha256:")]
        unknown = [f"sha256:{d}" for d in given if d not in served]
        if unknown or not given:
            named = (f"--hash {', '.join(unknown[:MAX_SHOWN])} is not a wheel" if given
                     else "its --hash options give no sha256 of a wheel")
            bad.append(f"{pin.name}=={pin.version} ({pin.origin}): {named} the index serves "
                       "of it, which is " + ", ".join(
                           f"sha256:{d} ({f.filename})" for d, f in served.items()))
    if bad:
        raise HashMismatchError("; ".join(bad[:MAX_SHOWN])
                                + (f" (and {len(bad) - MAX_SHOWN} more)"
                                   if len(bad) > MAX_SHOWN else ""))


# -- the document ----------------------------------------------------------------------
def index_root(url: str, option: str = "--index-url") -> str:
    """The index's root URL, given it or its simple page (what pip's --index-url takes):
    a trailing /simple or /simple/ of its path dropped. IndexUrlError for a URL a
    wheel's (root + /files/...) could leave the index from: a query or fragment (the
    path would land in it), a . or .. segment (folded away by clients and servers,
    percent-encoded too), no http(s) host. ``option``: what the user gave it as."""
    given = url.strip()
    from factory.upstream.transport import shown as without_credentials

    shown = f"{option} {one_line(repr(without_credentials(given)), 200)}"  # no user:password@
    try:
        parts = urlsplit(given)
        host, _ = parts.hostname, parts.port  # .port: ValueError on a bad one
    except ValueError as exc:
        raise IndexUrlError(f"{shown} is not a URL ({one_line(str(exc), 80)})"
                            ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise IndexUrlError(f"{shown} names no http(s) host")
    if parts.query or parts.fragment or "?" in given or "#" in given:
        raise IndexUrlError(f"{shown} has a query or fragment")
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        raise IndexUrlError(f"{shown} has a . or .. path segment")
    path = parts.path.rstrip("/").removesuffix("/simple")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def pylock_data(matches: Sequence[Match], base_url: str, publisher: dict[str, Any],
                options: Mapping[str, LineOptions] | None = None) -> dict[str, Any]:
    """The pylock.toml document as TOML-ready data; ExportError when a pin is not served,
    HashMismatchError when a line's --hash names no served wheel, MarkerConflictError
    when two versions of one name could both be installed."""
    missing = [m.problem or m.pin.name for m in matches if m.problem or not m.files]
    if missing:
        raise ExportError(f"{len(missing)} pin(s) the index does not serve as named: "
                          + "; ".join(missing[:20]))
    base = index_root(base_url)
    grouped: dict[str, list[Match]] = {}
    for found in matches:
        grouped.setdefault(found.pin.name, []).append(found)
    budget = _Budget()
    packages = []
    for name in sorted(grouped):
        entries = _entries(grouped[name], options or {})
        _check_exclusive(name, entries, budget)
        packages += [_package(name, e.files, e.marker, base, publisher) for e in entries]
    return {
        "lock-version": PYLOCK_VERSION,
        "created-by": f"artifact-factory {__version__}",
        "packages": packages,
    }


def pylock(matches: Sequence[Match], base_url: str, publisher: dict[str, Any],
           options: Mapping[str, LineOptions] | None = None) -> str:
    """pylock.toml's text (PEP 751)."""
    return tomli_w.dumps(pylock_data(matches, base_url, publisher, options))


def _package(name: str, files: list[Published], marker: Marker | None, base: str,
             publisher: dict[str, Any]) -> dict[str, Any]:
    package: dict[str, Any] = {"name": name, "version": files[0].entry.version}
    if marker is not None:
        package["marker"] = str(marker)
    package["index"] = f"{base}/simple/"
    if requires := files[0].entry.requires_python:
        package["requires-python"] = requires
    package["attestation-identities"] = [dict(publisher)]
    package["wheels"] = [_wheel(item, base) for item in files]
    return package


def _wheel(item: Published, base: str) -> dict[str, Any]:
    wheel: dict[str, Any] = {
        "name": item.filename,
        "url": f"{base}/files/{item.project}/{item.filename}",
        "size": item.entry.size,
        "hashes": {"sha256": item.entry.sha256},
    }
    if (uploaded := _time(item.entry.upload_time)) is not None:
        wheel["upload-time"] = uploaded
    return wheel


def _order(version: str) -> tuple[Version, str]:
    """Versions in order; one a venv names that PEP 440 does not, first (by its text)."""
    try:
        return Version(version), ""
    except ValueError:  # InvalidVersion, or a part past int's 4300 digits
        return Version("0"), version


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class _Entry:
    """One package entry: a version, the wheels its lines allow, where they apply."""

    version: str
    files: list[Published]
    lines: list[Match]
    marker: Marker | None  # the or of its lines' markers; None: everywhere

    def said(self) -> str:
        origins = [m.pin.origin for m in self.lines]
        more = f" and {len(origins) - MAX_SHOWN} more" if len(origins) > MAX_SHOWN else ""
        return f"{self.version} ({', '.join(origins[:MAX_SHOWN])}{more})"


def _entries(found: list[Match], options: Mapping[str, LineOptions]) -> list[_Entry]:
    """The entries of one name: one per version (compared as versions: 3.9 is 3.9.0)
    and set of wheels its lines allow. Lines that allow other wheels of one version
    get entries of their own, so a line's --hash never lets a wheel in under another
    line's marker; the overlap check then keeps them apart."""
    groups: dict[tuple[tuple[Version, str], tuple[str, ...]], list[Match]] = {}
    chosen: dict[tuple[tuple[Version, str], tuple[str, ...]], list[Published]] = {}
    for each in found:
        files = _chosen(each, options)
        key = (_order(each.pin.version), tuple(f.filename for f in files))
        groups.setdefault(key, []).append(each)
        chosen[key] = files
    return [_Entry(chosen[key][0].entry.version, chosen[key], groups[key],
                   _marker([options.get(m.pin.origin) for m in groups[key]]))
            for key in sorted(groups)]


def _chosen(each: Match, options: Mapping[str, LineOptions]) -> list[Published]:
    """The served wheels of a line's version it accepts: those its --hash names (pip
    installs no other), all of them for a line without; HashMismatchError when its
    hashes name none of them."""
    hashes = (options.get(each.pin.origin) or LineOptions()).hashes
    chosen = sorted((f for f in each.files
                     if hashes is None or f"sha256:{f.entry.sha256.lower()}" in hashes),
                    key=lambda f: f.filename)
    if not chosen:
        raise HashMismatchError(f"{each.pin.name}=={each.pin.version} ({each.pin.origin})"
                                f": --hash {' '.join(hashes or ())} names no wheel the "
                                "index serves")
    return chosen


# -- markers ---------------------------------------------------------------------------
def _marker(said: list[LineOptions | None]) -> Marker | None:
    """Where one entry applies: the or of its lines' markers; None (everywhere) when a
    line has none."""
    markers = [o.marker for o in said if o is not None and o.marker is not None]
    if len(markers) < len(said):
        return None
    unique = list(dict.fromkeys(str(m) for m in markers))
    return Marker(" or ".join(f"({m})" for m in unique)) if len(unique) > 1 else markers[0]


def _check_exclusive(name: str, entries: Sequence[_Entry], budget: _Budget) -> None:
    """MarkerConflictError unless at most one entry of ``name`` applies anywhere, or
    when the check cannot tell."""
    parsed: dict[int, _Parsed] = {}
    for (i, a), (j, b) in itertools.combinations(enumerate(entries), 2):
        pinned = f"{name} is pinned at {a.said()} and {b.said()}"
        if a.version == b.version:
            pinned += ", lines that allow other wheels of it (--hash)"
        if a.marker is None or b.marker is None:
            raise MarkerConflictError(f"{pinned}, and one of them has no marker: an "
                                      "installer would take both")
        try:
            budget.spend(pairs=1)
            first = parsed[i] = parsed.get(i) or _parse(a.marker, budget)
            second = parsed[j] = parsed.get(j) or _parse(b.marker, budget)
            witness = _common_environment(first, second, budget)
        except _Undecidable as why:
            raise MarkerConflictError(f"{pinned}, and the export cannot tell whether "
                                      f"both markers hold somewhere ({why})") from None
        if witness is not None:
            raise MarkerConflictError(f"{pinned}, and both markers hold where "
                                      + one_line(witness, 300))


class _Undecidable(Exception):
    """Why the overlap check cannot settle a pair of markers."""


class _Budget:
    """What the overlap check may still do in one export; past it, it cannot tell."""

    def __init__(self) -> None:
        self.pairs, self.work = MAX_PAIRS, MAX_WORK

    def spend(self, pairs: int = 0, work: int = 0) -> None:
        self.pairs, self.work = self.pairs - pairs, self.work - work
        if self.pairs < 0:
            raise _Undecidable(f"more than {MAX_PAIRS} pairs of entries to compare")
        if self.work < 0:
            raise _Undecidable("more comparisons and environments than it tries")


@dataclass(frozen=True)
class _Comparison:
    """``variable op literal``, the variable on the left."""

    variable: str
    op: str
    literal: str


# a comparison (its index), or (True: and / False: or, the terms)
_Tree: TypeAlias = "int | tuple[bool, tuple[_Tree, ...]]"


@dataclass(frozen=True)
class _Parsed:
    comparisons: tuple[_Comparison, ...]
    tree: _Tree


def _parse(marker: Marker, budget: _Budget) -> _Parsed:
    """The marker's comparisons and how and/or join them; _Undecidable for one the
    check cannot settle, or more than MAX_COMPARISONS."""
    comparisons: list[_Comparison] = []
    tree = _group(getattr(marker, "_markers", None), comparisons)
    budget.spend(work=_COST_PARSE * len(comparisons))
    return _Parsed(tuple(comparisons), tree)


def _group(items: object, into: list[_Comparison]) -> _Tree:
    """packaging's parse of a marker, a list of comparisons and nested lists joined by
    "and" and "or" ("and" binding tighter), as a tree."""
    if not isinstance(items, list):
        raise _Undecidable("a marker in a form the check does not read")
    alternatives: list[list[_Tree]] = [[]]
    for item in items:
        if item == "or":
            alternatives.append([])
        elif item != "and":
            alternatives[-1].append(_group(item, into) if isinstance(item, list)
                                    else _comparison(item, into))
    return False, tuple((True, tuple(terms)) for terms in alternatives)


def _comparison(item: object, into: list[_Comparison]) -> int:
    if len(into) >= MAX_COMPARISONS:
        raise _Undecidable(f"a marker of more than {MAX_COMPARISONS} comparisons")
    if not (isinstance(item, tuple) and len(item) == 3 and isinstance(item[1], Op)):
        raise _Undecidable("a marker in a form the check does not read")
    left, op, right = item
    if isinstance(left, Variable) and isinstance(right, Value):
        found = _Comparison(left.value, op.value, right.value)
    elif (isinstance(left, Value) and isinstance(right, Variable)
          and op.value in ("==", "!=") and right.value not in _VERSION_VARIABLES):
        found = _Comparison(right.value, op.value, left.value)  # text equality: either way
    else:
        raise _Undecidable(f"{one_line(str(left), 40)} {op.value} {one_line(str(right), 40)}"
                           ": a comparison the check does not read")
    if (why := _unsettled(found)) is not None:
        raise _Undecidable(why)
    into.append(found)
    return len(into) - 1


def _unsettled(found: _Comparison) -> str | None:
    """Why the check cannot settle this comparison, or None when it can: a variable
    no installer sets alone (extra), a substring or arbitrary (===) test, a version
    too long to try, and any comparison installers decide differently: an order of
    text (packaging >= 22 calls it false, older ones and PEP 508 compare the strings),
    a text variable against a version (some compare it as one)."""
    shown = one_line(f"{found.variable} {found.op} {found.literal!r}", 120)
    if found.variable not in default_environment():
        return f"they read {found.variable}"
    if found.op in ("in", "not in", "==="):
        return f"{shown}: a substring or arbitrary-equality test"
    if found.variable in _VERSION_VARIABLES:
        return _unsettled_version(found, shown)
    if found.op not in ("==", "!="):
        return f"{shown}: an order of text, which installers decide differently"
    if _version(found.literal) is not None:
        return f"{shown}: compared as a version by some installers, as text by others"
    return None


def _unsettled_version(found: _Comparison, shown: str) -> str | None:
    if len(found.literal) > MAX_LITERAL:
        return f"{shown[:60]}…: a version of more than {MAX_LITERAL} characters"
    if _specifier(found) is None:
        return (None if found.op in ("==", "!=")  # text, as every installer compares it
                else f"{shown}: an order of text, which installers decide differently")
    version = _version(found.literal.removesuffix(".*"))
    if version is None or len(version.release) > MAX_RELEASE:
        return f"{shown}: a version of more than {MAX_RELEASE} parts"
    return None


def _specifier(found: _Comparison) -> Specifier | None:
    try:
        return Specifier(f"{found.op}{found.literal}")
    except InvalidSpecifier:
        return None


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or a part of more than 4300 digits (int's limit)
        return None


def _common_environment(first: _Parsed, second: _Parsed, budget: _Budget) -> str | None:
    """Where both markers hold ("var='value', …"), or None when nowhere. Each variable
    takes every value its comparisons could tell apart (_values), so trying them all
    settles the pair; past MAX_ENVIRONMENTS or the budget, _Undecidable."""
    both = first.comparisons + second.comparisons
    names = sorted({c.variable for c in both})
    values = [_values(n, both) for n in names]
    size = math.prod(len(v) for v in values)
    if size > MAX_ENVIRONMENTS:
        raise _Undecidable("too many variables and values")
    outcomes = sum(len(values[names.index(c.variable)]) for c in both)
    budget.spend(work=size * len(both) + _COST_OUTCOME * outcomes)
    tables = [_table(p.comparisons, names, values) for p in (first, second)]
    for choice in itertools.product(*(range(len(v)) for v in values)):
        if _holds(first.tree, tables[0], choice) and _holds(second.tree, tables[1], choice):
            return ", ".join(f"{n}={v[c]!r}" for n, v, c in zip(names, values, choice,
                                                                 strict=True))
    return None


def _table(comparisons: Sequence[_Comparison], names: list[str],
           values: list[list[str]]) -> list[tuple[int, list[bool]]]:
    """Each comparison's variable (its place in ``names``) and its outcome for each
    value that variable takes: worked out once, looked up per environment."""
    table = []
    for found in comparisons:
        slot = names.index(found.variable)
        table.append((slot, _outcomes(found, values[slot])))
    return table


def _outcomes(found: _Comparison, values: list[str]) -> list[bool]:
    """Whether the comparison holds where its variable is each of ``values``, as
    packaging evaluates it: a version variable against a version by PEP 440
    (pre-releases included), anything else as text."""
    spec = _specifier(found) if found.variable in _VERSION_VARIABLES else None
    if spec is not None:
        return [spec.contains(v, prereleases=True) for v in values]
    return [(v == found.literal) == (found.op == "==") for v in values]


def _holds(tree: _Tree, table: list[tuple[int, list[bool]]], choice: tuple[int, ...]) -> bool:
    if isinstance(tree, int):
        slot, outcomes = table[tree]
        return outcomes[choice[slot]]
    conjunction, terms = tree
    if conjunction:
        return all(_holds(t, table, choice) for t in terms)
    return any(_holds(t, table, choice) for t in terms)


def _values(name: str, comparisons: Sequence[_Comparison]) -> list[str]:
    """Values the variable could take, one in each stretch its comparisons split: each
    literal, and for a version, the neighbours of each bound (_neighbours). Text
    variables are only compared for equality: each literal and one equal to none."""
    mine = [c for c in comparisons if c.variable == name]
    values = dict.fromkeys(c.literal for c in mine)
    if name not in _VERSION_VARIABLES:
        return list({**values, **dict.fromkeys(["", "\x7fother"])})
    for found in mine:
        for bound in _bounds(found):
            values.update(dict.fromkeys(_neighbours(bound)))
    return list(values)


def _bounds(found: _Comparison) -> list[Version]:
    """Where a version comparison's outcome can change: its version, and where a
    prefix match ends (3.12.* at 3.13, ~= 3.12.1 at 3.13)."""
    if _specifier(found) is None:
        return []  # text equality: the literal alone
    version = Version(found.literal.removesuffix(".*"))
    release = version.release
    bounds = [version]
    if found.literal.endswith(".*"):
        bounds.append(_bumped(version, len(release) - 1))
    if found.op == "~=":
        bounds.append(_bumped(version, len(release) - 2))
    return bounds


def _bumped(version: Version, place: int) -> Version:
    release = (*version.release[:place], version.release[place] + 1)
    return Version(_spelled(version.epoch, release))


def _neighbours(point: Version) -> list[str]:
    """Versions comparisons with ``point`` can tell apart, PEP 440's rules on pre-,
    post- and dev-releases of one release included (< 3.13 excludes 3.13.0b1; > 3.13
    excludes 3.13.post1): the point; its release's lowest (a dev-release), final and a
    post-release; the releases just above and below it; and beside a pre-, post- or
    dev-release the next and previous one of its kind (3.13.0a2 after 3.13.0a1)."""
    epoch, release = point.epoch, point.release
    shown = [str(point), _spelled(epoch, release, dev=0), _spelled(epoch, release),
             _spelled(epoch, release, post=0), _spelled(epoch, (*release, 0, 0, 1))]
    if nonzero := [i for i, part in enumerate(release) if part]:
        last = nonzero[-1]
        shown.append(_spelled(epoch, (*release[:last], release[last] - 1, 999_999)))
    pre, post, dev = point.pre, point.post, point.dev
    for other in ([dev - 1, dev + 1] if dev is not None else [0]):  # 0: just below
        if other >= 0:
            shown.append(_spelled(epoch, release, pre, post, other))
    if pre is not None:
        shown += [_spelled(epoch, release, p) for p in _pre_neighbours(pre)]
        shown.append(_spelled(epoch, release, pre, post=0))
    if post is not None:
        shown += [_spelled(epoch, release, pre, p) for p in (post - 1, post + 1) if p >= 0]
    return shown


def _pre_neighbours(pre: tuple[str, int]) -> list[tuple[str, int]]:
    letter, number = pre
    place = _PRE_LETTERS.index(letter)
    near = [(letter, number + 1)]
    if number:
        near.append((letter, number - 1))
    elif place:
        near.append((_PRE_LETTERS[place - 1], 999_999))
    return near


def _spelled(epoch: int, release: tuple[int, ...], pre: tuple[str, int] | None = None,
             post: int | None = None, dev: int | None = None) -> str:
    text = (f"{epoch}!" if epoch else "") + ".".join(map(str, release))
    text += f"{pre[0]}{pre[1]}" if pre is not None else ""
    text += f".post{post}" if post is not None else ""
    return text + (f".dev{dev}" if dev is not None else "")
