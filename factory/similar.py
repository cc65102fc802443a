"""Names close to an approved one: typos, separators and look-alike characters.

A requested name is folded (Unicode NFKC, case, Cyrillic and Greek homoglyphs,
accents) before it is compared with the approved names: exactly (a confusable
spelling of one), by a skeleton that also forgets separators and 0/o, 1/l/i,
rn/m, vv/w, and by Damerau-Levenshtein distance (optimal string alignment),
at most 2 and less for short names. The work is linear in the approved names
with a small constant: a length window, a character-set bitmask test, and a
bit-parallel distance on the few names left.

    matcher = Matcher(["requests", "six", "flask"])
    matcher.suggest(fold("reqests"))     # [Suggestion("requests", 1, "a typo")]
    matcher.suggest(fold("r\u0435quests"))   # Cyrillic "е": [Suggestion("requests", 0, ...)]
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

MAX_SUGGESTIONS = 5
# Lower-case homoglyphs of Latin letters (after NFKC and casefold, so capitals are
# covered): Cyrillic, Greek, and Latin letters with no decomposition.
_HOMOGLYPHS = str.maketrans({
    "а": "a", "в": "b", "ь": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "ɡ": "g",
    "һ": "h", "н": "h", "і": "i", "ї": "i", "ј": "j", "к": "k", "ӏ": "l", "м": "m",
    "п": "n", "о": "o", "р": "p", "ԛ": "q", "г": "r", "ѕ": "s", "т": "t", "у": "y",
    "ԝ": "w", "х": "x", "з": "3",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ζ": "z", "ω": "w",
    "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŀ": "l",
})
_SEPARATORS = re.compile(r"[-_.]+")
_LOOKALIKES = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("i", "l"))
_OTHER = "?"  # stands for any character no project name has: it matches nothing
# A name NFKC makes longer than this is no spelling of an approved name (at most 200
# characters; separators and rn/m, vv/w at most quadruple one): it is not matched.
LONGEST = 800
_BITS = {c: 1 << i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz0123456789-")}
_OTHER_BIT = 1 << len(_BITS)


def fold(name: str) -> str:
    """``name`` as the approved name it would be read as: NFKC, case folded, homoglyphs
    and accents made Latin, separators normalized (PEP 503); any other character
    becomes "?", which matches nothing."""
    text = unicodedata.normalize("NFKC", name)
    if len(text) > LONGEST:  # a few characters can expand to 18 each (U+FDFA)
        return _OTHER
    text = text.casefold().translate(_HOMOGLYPHS)
    text = "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c))
    text = _SEPARATORS.sub("-", text)
    return "".join(c if c in _BITS else _OTHER for c in text)


def skeleton(key: str) -> str:
    """What a name looks like, read quickly: no separators, and 0/o, 1/l/i, rn/m, vv/w
    taken for one another."""
    text = key.replace("-", "")
    for seen, meant in _LOOKALIKES:
        text = text.replace(seen, meant)
    return text


def threshold(length: int) -> int:
    """The largest edit distance still offered for a name of ``length`` characters:
    none for 1-2 letters (they would match everything), 1 up to 5, then 2."""
    return 0 if length <= 2 else 1 if length <= 5 else 2


def _mask(text: str) -> int:
    mask = 0
    for char in text:
        mask |= _BITS.get(char, _OTHER_BIT)
    return mask


class Pattern:
    """One name, ready to be compared with many: the optimal-string-alignment
    (restricted Damerau-Levenshtein) distance by Hyyrö's bit-parallel algorithm (2003),
    a few integer operations per character of the other name."""

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self._full = (1 << len(text)) - 1
        self._last = 1 << (len(text) - 1) if text else 0
        self._positions: dict[str, int] = {}
        for i, char in enumerate(text):
            self._positions[char] = self._positions.get(char, 0) | 1 << i

    def distance(self, other: str) -> int:
        if not self.length:
            return len(other)
        full, last, positions = self._full, self._last, self._positions
        vp, vn, d0, before, dist = full, 0, 0, 0, self.length
        for char in other:
            pm = positions.get(char, 0)
            transposed = ((~d0 & pm) << 1) & before
            d0 = ((((pm & vp) + vp) & full) ^ vp) | pm | vn | transposed
            hp = vn | (~(d0 | vp) & full)
            hn = d0 & vp
            if hp & last:
                dist += 1
            elif hn & last:
                dist -= 1
            hp = ((hp << 1) | 1) & full
            hn = (hn << 1) & full
            vp = hn | (~(d0 | hp) & full)
            vn = hp & d0
            before = pm
        return dist


def distance(a: str, b: str, bound: int) -> int:
    """The optimal-string-alignment distance of ``a`` and ``b``, or ``bound + 1`` when
    it is larger than ``bound``."""
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    return min(Pattern(a).distance(b), bound + 1)


@dataclass(frozen=True)
class Suggestion:
    name: str
    distance: int
    why: str  # "confusable characters", "look-alike spelling", "a typo"


class Matcher:
    """The approved names, indexed once for ``suggest`` (by length, character set and
    skeleton)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)
        self._by_length: dict[int, list[tuple[str, int]]] = {}
        self._skeletons: dict[str, list[str]] = {}
        for name in sorted(self.names):
            self._by_length.setdefault(len(name), []).append((name, _mask(name)))
            self._skeletons.setdefault(skeleton(name), []).append(name)

    def suggest(self, key: str, limit: int = MAX_SUGGESTIONS) -> list[Suggestion]:
        """Approved names ``key`` (a ``fold``-ed name) may have meant, best first."""
        found: dict[str, Suggestion] = {}
        if key.count(_OTHER) > threshold(len(key)):
            return []  # each "?" is an edit no approved name spares: none is close enough
        if key in self.names:
            found[key] = Suggestion(key, 0, "confusable characters")
        for name in self._skeletons.get(skeleton(key), ()):
            found.setdefault(name, Suggestion(name, 0, "look-alike spelling"))
        for name, dist in self._close(key):
            found.setdefault(name, Suggestion(name, dist, "a typo"))
        ranked = sorted(found.values(),
                        key=lambda s: (s.distance, abs(len(s.name) - len(key)), s.name))
        return ranked[:limit]

    def _close(self, key: str) -> Iterable[tuple[str, int]]:
        """Approved names within the edit-distance threshold of ``key``."""
        bound = threshold(len(key))
        if bound == 0:
            return
        wanted, pattern = _mask(key), None
        for length in range(len(key) - bound, len(key) + bound + 1):
            limit = min(bound, threshold(length))
            # Each edit adds at most one character to what either name lacks of the
            # other: a cheap test in one pass rules out nearly every name.
            near = [item for item in self._by_length.get(length, ())
                    if (wanted ^ item[1]).bit_count() <= 2 * limit]
            for name, mask in near:
                if (wanted & ~mask).bit_count() > limit or (mask & ~wanted).bit_count() > limit:
                    continue
                pattern = pattern or Pattern(key)  # built only when a name is left
                dist = pattern.distance(name)
                if dist <= limit:
                    yield name, dist
