"""`factory.similar.Matcher`'s deletion-neighbourhood index gives exactly the answers of
the linear scan it replaced (kept here as the reference): the same names, distances,
order and reasons, for typos, transpositions, separators, look-alikes, confusable
characters and unmatchable ones; and its cost does not grow with the approved names.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from factory.similar import (
    _OTHER,
    MAX_SUGGESTIONS,
    Matcher,
    Pattern,
    Suggestion,
    _mask,
    fold,
    skeleton,
    threshold,
)

EVERYTHING = 10**6  # a limit no test reaches: every suggestion, not only the first five


class ScanMatcher:
    """The matcher as it was before the index (commit e43d594): every approved name of a
    length in the window, a character-set test, then the bit-parallel distance."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)
        self._by_length: dict[int, list[tuple[str, int]]] = {}
        self._skeletons: dict[str, list[str]] = {}
        for name in sorted(self.names):
            self._by_length.setdefault(len(name), []).append((name, _mask(name)))
            self._skeletons.setdefault(skeleton(name), []).append(name)

    def suggest(self, key: str, limit: int = MAX_SUGGESTIONS) -> list[Suggestion]:
        found: dict[str, Suggestion] = {}
        if key.count(_OTHER) > threshold(len(key)):
            return []
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
        bound = threshold(len(key))
        if bound == 0:
            return
        wanted, pattern = _mask(key), None
        for length in range(len(key) - bound, len(key) + bound + 1):
            limit = min(bound, threshold(length))
            near = [item for item in self._by_length.get(length, ())
                    if (wanted ^ item[1]).bit_count() <= 2 * limit]
            for name, mask in near:
                if (wanted & ~mask).bit_count() > limit or (mask & ~wanted).bit_count() > limit:
                    continue
                pattern = pattern or Pattern(key)
                dist = pattern.distance(name)
                if dist <= limit:
                    yield name, dist


def osa(a: str, b: str) -> int:
    """The optimal-string-alignment distance, by the textbook dynamic programme."""
    rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        rows[i][0] = i
    for j in range(len(b) + 1):
        rows[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


# A small alphabet, so that random names are often close to one another, with the
# characters the look-alike rules rewrite (rn/m, vv/w, 0/o, 1/l/i) and separators.
LETTERS = "abcmnrvwo01li-"
# Homoglyphs, accents, full-width and other scripts: what fold() turns into the above
# (or into "?", which matches nothing).
CONFUSABLE = "аеоіѕрсԁһаα οιρ" + "àéöñ" + "ＡＢａｂ" + "_.  " + "中ß\u0301\u200b"

names_st = st.lists(st.text(LETTERS, min_size=1, max_size=16), max_size=40)


@st.composite
def edited(draw: st.DrawFn, names: list[str]) -> str:
    """A key: an approved name with up to three random edits, or any text."""
    if not names or draw(st.integers(0, 4)) == 0:
        return draw(st.text(LETTERS + "?", max_size=18))
    text = list(draw(st.sampled_from(names)))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["sub", "ins", "del", "swap"]))
        at = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from(LETTERS + "?"))
        if op == "ins":
            text.insert(at, char)
        elif op == "sub" and at < len(text):
            text[at] = char
        elif op == "del" and at < len(text):
            del text[at]
        elif op == "swap" and at + 1 < len(text):
            text[at], text[at + 1] = text[at + 1], text[at]
    return "".join(text)


@hsettings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), names_st)
def test_the_index_suggests_exactly_what_the_scan_did(data: st.DataObject,
                                                      names: list[str]) -> None:
    matcher, reference = Matcher(names), ScanMatcher(names)
    for _ in range(5):
        key = data.draw(edited(names))
        assert matcher.suggest(key, EVERYTHING) == reference.suggest(key, EVERYTHING), key
        assert matcher.suggest(key) == reference.suggest(key)


@hsettings(max_examples=500, deadline=None)
@given(st.data(), st.lists(st.text(LETTERS, min_size=1, max_size=12), min_size=1,
                           max_size=25))
def test_confusable_spellings_fold_to_the_same_suggestions(data: st.DataObject,
                                                           names: list[str]) -> None:
    # Keys as a client would send them: an approved name with its letters swapped for
    # look-alikes of other scripts, capitals, accents, separators; then fold()-ed.
    matcher, reference = Matcher(names), ScanMatcher(names)
    for _ in range(5):
        base = data.draw(st.sampled_from(names))
        swaps = data.draw(st.lists(st.tuples(st.integers(0, 20), st.sampled_from(CONFUSABLE)),
                                   max_size=3))
        text = list(base)
        for at, char in swaps:
            text.insert(min(at, len(text)), char) if at % 2 else \
                text.__setitem__(min(at, len(text) - 1), char)
        key = fold("".join(text))
        assert matcher.suggest(key, EVERYTHING) == reference.suggest(key, EVERYTHING), key


@hsettings(max_examples=400, deadline=None)
@given(st.text(LETTERS + "?xyz", max_size=14), st.text(LETTERS + "xyz", max_size=14))
def test_the_bit_parallel_distance_is_the_textbook_one(a: str, b: str) -> None:
    # What the index relies on: a name it lets through is measured exactly.
    assert Pattern(a).distance(b) == osa(a, b)


def _random_names(count: int, seed: int = 18) -> list[str]:
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        found.add("".join(rng.choice(string.ascii_lowercase + "-") for _ in
                          range(rng.randint(3, 24))).strip("-") or "x")
    return sorted(found)


def test_the_same_at_a_thousand_names_of_every_length() -> None:
    names = _random_names(1000) + ["requests", "six", "flask", "pip", "np", "urllib3",
                                   "python-dateutil", "rn" * 5, "vv" * 6, "l0l0l0"]
    matcher, reference = Matcher(names), ScanMatcher(names)
    rng = random.Random(7)
    keys = ["reqests", "requsets", "r\u0435quests", "py-thon_dateutil", "m" * 5, "w" * 6,
            "1o1o1o", "six", "sx", "", "?", "re?uests", "a" * 200, "a" * 800]
    for name in rng.sample(names, 300):
        i = rng.randrange(len(name))
        keys += [name[:i] + name[i + 1:], name[:i] + "q" + name[i + 1:],
                 name[:i] + name[i:i + 2][::-1] + name[i + 2:], name + "s",
                 name[:i] + "zz" + name[i + 2:]]
    for key in keys:
        key = fold(key)
        assert matcher.suggest(key, EVERYTHING) == reference.suggest(key, EVERYTHING), key


def test_matching_does_not_grow_with_the_approved_names() -> None:
    """What a lookup examines (the candidate names it tests) stays a handful whether
    1,000 or 30,000 names are approved; the scan examined every name. Counted, not
    timed: a loaded machine cannot make it flake (make bench times it: comparison 11)."""
    from factory.similar import threshold

    small, large = _random_names(1000), _random_names(30_000)
    typos = [name[:2] + "q" + name[3:] for name in _random_names(2000, seed=3)]

    def per_key(names: list[str]) -> float:
        matcher = Matcher(names)
        examined = sum(len(matcher._candidates(t, threshold(len(t)))) for t in typos)
        return examined / len(typos)

    at_small, at_large = per_key(small), per_key(large)
    assert at_large < 20, at_large  # of 30,000
    assert at_large < 4 * at_small + 5, (at_small, at_large)
