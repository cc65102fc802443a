"""What a failure holds back: the lock's left-out rows and `factory add`'s held recipes
share one rule."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from factory._internal.graphs import held_back


def test_each_node_is_held_by_the_first_bad_one_it_needs() -> None:
    needs = {"app": ["web", "db"], "web": ["zlib-bad"], "db": ["a-bad"], "ok": ["lib"],
             "lib": [], "loop1": ["loop2"], "loop2": ["loop1", "a-bad"],
             "zlib-bad": ["a-bad"], "top": ["zlib-bad"]}
    assert held_back(needs, {"a-bad", "zlib-bad"}) == {
        "app": "a-bad", "web": "zlib-bad", "db": "a-bad", "loop1": "a-bad", "loop2": "a-bad",
        "top": "zlib-bad"}  # zlib-bad's own needs are its story


def _reaches(needs: dict[str, list[str]], start: str, target: str, bad: set[str]) -> bool:
    """Whether ``target`` is reached from ``start`` through nodes that are not bad."""
    seen, stack = {start}, [start]
    while stack:
        for nxt in needs.get(stack.pop(), []):
            if nxt == target:
                return True
            if nxt not in seen and nxt not in bad:
                seen.add(nxt)
                stack.append(nxt)
    return False


NODES = st.sampled_from([f"n{i}" for i in range(8)])


@hsettings(max_examples=300, deadline=None)
@given(st.dictionaries(NODES, st.lists(NODES, max_size=4), max_size=8),
       st.sets(NODES, max_size=3))
def test_property_the_cause_is_the_first_bad_node_reachable(
        needs: dict[str, list[str]], bad: set[str]) -> None:
    found = held_back(needs, bad)
    for node in needs:
        reachable = sorted(b for b in bad if _reaches(needs, node, b, bad))
        if node in bad or not reachable:
            assert node not in found
        else:
            assert found[node] == reachable[0]
