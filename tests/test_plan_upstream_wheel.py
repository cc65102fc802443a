"""A recipe may allow one pinned, hashed upstream wheel for a build tool: it breaks cycles."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from factory.build.executor import Session
from factory.config import Settings
from factory.errors import IntegrityError
from factory.lock import Lock, save_lock
from factory.plan import Node, Plan, PlanError, make_plan
from tests import factories
from tests.factories import locked
from tests.local_upstream import LocalUpstream


def cyclic(settings: Settings) -> None:
    save_lock(settings, Lock([locked("alpha", "1.0", ("beta",)), locked("beta", "2.0", ("alpha",)),
                              locked("app", "1.0", ("alpha",), kind="runtime")]))


def allowed_plan(settings: Settings, filename: str, sha256: str) -> tuple[Plan, Node]:
    """The cycle of ``cyclic``, beta allowed the upstream wheel ``filename`` pinned to
    ``sha256``: the plan and beta's node in it."""
    factories.recipe(settings.root, "alpha")
    factories.recipe(settings.root, "app")
    factories.recipe(settings.root, "beta", 'kind = "build-tool"\n[upstream_wheel]\n'
                     f'filename = "{filename}"\nsha256 = "{sha256}"\n')
    cyclic(settings)
    plan = make_plan(settings)
    return plan, plan.nodes[next(n for n in plan.nodes if n.startswith("beta"))]


def test_a_cycle_without_an_allowance_is_an_error(project: Settings) -> None:
    for name in ("alpha", "beta", "app"):
        factories.recipe(project.root, name)
    cyclic(project)
    with pytest.raises(PlanError, match="build-dependency cycle"):
        make_plan(project)


def test_an_allowed_upstream_wheel_breaks_the_cycle(project: Settings) -> None:
    plan, beta = allowed_plan(project, "beta-2.0-py3-none-any.whl", "c" * 64)
    assert beta.upstream_wheel == ("beta-2.0-py3-none-any.whl", "c" * 64)
    assert beta.env == []
    assert plan.order.index(beta.id) < plan.order.index(next(n for n in plan.order
                                                             if n.startswith("alpha")))
    assert "pinned upstream wheel beta-2.0-py3-none-any.whl" in plan.explain()


def test_the_upstream_wheel_is_downloaded_and_checked(project: Settings,
                                                      upstream: LocalUpstream,
                                                      tmp_path: Path) -> None:
    good = factories.wheel(tmp_path / "w", "beta", "2.0")
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    upstream.add_file("beta", good)
    _, beta = allowed_plan(project, good.name, digest)
    session = Session(project, Lock([]))
    taken = session.upstream_wheel(beta)
    assert taken.read_bytes() == good.read_bytes() and "upstream-wheels" in taken.parts
    beta.upstream_wheel = (good.name, "d" * 64)  # the recipe pins other bytes
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        session.upstream_wheel(beta)
