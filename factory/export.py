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
- a requirements line's environment marker becomes its entry's ``marker`` (lines of
  one version are or-ed); two versions of one name need markers that never hold
  together, else the export is refused;
- a line's ``--hash`` options choose among the wheels served; none of them served
  is an error, as ``factory verify`` says of it.

    from factory.export import pylock_of
    exported = pylock_of(Path("requirements.txt"), view, settings.index_url, publisher)
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

from factory import __version__
from factory.environment import Match, Pin, match, read_pins, requirements_pins
from factory.errors import FactoryError, one_line
from factory.verify.view import IndexView, Published

if TYPE_CHECKING:
    from factory.lock.model import LockedComponent

PYLOCK_VERSION = "1.0"
_HASH = re.compile(r"(?:^|\s)--hash[=\s]+(\S+)")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
MAX_ENVIRONMENTS = 20_000  # environments tried to tell two markers apart
MAX_SHOWN = 5  # pins or digests named in one error


class ExportError(FactoryError):
    default_hint = ("publish the missing releases (`factory build` and `factory publish`), "
                    "or drop them from the requirements")


class HashMismatchError(ExportError):
    default_hint = ("the requirements file pins another file than the index serves: check "
                    "where its hashes came from (`factory verify FILE` names each file)")


class MarkerConflictError(ExportError):
    default_hint = ("pin one version per project, or give each version a marker that "
                    "excludes the others (python_version < \"3.12\" / >= \"3.12\")")


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
        text = target.read_text(encoding="utf-8")
        pins = requirements_pins(text, target.name)
        options = requirement_options(text, target.name)
        check_hashes(index, pins, options)
    elif kind == "lock":
        pins, left_out = approved_pins(target.read_text(encoding="utf-8"), target.name)
    text = pylock(match(index, pins), base_url, publisher, options)
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
    """Each requirement line's marker and --hash options, by its pin's origin (file:line).
    The text is one requirements_pins has read (every line a name==version pin)."""
    options: dict[str, LineOptions] = {}
    for number, line in _logical_lines(text):
        hashes = tuple(h.lower() for h in _HASH.findall(line))
        marker = Requirement(_HASH.sub(" ", line).strip()).marker
        options[f"{origin}:{number}"] = LineOptions(marker, hashes or None)
    return options


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(the number of its first line, a line) without comments, a line that ends in a
    backslash joined to the next, as pip joins them (a --hash per line, say)."""
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        start = start if buffer else number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        if (buffer + line).strip():
            yield start, (buffer + line).strip()
        buffer = ""
    if buffer.strip():
        yield start, buffer.strip()


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
def index_root(url: str) -> str:
    """The index's root URL, given it or its simple page (what pip's --index-url takes)."""
    base = url.strip().rstrip("/")
    return base[: -len("/simple")] if base.endswith("/simple") else base


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
    grouped: dict[str, dict[str, list[Match]]] = {}
    for found in matches:
        grouped.setdefault(found.pin.name, {}).setdefault(found.pin.version, []).append(found)
    packages = []
    for name in sorted(grouped):
        versions = grouped[name]
        markers = {v: _marker([(options or {}).get(m.pin.origin) for m in found])
                   for v, found in versions.items()}
        _check_exclusive(name, versions, markers)
        for version in sorted(versions, key=_order):
            wheels = _wheels(versions[version], options or {})
            packages.append(_package(name, wheels, markers[version], base, publisher))
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
    except InvalidVersion:
        return Version("0"), version


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _wheels(found: list[Match], options: Mapping[str, LineOptions]) -> list[Published]:
    """The served wheels of one version its lines accept: those a line's --hash names
    (pip installs no other), all of them for a line without; HashMismatchError when a
    line's hashes name none of them."""
    accepted: dict[str, Published] = {}
    for each in found:
        hashes = (options.get(each.pin.origin) or LineOptions()).hashes
        chosen = [f for f in each.files
                  if hashes is None or f"sha256:{f.entry.sha256.lower()}" in hashes]
        if not chosen:
            raise HashMismatchError(f"{each.pin.name}=={each.pin.version} ({each.pin.origin})"
                                    f": --hash {' '.join(hashes or ())} names no wheel the "
                                    "index serves")
        accepted.update((f.filename, f) for f in chosen)
    return [accepted[k] for k in sorted(accepted)]


# -- markers ---------------------------------------------------------------------------
def _marker(said: list[LineOptions | None]) -> Marker | None:
    """Where one version applies: the or of its lines' markers; None (everywhere) when
    a line has none."""
    markers = [o.marker for o in said if o is not None and o.marker is not None]
    if len(markers) < len(said):
        return None
    unique = list(dict.fromkeys(str(m) for m in markers))
    return Marker(" or ".join(f"({m})" for m in unique)) if len(unique) > 1 else markers[0]


def _check_exclusive(name: str, versions: Mapping[str, list[Match]],
                     markers: Mapping[str, Marker | None]) -> None:
    """MarkerConflictError unless at most one version of ``name`` applies anywhere."""
    for a, b in itertools.combinations(sorted(versions, key=_order), 2):
        pinned = (f"{name} is pinned at " + " and ".join(
            f"{v} ({', '.join(m.pin.origin for m in versions[v])})" for v in (a, b)))
        first, second = markers[a], markers[b]
        if first is None or second is None:
            raise MarkerConflictError(f"{pinned}, and one of them has no marker: an "
                                      "installer would take both")
        if (unsure := _undecidable(first, second)) is not None:
            raise MarkerConflictError(f"{pinned}, and the export cannot tell whether "
                                      f"both markers hold somewhere ({unsure})")
        if (witness := _common_environment(first, second)) is not None:
            raise MarkerConflictError(f"{pinned}, and both markers hold where {witness}")


def _variables(first: Marker, second: Marker) -> tuple[list[str], str]:
    """The variables the two markers read, and their text without its literals."""
    unquoted = _QUOTED.sub("", f"{first} {second}")
    return sorted(set(re.findall(r"[a-z_]+", unquoted)) - {"and", "or", "in", "not"}), unquoted


def _undecidable(first: Marker, second: Marker) -> str | None:
    """Why the search below cannot settle the pair, or None when it can."""
    names, unquoted = _variables(first, second)
    unknown = [n for n in names if n not in default_environment()]
    if unknown:
        return "they read " + ", ".join(unknown)
    if re.search(r"\bin\b", unquoted):
        return "a substring test (in)"
    if len(_literals(first, second)) ** len(names) > MAX_ENVIRONMENTS:
        return "too many variables and values"
    return None


def _literals(first: Marker, second: Marker) -> list[str]:
    return _candidates([q[1:-1] for q in _QUOTED.findall(f"{first} {second}")])


def _common_environment(first: Marker, second: Marker) -> str | None:
    """Where both markers hold ("var='value', …"), or None when nowhere. Each variable
    takes every value its comparisons could tell apart (each literal, version bounds and
    their neighbours), so trying them all settles the pair."""
    names, _ = _variables(first, second)
    base = {name: str(value) for name, value in default_environment().items()}
    for values in itertools.product(_literals(first, second), repeat=len(names)):
        environment = {**base, **dict(zip(names, values, strict=True))}
        if first.evaluate(environment) and second.evaluate(environment):
            return ", ".join(f"{n}={v!r}" for n, v in zip(names, values, strict=True))
    return None


def _candidates(literals: list[str]) -> list[str]:
    """Values a marker variable compared with these literals could take, one in each
    stretch the comparisons split: each literal, each version bound (3.12.* ends at
    3.13, ~=3.12 at 4) with a value just below and just above it, and one more."""
    values = dict.fromkeys([*literals, "", "\x7fother"])
    for literal in literals:
        try:
            release = Version(literal.removesuffix(".*")).release
        except InvalidVersion:
            continue
        for bound in _bounds(release):
            values.update(dict.fromkeys(_around(bound)))
    return list(values)


def _bounds(release: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    yield release
    for size in range(1, len(release) + 1):  # where a prefix match ends
        yield (*release[: size - 1], release[size - 1] + 1)


def _around(release: tuple[int, ...]) -> list[str]:
    """The release, the next one above it, and (unless it is 0) the last one below."""
    shown = [".".join(map(str, release)), ".".join(map(str, (*release, 0, 0, 1)))]
    nonzero = [i for i, part in enumerate(release) if part]
    if nonzero:
        last = nonzero[-1]
        shown.append(".".join(map(str, (*release[:last], release[last] - 1, 999_999))))
    return shown

