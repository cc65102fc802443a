"""The site license policy: which licenses `factory add` may approve without a human.

A project's license comes from its core metadata: the PEP 639 ``License-Expression``
when there is one, else the ``License ::`` classifiers, else a short ``License``
field. Each is read as an SPDX expression (``license-expression`` parses and
canonicalises it); an OR is allowed when one side is, an AND when every side is,
and ``X WITH exception`` when X is (an exception only grants more). Anything that
cannot be read as SPDX is "unknown" and goes to a human, like a license outside
the policy: nothing is approved on a guess.

    verdict = judge(meta.license_expression, meta.license, meta.classifiers,
                    settings.allowed_licenses)
    verdict.allowed, verdict.licenses, verdict.problem
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from factory.errors import printable

# Classifier names (after "License :: OSI Approved :: ") that name one SPDX license.
# "BSD License" names no single license and stays unknown unless the text says which.
_CLASSIFIERS = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "Apache Software License": "Apache-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "ISC License (ISCL)": "ISC",
    "The Unlicense (Unlicense)": "Unlicense",
    "zlib/libpng License": "Zlib",
    "BSD Zero Clause License (0BSD)": "0BSD",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "Public Domain": "LicenseRef-Public-Domain",
}
# Classifiers that name a category of licenses, not a license (pytest-timeout lists
# "License :: DFSG approved" beside its MIT classifier).
_CATEGORIES = frozenset({"OSI Approved", "DFSG approved"})
# Names that stand for more than one license: allowed only when every reading is.
_AMBIGUOUS = {"BSD License": ("BSD-2-Clause", "BSD-3-Clause")}
# Common spellings of the free-text License field that are not SPDX ids.
_ALIASES = {
    "apache 2.0": "Apache-2.0", "apache-2": "Apache-2.0", "apache 2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0", "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0", "apache software license 2.0": "Apache-2.0",
    "mit license": "MIT", "the mit license": "MIT", "mit/x11": "MIT", "expat": "MIT",
    "bsd-3": "BSD-3-Clause", "3-clause bsd": "BSD-3-Clause", "bsd 3-clause": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause", "new bsd license": "BSD-3-Clause", "modified bsd": "BSD-3-Clause",
    "bsd-2": "BSD-2-Clause", "2-clause bsd": "BSD-2-Clause", "simplified bsd": "BSD-2-Clause",
    "psf": "PSF-2.0", "psf license": "PSF-2.0", "python software foundation license": "PSF-2.0",
    "mpl 2.0": "MPL-2.0", "mpl-2": "MPL-2.0", "isc license": "ISC",
    "apache 2.0 license": "Apache-2.0", "apache license version 2.0": "Apache-2.0",
    "bsd 3-clause license": "BSD-3-Clause", "bsd-3-clause license": "BSD-3-Clause",
    "bsd 2-clause": "BSD-2-Clause", "bsd 2-clause license": "BSD-2-Clause",
    "public domain": "LicenseRef-Public-Domain",
}
_MAX_TEXT = 200  # a longer License field is the license text itself, not its name


@dataclass(frozen=True)
class Verdict:
    """What the metadata declares, read as SPDX, and whether the site policy allows it."""

    expression: str | None  # canonical SPDX, None when nothing could be read
    licenses: tuple[str, ...]  # the SPDX ids the expression names (for the recipe)
    allowed: bool
    problem: str | None  # why a human must look (None when allowed)


@functools.cache
def _licensing() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


@functools.lru_cache(maxsize=4096)  # a catalogue's fetch asks about the same few texts
def canonical(text: str) -> str | None:
    """``text`` as a canonical SPDX expression, or None when it is not one."""
    from license_expression import ExpressionError

    text = text.strip()
    if not text or len(text) > _MAX_TEXT or "\n" in text:
        return None
    text = _ALIASES.get(text.lower().rstrip("."), text)
    if text.startswith("LicenseRef-"):
        return text
    for attempt in (text, _aliased_terms(text)):
        try:
            parsed = _licensing().parse(attempt, validate=True, strict=True)
        except (ExpressionError, Exception):  # the parser raises several unrelated types
            continue
        return str(parsed) if parsed is not None else None
    return None


def _aliased_terms(text: str) -> str:
    """``BSD 3-Clause OR Apache-2.0``: each side of an AND/OR read through the aliases."""
    parts = re.split(r"(\s+(?:OR|AND)\s+|[()])", text)
    return "".join(_ALIASES.get(p.strip().lower().rstrip("."), p) for p in parts)


def declared(expression: str | None, license_text: str | None,
             classifiers: Iterable[str]) -> list[str]:
    """The declared license as canonical SPDX expressions: one, or several readings of
    an ambiguous name ("BSD License"); empty when nothing can be read as SPDX."""
    if expression:
        return [spdx] if (spdx := canonical(expression)) else []
    # "License :: OSI Approved" alone is a category, not a license
    named = [parts[-1] for parts in ([p.strip() for p in c.split("::")] for c in classifiers)
             if len(parts) >= 2 and parts[0] == "License" and parts[-1] not in _CATEGORIES]
    if not named:
        return _readings(license_text) if license_text else []
    mapped = {_CLASSIFIERS[name] for name in named if name in _CLASSIFIERS}
    vague = [name for name in named if name not in _CLASSIFIERS]
    if any(name not in _AMBIGUOUS for name in vague):
        return []  # a classifier we cannot read (Proprietary, a GPL of no version): a human
    if vague:  # the License text may settle which license a vague classifier means
        settled = _readings(license_text) if license_text else []
        alternatives = settled or sorted({a for name in vague for a in _AMBIGUOUS[name]})
    else:
        alternatives = [""]
    # Several classifiers: the metadata does not say whether they are a choice or a
    # combination, so each must be allowed (AND).
    readings = []
    for alternative in alternatives:
        terms = sorted(mapped | ({f"({alternative})"} if alternative else set()))
        if (spdx := canonical(" AND ".join(terms))) is None:
            return []
        readings.append(spdx)
    return readings


def _readings(text: str) -> list[str]:
    key = text.strip().lower().rstrip(".")
    for name, readings in _AMBIGUOUS.items():
        if key in (name.lower(), name.lower().removesuffix(" license")):
            return list(readings)
    return [spdx] if (spdx := canonical(text)) else []


def _symbols(node: Any) -> list[str]:
    if hasattr(node, "license_symbol"):  # X WITH exception: X is the license
        return [str(node.license_symbol.key)]
    if getattr(node, "args", ()):
        return [s for arg in node.args for s in _symbols(arg)]
    return [str(node.key)]


def _allows(node: Any, allowed: frozenset[str]) -> bool:
    if hasattr(node, "license_symbol"):
        return str(node.license_symbol.key).lower() in allowed
    args = getattr(node, "args", ())
    if not args:
        return str(node.key).lower() in allowed
    operator = type(node).__name__.upper()
    results = [_allows(arg, allowed) for arg in args]
    return any(results) if operator == "OR" else all(results)


def judge(expression: str | None, license_text: str | None, classifiers: Iterable[str],
          allowed: Iterable[str], *, reviewed: bool = False) -> Verdict:
    """Read the declared license and judge it against ``allowed`` (SPDX ids, or names
    this module reads as SPDX, like "Public domain").

    An ambiguous name ("BSD License") is allowed by the site policy only when every
    reading is; a recipe's own list was written by someone who read the license
    (``reviewed``), so there one reading it names is enough."""
    return _judge(expression, license_text, tuple(classifiers), tuple(allowed), reviewed)


@functools.lru_cache(maxsize=4096)  # a catalogue's fetch judges the same few licenses
def _judge(expression: str | None, license_text: str | None, classifiers: tuple[str, ...],
           allowed: tuple[str, ...], reviewed: bool) -> Verdict:
    readings = declared(expression, license_text, tuple(classifiers))
    if not readings:
        shown = (expression or license_text or "").strip()
        said = f" ({printable(shown.splitlines()[0][:60])!r})" if shown else ""
        return Verdict(None, (), False, f"license unknown{said}: not an SPDX expression")
    allowed_set = frozenset((canonical(a) or a).lower() for a in allowed)
    ids: list[str] = []
    verdicts = []
    for spdx in readings:
        tree = None if spdx.startswith("LicenseRef-") else _licensing().parse(spdx)
        ids += _symbols(tree) if tree is not None else [spdx]
        verdicts.append(_allows(tree, allowed_set) if tree is not None
                        else spdx.lower() in allowed_set)
    ok = any(verdicts) if reviewed else all(verdicts)
    shown = readings[0] if len(readings) == 1 else " or ".join(readings) + " (ambiguous)"
    problem = None if ok else f"license {shown} is outside the site policy"
    return Verdict(shown, tuple(dict.fromkeys(ids)), ok, problem)


def allowed_ids(ids: Iterable[str], allowed: Iterable[str]) -> tuple[str, ...]:
    """The ids among ``ids`` that ``allowed`` names (compared as SPDX)."""
    wanted = {(canonical(a) or a).lower() for a in allowed}
    return tuple(i for i in ids if i.lower() in wanted)
