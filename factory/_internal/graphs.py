"""What a failure holds back in a graph of needs: one answer for the lock (rows left out
with a problem) and `factory add` (recipes held back for a human)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping


def held_back(needs: Mapping[str, Iterable[str]], bad: Collection[str]) -> dict[str, str]:
    """Every node that needs, directly or through others, one of ``bad`` and is not bad
    itself -> the first (sorted) of the ``bad`` ones it needs, counting only those it
    reaches before any other bad one (what a bad node needs is its own story). Cycles
    are fine."""
    edges = {node: tuple(children) for node, children in needs.items()}
    cause: dict[str, str] = {}
    changed = True
    while changed:  # causes only ever get smaller, so this ends
        changed = False
        for node, children in edges.items():
            if node in bad:
                continue
            found = [c for c in children if c in bad] + [cause[c] for c in children
                                                         if c in cause]
            if found and cause.get(node, "\uffff") > min(found):
                cause[node] = min(found)
                changed = True
    return cause
