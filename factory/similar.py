"""Names close to an approved one: typos, separators and look-alike characters.

A requested name is folded (Unicode NFKC, case, Cyrillic and Greek homoglyphs,
accents) before it is compared with the approved names: exactly (a confusable
spelling of one), by a skeleton that also forgets separators and 0/o, 1/l/i,
rn/m, vv/w, and by Damerau-Levenshtein distance (optimal string alignment),
at most 2 and less for short names. The work does not grow with the approved
names: a deletion-neighbourhood index (in the manner of SymSpell) finds the few
names that can be that close, a character-set bitmask test and a bit-parallel
distance decide. The index is built once per set of names, about L + 2 entries
for a name of L characters.

    matcher = Matcher(["requests", "six", "flask"])
    matcher.suggest(fold("reqests"))     # [Suggestion("requests", 1, "a typo")]
    matcher.suggest(fold("r\u0435quests"))   # Cyrillic "е": [Suggestion("requests", 0, ...)]
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

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


def _deletions(text: str, most: int = 1) -> set[str]:
    """``text`` and every string at most ``most`` deletions from it."""
    found = {text}
    for deleted in range(1, min(most, len(text)) + 1):
        found.update(map("".join, combinations(text, len(text) - deleted)))
    return found


# Names of at most this many characters are indexed by their whole deletion
# neighbourhood (at most 46 strings); a longer one by the one-deletion strings of its
# halves (about its length in all).
_WHOLE = 9


class _Table:
    """Deletion strings -> the approved names they come from. Most strings come from one
    name, held as the value itself (a list each would cost more than all the rest)."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}
        self.more: dict[str, list[str]] = {}  # the names after the first

    def add(self, pieces: set[str], name: str) -> None:
        taken = self.first.keys() & pieces
        for piece in taken:
            self.more.setdefault(piece, []).append(name)
        self.first.update(dict.fromkeys(pieces - taken if taken else pieces, name))

    def find(self, pieces: set[str], found: set[str]) -> None:
        for piece in self.first.keys() & pieces:
            found.add(self.first[piece])
            found.update(self.more.get(piece, ()))


_last: list[Matcher | None] = [None]  # the matcher built last


class Matcher:
    """The approved names, indexed once for ``suggest`` (by skeleton, and by deletion
    neighbourhoods for the edit distance).

    Why the index finds every name within the distance bound ``k`` (at most 2, and no
    more than ``threshold`` of either length) of a key: an alignment of the two with at
    most ``k`` edits (substitutions, insertions, deletions, transpositions of neighbours)
    leaves a common subsequence after at most ``k`` deletions from each. So a name of at
    most ``_WHOLE`` characters shares a string of its deletion neighbourhood with the
    key's. A longer name, cut into halves at ``m = len // 2``: each edit falls in one
    half, except a transposition across the cut, which costs each half one deletion on
    one side only; so some half needs at most one deletion on each side, the key's piece
    for it is the key cut at ``m`` shifted by at most one (its first ``m - 1``, ``m`` or
    ``m + 1`` characters, or its last ``len - m`` give or take one), and that piece and
    the half share a one-deletion string. Every name found is then measured exactly."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)
        last = _last[0]
        if last is not None and last.names == self.names:
            # The index is read-only once built: the same names (a publish that approves
            # nothing new) share it rather than build it again (0.3 s at 10,000 names).
            self.__dict__.update(last.__dict__)
            return
        self._skeletons: dict[str, list[str]] = {}
        self._masks: dict[str, int] = {}
        self._whole, self._heads, self._tails = _Table(), _Table(), _Table()
        for name in sorted(self.names):
            self._skeletons.setdefault(skeleton(name), []).append(name)
            most = threshold(len(name))
            if most == 0:
                continue  # matched by equality only, which "confusable" already finds
            self._masks[name] = _mask(name)
            if len(name) <= _WHOLE:
                self._whole.add(_deletions(name, most), name)
                continue
            middle = len(name) // 2
            self._heads.add(_deletions(name[:middle]), name)
            self._tails.add(_deletions(name[middle:]), name)
        self._lengths = frozenset(len(name) for name in self._masks)
        _last[0] = self

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

    def _candidates(self, key: str, bound: int) -> set[str]:
        """Every approved name within ``bound`` edits of ``key`` (and a few more)."""
        size = len(key)
        found: set[str] = set()
        lengths = [n for n in range(size - bound, size + bound + 1) if n in self._lengths]
        if lengths and lengths[0] <= _WHOLE:
            self._whole.find(_deletions(key, bound), found)
        heads = {c for n in lengths if n > _WHOLE for c in range(n // 2 - 1, n // 2 + 2)}
        tails = {c for n in lengths if n > _WHOLE for c in range(n - n // 2 - 1, n - n // 2 + 2)}
        for table, pieces in ((self._heads, {key[:c] for c in heads if c <= size}),
                              (self._tails, {key[size - c:] for c in tails if c <= size})):
            if pieces:
                table.find(set().union(*map(_deletions, pieces)), found)
        return found

    def _close(self, key: str) -> Iterable[tuple[str, int]]:
        """Approved names within the edit-distance threshold of ``key``."""
        bound = threshold(len(key))
        if bound == 0:
            return
        wanted, pattern = _mask(key), None
        for name in self._candidates(key, bound):
            limit = min(bound, threshold(len(name)))
            if abs(len(name) - len(key)) > limit:
                continue
            # Each edit adds at most one character to what either name lacks of the
            # other: a cheap test rules out most of the rest.
            mask = self._masks[name]
            if (wanted & ~mask).bit_count() > limit or (mask & ~wanted).bit_count() > limit:
                continue
            pattern = pattern or Pattern(key)  # built only when a name is left
            dist = pattern.distance(name)
            if dist <= limit:
                yield name, dist
