"""The executor's rounds, without containers: every node ends built or failed (never
silently left out), and a no-op round costs what its changes cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.build import executor
from factory.build.record import BuildRecord
from factory.errors import BuildError
from factory.lock import Lock, save_lock
from factory.plan import Node, Plan
from tests import factories
from tests.factories import locked


def _plan(edges: dict[str, list[str]]) -> Plan:
    nodes = {}
    for name, needs in edges.items():
        node = Node(name, "1.0", "runtime", locked(name, "1.0"), static=[])
        node.env = [f"{n}==1.0" for n in needs]
        nodes[f"{name}==1.0"] = node
    return Plan(nodes, sorted(nodes))


@pytest.fixture
def builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each node 'builds' in order; a node named fail-* fails."""
    factories.recipe(tmp_path, "anything")
    done: list[str] = []

    def build(self: executor._Executor, node: Node) -> BuildRecord:
        done.append(node.name)
        if node.name.startswith("fail"):
            raise BuildError(f"{node.name}: build failed")
        return object()  # type: ignore[return-value]

    monkeypatch.setattr(executor._Executor, "build", build)
    return done


@pytest.mark.parametrize("edges", [
    # a sorts before b: when c fails, b is failed in the same round after a was passed
    {"a": ["b"], "b": ["fail-c"], "fail-c": []},
    {"a": ["b"], "b": ["c"], "c": ["fail-d"], "fail-d": [], "e": []},
    {"a": ["b", "e"], "b": ["fail-z"], "e": [], "fail-z": []},
])
def test_every_node_ends_built_or_failed(tmp_path: Path, builds: list[str],
                                         edges: dict[str, list[str]]) -> None:
    settings = factories.settings(tmp_path)
    save_lock(settings, Lock([locked(name, "1.0") for name in edges]))
    outcome = executor.run_plan(settings, _plan(edges), concurrency=1)

    def doomed(name: str) -> bool:
        return name.startswith("fail") or any(doomed(n) for n in edges[name])

    assert set(outcome.failed) == {f"{n}==1.0" for n in edges if doomed(n)}
    assert len(outcome.records) == sum(1 for n in edges if not doomed(n))  # none left out
