"""Publishing: atomic, immutable, crash-safe, concurrent-safe; yank; status."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory.config import Settings, load_settings
from factory.errors import PublishError
from factory.index import Index
from factory.index.intake import read_core_metadata
from factory.index.records import Layout
from factory.index.validation import load_record
from tests import factories
from tests.index_fixtures import make_sidecars, publish_wheel

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(root=tmp_path, index_url="http://index.test")


def _page(settings: Settings, project: str) -> dict:
    path = settings.index_dir / "simple" / project / "index.json"
    return json.loads(path.read_text())


def _listed(settings: Settings) -> list[str]:
    data = json.loads((settings.index_dir / "simple" / "index.json").read_text())
    return [p["name"] for p in data["projects"]]


def test_publish_writes_wheel_sidecars_metadata_and_pages(settings: Settings, tmp_path: Path):
    published = publish_wheel(settings, tmp_path, "Demo.Pkg", "1.0", requires_python=">=3.9")
    assert published.project == "demo-pkg" and not published.already_published
    files = settings.index_dir / "files" / "demo-pkg"
    wheel = files / "demo_pkg-1.0-py3-none-any.whl"
    for suffix in (
        ".metadata",
        ".provenance",
        ".cdx.json",
        ".build.json",
        ".sigstore.json",
        ".intoto.jsonl",
        ".in-toto/root.layout",
    ):
        assert (files / (wheel.name + suffix)).is_file(), suffix
    assert (files / (wheel.name + ".metadata")).read_bytes() == read_core_metadata(wheel)
    page = _page(settings, "demo-pkg")
    assert page["meta"]["api-version"] == "1.4"
    (entry,) = page["files"]
    assert entry["requires-python"] == ">=3.9"
    assert entry["size"] == wheel.stat().st_size
    assert entry["upload-time"].endswith("Z")
    assert entry["provenance"] == f"http://index.test/files/demo-pkg/{wheel.name}.provenance"
    assert _listed(settings) == ["Demo.Pkg"]
    assert Index.of(settings).check() == []


def test_sdist_is_kept_for_auditors_but_not_offered_to_installers(
    settings: Settings, tmp_path: Path
):
    publish_wheel(settings, tmp_path, "demo", "1.0")
    sdist = settings.index_dir / "sources" / "demo" / "demo-1.0.tar.gz"
    assert sdist.is_file()
    simple = (settings.index_dir / "simple" / "demo" / "index.html").read_text()
    assert ".tar.gz" not in simple and ".tar.gz" not in json.dumps(_page(settings, "demo"))
    human = (settings.index_dir / "project" / "demo" / "index.html").read_text()
    assert "../../sources/demo/demo-1.0.tar.gz" in human


def test_same_bytes_again_is_a_no_op(settings: Settings, tmp_path: Path):
    first = publish_wheel(settings, tmp_path, "demo", "1.0")
    again = publish_wheel(settings, tmp_path, "demo", "1.0")
    assert again.already_published and again.sha256 == first.sha256
    record = load_record(Layout(settings.index_dir), "demo")
    assert record is not None and len(record.files) == 1


def test_different_bytes_under_a_published_name_are_refused(settings: Settings, tmp_path: Path):
    publish_wheel(settings, tmp_path / "a", "demo", "1.0", marker="first")
    with pytest.raises(PublishError, match="already published with different bytes"):
        publish_wheel(settings, tmp_path / "b", "demo", "1.0", marker="second")
    served = settings.index_dir / "files" / "demo" / "demo-1.0-py3-none-any.whl"
    assert b"second" not in served.read_bytes()


def test_a_wheel_without_its_attestations_is_refused(settings: Settings, tmp_path: Path):
    wheel = factories.wheel(tmp_path / "dist", "demo", "1.0")
    sidecars = make_sidecars(tmp_path / "side", wheel, None)
    del sidecars["provenance"]
    with pytest.raises(PublishError, match="lacks its provenance"):
        Index.of(settings).add(wheel, sidecars, None, {})
    assert not (settings.index_dir / "simple" / "demo").exists()


def test_malformed_provenance_and_wrong_sdist_are_refused(settings: Settings, tmp_path: Path):
    wheel = factories.wheel(tmp_path / "dist", "demo", "1.0")
    sdist = factories.sdist(tmp_path / "sdist", "demo", "1.0")
    sidecars = make_sidecars(tmp_path / "side", wheel, sdist)
    sidecars["provenance"].write_text('{"version": 2}')
    with pytest.raises(PublishError, match="PEP 740"):
        Index.of(settings).add(wheel, sidecars, sdist, {})
    sidecars = make_sidecars(tmp_path / "side", wheel, sdist)
    other = factories.sdist(tmp_path / "other", "demo", "1.0")
    other.write_bytes(other.read_bytes() + b"\0")
    with pytest.raises(PublishError, match="not the sdist the build record names"):
        Index.of(settings).add(wheel, sidecars, other, {})
    assert Index.of(settings).check(allow_interrupted=True) == []


def test_wheel_whose_metadata_disagrees_with_its_name_is_refused(
    settings: Settings, tmp_path: Path
):
    wheel = factories.wheel(tmp_path / "dist", "demo", "1.0")
    renamed = wheel.with_name("other-1.0-py3-none-any.whl")
    wheel.rename(renamed)
    with pytest.raises(PublishError, match="METADATA names project"):
        Index.of(settings).add(renamed, make_sidecars(tmp_path / "s", renamed, None), None, {})


def test_signer_and_build_facts_come_from_the_sidecars(settings: Settings, tmp_path: Path):
    publish_wheel(settings, tmp_path, "demo", "1.0")
    record = load_record(Layout(settings.index_dir), "demo")
    assert record is not None
    entry = record.files[0]
    assert entry.signer == {
        "identity": "https://factory.invalid/builders/docker",
        "issuer": "https://factory.invalid/oidc",
    }
    assert entry.built_from["builder_image_id"] == "sha256:abc"
    assert entry.source is not None
    assert str(entry.source.url).endswith("demo-1.0.tar.gz")


def test_yank_and_unyank_change_only_that_version(settings: Settings, tmp_path: Path):
    publish_wheel(settings, tmp_path, "demo", "1.0")
    publish_wheel(settings, tmp_path, "demo", "1.1")
    yanked = Index.of(settings).yank("Demo", "1.1", "breaks on py3.13")
    assert yanked == ["demo-1.1-py3-none-any.whl"]
    by_name = {f["filename"]: f for f in _page(settings, "demo")["files"]}
    assert by_name["demo-1.1-py3-none-any.whl"]["yanked"] == "breaks on py3.13"
    assert by_name["demo-1.0-py3-none-any.whl"]["yanked"] is False
    html = (settings.index_dir / "simple" / "demo" / "index.html").read_text()
    assert 'data-yanked="breaks on py3.13"' in html
    Index.of(settings).unyank("demo", "1.1")
    assert all(f["yanked"] is False for f in _page(settings, "demo")["files"])
    with pytest.raises(PublishError, match="no published version 9.9"):
        Index.of(settings).yank("demo", "9.9", "x")
    with pytest.raises(PublishError, match="no project"):
        Index.of(settings).yank("nope", "1.0", "x")


def test_yank_without_reason_is_true_in_json(settings: Settings, tmp_path: Path):
    publish_wheel(settings, tmp_path, "demo", "1.0")
    Index.of(settings).yank("demo", "1.0", "")
    assert _page(settings, "demo")["files"][0]["yanked"] is True


def test_quarantine_hides_files_and_archive_refuses_new_ones(settings: Settings, tmp_path: Path):
    publish_wheel(settings, tmp_path, "demo", "1.0")
    Index.of(settings).set_status("demo", "quarantined", "malware found")
    page = _page(settings, "demo")
    assert page["files"] == [] and page["project-status"] == {
        "status": "quarantined",
        "reason": "malware found",
    }
    html = (settings.index_dir / "simple" / "demo" / "index.html").read_text()
    assert '<meta name="pypi:project-status" content="quarantined">' in html
    Index.of(settings).set_status("demo", "archived")
    with pytest.raises(PublishError, match="archived"):
        publish_wheel(settings, tmp_path, "demo", "2.0")
    with pytest.raises(PublishError, match="unknown project status"):
        Index.of(settings).set_status("demo", "gone")


def test_advisories_show_on_pages(settings: Settings, tmp_path: Path):
    publish_wheel(settings, tmp_path, "demo", "1.0")
    home = (settings.index_dir / "index.html").read_text()
    assert "not checked" in home
    Index.of(settings).record_advisories(
        "demo", "1.0", [{"id": "PYSEC-2024-1", "summary": "bad", "fixed": "1.1"}]
    )
    human = (settings.index_dir / "project" / "demo" / "index.html").read_text()
    assert "PYSEC-2024-1" in human and "fixed in 1.1" in human
    assert "1 affected file(s)" in (settings.index_dir / "index.html").read_text()


def test_publishing_touches_only_its_own_project(settings: Settings, tmp_path: Path):
    publish_wheel(settings, tmp_path, "alpha", "1.0")
    publish_wheel(settings, tmp_path, "beta", "1.0")
    watched = [
        settings.index_dir / "simple" / "alpha" / "index.json",
        settings.index_dir / "project" / "alpha" / "index.html",
        settings.index_dir / "simple" / "index.json",
    ]
    before = [p.stat().st_mtime_ns for p in watched]
    time.sleep(0.01)
    publish_wheel(settings, tmp_path, "beta", "1.1")  # existing project: no list rewrite
    assert [p.stat().st_mtime_ns for p in watched] == before


def test_trust_material_refuses_private_keys(settings: Settings, tmp_path: Path):
    public = tmp_path / "root.json"
    public.write_text('{"mediaType": "trusted-root"}')
    assert Index.of(settings).publish_trust({"trusted_root.json": public}) == ["trusted_root.json"]
    secret = tmp_path / "key.pem"
    secret.write_text("-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n")
    with pytest.raises(PublishError, match="private key"):
        Index.of(settings).publish_trust({"owner.pem": secret})
    assert not (settings.index_dir / "trust" / "owner.pem").exists()


# -- crashes and concurrency ----------------------------------------------------


def _inputs(tmp_path: Path, name: str, version: str) -> tuple[Path, dict[str, Path], Path]:
    wheel = factories.wheel(tmp_path / "dist", name, version)
    sdist = factories.sdist(tmp_path / "sdist", name, version)
    return wheel, make_sidecars(tmp_path / "side", wheel, sdist), sdist


def _publish_killed_at(settings: Settings, inputs: tuple, rename_number: int) -> bool:
    """Fork a publisher that SIGKILLs itself just before its Nth rename; True if killed."""
    pid = os.fork()
    if pid == 0:  # child
        real_replace = os.replace
        count = [0]

        def replace(src, dst):  # type: ignore[no-untyped-def]
            count[0] += 1
            if count[0] == rename_number:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst)

        os.replace = replace  # type: ignore[assignment]
        try:
            wheel, sidecars, sdist = inputs
            Index.of(settings).add(wheel, sidecars, sdist, {})
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@pytest.mark.parametrize("existing_project", [False, True])
def test_kill_at_every_rename_leaves_a_consistent_index(tmp_path: Path, existing_project: bool):
    """SIGKILL before each rename in turn; the index stays consistent, a rerun completes."""
    inputs = _inputs(tmp_path / "in", "demo", "2.0")
    number = 1
    while True:
        settings = load_settings(root=tmp_path / f"run{number}")
        if existing_project:
            publish_wheel(settings, tmp_path / "old", "demo", "1.0")
        killed = _publish_killed_at(settings, inputs, number)
        assert Index.of(settings).check(allow_interrupted=True) == [], (
            f"inconsistent after kill at rename {number}")
        names = (
            [
                f["filename"]
                for f in json.loads(
                    (settings.index_dir / "simple" / "demo" / "index.json").read_text()
                )["files"]
            ]
            if (settings.index_dir / "simple" / "demo" / "index.json").exists()
            else []
        )
        wheel_listed = "demo-2.0-py3-none-any.whl" in names
        record = load_record(Layout(settings.index_dir), "demo")
        assert not wheel_listed or (record and record.find("demo-2.0-py3-none-any.whl"))
        Index.of(settings).add(*inputs[:2], inputs[2], {})  # the rerun
        assert Index.of(settings).check() == []
        page = json.loads((settings.index_dir / "simple" / "demo" / "index.json").read_text())
        assert "demo-2.0-py3-none-any.whl" in [f["filename"] for f in page["files"]]
        assert "demo" in _listed(settings)
        leftovers = list(settings.index_dir.rglob(".tmp-*"))
        assert leftovers == [], leftovers
        if not killed:
            break
        number += 1
        assert number < 60, "publish never finished"
    assert number > 10  # every sidecar, metadata, sdist, wheel, record and page rename


# Publishes 1.0 .. 1.{count-1}, saying each, then waits for its stdin to close: alive
# until killed, so that every kill lands (mid-publish or between two), whatever the speed.
_PUBLISHER = """
import sys
from pathlib import Path
from factory.config import load_settings
from tests.index_fixtures import publish_wheel
settings = load_settings(root=Path({root!r}))
for i in range({count}):
    publish_wheel(settings, Path({work!r}), "loop", "1.%d" % i, marker=str(i))
    print("published", i, flush=True)
print("done", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_kill_9_of_a_publishing_process_at_random_times(tmp_path: Path):
    """SIGKILL after a random number of publishes plus a random delay (inside the next
    publish or after it, as the machine's speed has it): the index always checks sound
    and the next publisher completes it. No clock decides whether a kill happens."""
    settings = load_settings(root=tmp_path / "state")
    script = _PUBLISHER.format(
        root=str(tmp_path / "state"),
        work=str(tmp_path / "work"),
        count=6,
    )
    rng = random.Random(1234)
    for _ in range(6):  # bounded
        proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, cwd=REPO)
        assert proc.stdout is not None and proc.stdin is not None
        for _ in range(rng.randrange(6)):
            assert proc.stdout.readline().startswith(b"published")
        time.sleep(rng.uniform(0, 0.15))
        assert proc.poll() is None  # (it waits on stdin once done)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdin.close()
        proc.stdout.close()
        assert Index.of(settings).check(allow_interrupted=True) == []
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
        input="",
    )
    assert out.returncode == 0, out.stderr
    page = json.loads((settings.index_dir / "simple" / "loop" / "index.json").read_text())
    assert page["versions"] == [f"1.{i}" for i in range(6)]
    assert Index.of(settings).check() == []


def _publish_many(root: str, work: str, versions: list[str]) -> None:
    settings = load_settings(root=Path(root))
    for version in versions:
        publish_wheel(settings, Path(work), "shared", version, marker=version)


def test_concurrent_publishers_lose_nothing(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")  # no threads inherited (Prefect runs in-process)
    jobs = [
        ctx.Process(
            target=_publish_many,
            args=(str(tmp_path), str(tmp_path / f"w{n}"), [f"{n}.{i}" for i in range(5)]),
        )
        for n in (1, 2)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=120)
        assert job.exitcode == 0
    settings = load_settings(root=tmp_path)
    page = _page(settings, "shared")
    assert len(page["files"]) == 10 and len(page["versions"]) == 10
    assert Index.of(settings).check() == []
