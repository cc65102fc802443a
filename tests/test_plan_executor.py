"""The build executor on real containers: concurrency, failures, skips, dynamic requirements.

Every component is a tiny generated sdist with an in-tree backend, so no build
tool has to be built first; the front-end kit is locked like in production,
from sdists made of the test venv's own pure-Python copies. Builds are counted
by wrapping builder.build (the only place a build container is started).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from factory._internal import digests
from factory.build import job as builder
from factory.build.executor import build_one, run_plan
from factory.build.image import ImageRef, bootstrap_image, images_record
from factory.build.record import BuildRecord
from factory.config import Settings
from factory.lock import Lock, save_lock
from factory.plan import make_plan
from tests import factories
from tests.builders_fixtures import backend_sdist, lock_entry, module_sdist

pytestmark = pytest.mark.docker

SLOW = "import time; time.sleep(2)"  # serial builds: records a second or more apart


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImageRef, Path]:
    settings = factories.settings(tmp_path_factory.mktemp("executor-image"))
    return bootstrap_image(settings), images_record(settings)


@pytest.fixture(scope="session")
def kit_sdists(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """pyproject-hooks, packaging and installer as sdists, from the test venv's copies."""
    import installer
    import packaging
    import pyproject_hooks

    out = tmp_path_factory.mktemp("kit-sdists")
    return [module_sdist(out, module, name) for module, name in (
        (pyproject_hooks, "pyproject_hooks"), (packaging, "packaging"), (installer, "installer"))]


Spec = tuple[str, str, tuple[str, ...]]  # payload, reason ("approved" or why), build_requires


def project(root: Path, image: tuple[ImageRef, Path], kit: list[Path],
            components: dict[str, Spec], extra: dict[str, str] | None = None) -> Settings:
    """A project whose lock holds the kit and ``components`` (sdists in the source cache)."""
    settings = factories.settings(root)
    entries = [lock_entry(settings, sdist, "build-tool", "front end", ()) for sdist in kit]
    for name, (payload, reason, requires) in components.items():
        sdist = backend_sdist(root / "sdists", name, payload, (extra or {}).get(name, ""))
        kind = "runtime" if reason == "approved" else "build-tool"
        entries.append(lock_entry(settings, sdist, kind, reason, requires))
        if reason == "approved":
            factories.recipe(root, name)
    save_lock(settings, Lock(entries))
    target = images_record(settings)  # the image's package list, so no container lists it
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image[1], target)
    return settings


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The components built, in call order (each call is one build container)."""
    calls: list[str] = []
    real: Callable[..., BuildRecord] = builder.build

    def counted(settings: Settings, inputs: builder.BuildInputs) -> BuildRecord:
        calls.append(inputs.name)
        return real(settings, inputs)

    monkeypatch.setattr(builder, "build", counted)
    return calls


def _overlap(one: BuildRecord, two: BuildRecord) -> bool:
    return one.started_on < two.finished_on and two.started_on < one.finished_on


def test_independent_nodes_build_concurrently_up_to_the_limit(
        tmp_path: Path, image: tuple[ImageRef, Path], kit_sdists: list[Path],
        builds: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Concurrency counted, not timed: the builds in flight at once. At limit 2 each build
    # waits (up to 60 s) for the other to start, so two in flight is certain when the
    # executor runs them together, whatever the load (a second container started late
    # could miss a 2 s overlap of the records' times).
    wrapped = builder.build  # the `builds` fixture's counter
    in_flight, limit_now = [0], [1]
    peak: dict[int, int] = {}
    lock, both_in = threading.Lock(), threading.Event()

    def tracked(settings: Settings, inputs: builder.BuildInputs) -> BuildRecord:
        with lock:
            in_flight[0] += 1
            peak[limit_now[0]] = max(peak.get(limit_now[0], 0), in_flight[0])
            if in_flight[0] == 2:
                both_in.set()
        try:
            if limit_now[0] == 2:
                both_in.wait(60)
            return wrapped(settings, inputs)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(builder, "build", tracked)
    overlapped = {}
    for limit in (1, 2):
        limit_now[0] = limit
        settings = project(tmp_path / f"limit{limit}", image, kit_sdists,
                           {"alpha": (SLOW, "approved", ()), "beta": (SLOW, "approved", ())})
        outcome = run_plan(settings, make_plan(settings), concurrency=limit)
        assert outcome.failed == {}
        first, second = outcome.records
        overlapped[limit] = _overlap(first, second)
    assert peak == {1: 1, 2: 2}
    assert overlapped[1] is False  # one at a time: the second starts after the first ends
    assert sorted(builds) == ["alpha", "alpha", "beta", "beta"]

    # The same lock again: both are up to date, and no container is started.
    again = run_plan(settings, make_plan(settings), concurrency=2)
    assert len(builds) == 4
    assert [r.invocation_id for r in again.records] == [r.invocation_id for r in outcome.records]

    # As a new process would: no sdist is hashed again, and each record is read once
    # (not once per node: a catalogue's no-op build read 388 records 388 times).
    monkeypatch.setattr(digests, "_MEMO", {})
    hashed: list[str] = []
    real_hash = digests.sha256_file
    monkeypatch.setattr(digests, "sha256_file", lambda p, *a: hashed.append(p.name)
                        or real_hash(p, *a))
    loaded: list[str] = []
    real_load = BuildRecord.load
    monkeypatch.setattr(BuildRecord, "load", staticmethod(
        lambda path: loaded.append(path.name) or real_load(path)))
    third = run_plan(settings, make_plan(settings), concurrency=2)
    assert len(builds) == 4 and len(third.records) == 2
    assert [n for n in hashed if n.endswith((".tar.gz", ".zip"))] == []
    assert sorted(loaded) == sorted(p.name for p in settings.wheels_dir.glob("*.build.json"))


def test_a_failed_dependency_stops_only_what_needs_it(
        tmp_path: Path, image: tuple[ImageRef, Path], kit_sdists: list[Path],
        builds: list[str]) -> None:
    settings = project(tmp_path, image, kit_sdists, {
        "broken": ("raise SystemExit('broken on purpose')", "build requirement of needsbroken",
                   ()),
        "needsbroken": ("", "approved", ("broken",)),
        "fine": ("", "approved", ()),
    })
    outcome = run_plan(settings, make_plan(settings))
    assert sorted(builds) == ["broken", "fine"]  # needsbroken never got a container
    assert [r.component for r in outcome.records] == ["fine"]
    assert set(outcome.failed) == {"broken==1.0", "needsbroken==1.0"}
    assert "build failed" in outcome.failed["broken==1.0"]
    assert outcome.failed["needsbroken==1.0"] == "a build requirement failed: broken==1.0"
    wheels = sorted(p.name for p in settings.wheels_dir.glob("*.whl"))
    assert wheels == ["fine-1.0-py3-none-any.whl"]


def test_dynamic_requirements_learnt_at_build_time_add_nodes(
        tmp_path: Path, image: tuple[ImageRef, Path], kit_sdists: list[Path],
        builds: list[str]) -> None:
    # The backend asks for helper only when asked (get_requires_for_build_wheel), and
    # its build imports helper: the rebuild must really have it installed.
    asks = "\ndef get_requires_for_build_wheel(config_settings=None):\n    return ['helper>=1']\n"
    settings = project(tmp_path, image, kit_sdists, {
        "dyn": ("import helper", "approved", ()),
        "helper": ("", "build requirement of nobody yet", ()),
    }, extra={"dyn": asks})
    plan = make_plan(settings, ["dyn"])
    assert list(plan.nodes) == ["dyn==1.0"]
    outcome = run_plan(settings, plan)
    assert outcome.failed == {}
    assert builds == ["dyn", "helper", "dyn"]  # tried, learnt, built the tool, rebuilt
    assert [r.component for r in outcome.records] == ["helper", "dyn"]
    dyn = outcome.records[1]
    assert "helper" in [t.name for t in dyn.build_tools]
    assert dyn.builder_settings["build_requires"]["dynamic"] == ["helper>=1"]
    assert "in the build environment of dyn 1.0" in plan.nodes["helper==1.0"].reasons
    # What was learnt is remembered: the next plan knows helper from the start.
    assert list(make_plan(settings, ["dyn"]).nodes) == ["dyn==1.0", "helper==1.0"]


def test_build_one_builds_the_component_and_only_the_tools_it_lacks(
        tmp_path: Path, image: tuple[ImageRef, Path], kit_sdists: list[Path],
        builds: list[str]) -> None:
    settings = project(tmp_path, image, kit_sdists, {
        "tool": ("", "build requirement of app1", ()),
        "app1": ("", "approved", ("tool",)),
        "app2": ("", "approved", ("tool",)),
        "other": ("", "approved", ()),
    })
    record = build_one(settings, "app1")
    assert builds == ["tool", "app1"]
    assert record.component == "app1" and "tool" in [t.name for t in record.build_tools]
    record = build_one(settings, "app2")
    assert builds == ["tool", "app1", "app2"]  # the tool is up to date: not built again
    assert record.component == "app2"
    assert not list(settings.wheels_dir.glob("other-*"))


def test_ctrl_c_stops_the_builds_under_way_and_starts_no_more(
        tmp_path: Path, image: tuple[ImageRef, Path], kit_sdists: list[Path],
        builds: list[str]) -> None:
    """Ctrl-C waited for every running build to end, up to its time limit (30 minutes by
    default; seen: 150 s for cython), and then started the queued ones. Now the running
    build's container is killed and removed, nothing queued starts, and the run ends with
    the interrupt (the CLI: 'interrupted', exit 130; a rerun builds what is left)."""
    import os
    import signal
    import time
    from dataclasses import replace

    from factory.build import docker
    from factory.build.engine import connect

    settings = replace(project(tmp_path, image, kit_sdists, {
        "sleeper": ("import time; time.sleep(3600)", "approved", ()),
        "waiting": ("import time; time.sleep(3600)", "approved", ())}), build_timeout=900)

    def interrupt_once_a_build_runs() -> None:
        deadline = time.monotonic() + 300
        while docker.running_builds() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)  # a real signal, as Ctrl-C sends

    threading.Thread(target=interrupt_once_a_build_runs, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_plan(settings, make_plan(settings), concurrency=1)
    # a hang guard, not a speed claim: the builds sleep an hour, their limit is 900 s
    assert time.monotonic() - started < 600
    assert len(builds) == 1  # the queued one never started
    assert docker.running_builds() == 0
    left = connect().containers.list(
        all=True, filters={"label": f"{docker.OWNER_LABEL}={docker.owner_id()}"})
    assert left == []
