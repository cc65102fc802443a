"""Two factories on one host that find the builder image missing make it once.

The image lives in the engine's store, shared by every run on the host; a second run
that made it again would re-tag another image under the first's feet (its builds then
name an image the tag no longer points at).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from factory.build import image as images
from tests import factories


def test_a_second_run_waits_for_the_first_and_takes_its_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made: list[images.ImageRef] = []
    looked = threading.Event()  # the second run looked for the image and found none
    release = threading.Event()
    calls = {"existing": 0}

    def existing(settings: Any, client: Any, tag: str) -> images.ImageRef | None:
        calls["existing"] += 1
        if threading.current_thread().name == "second" and not made:
            looked.set()
        return made[0] if made else None

    def debootstrap(settings: Any, client: Any, tag: str, packages: list[str]) -> Any:
        release.wait(60)
        ref = images.ImageRef(tag=tag, id=f"sha256:{len(made) + 1:064x}", origin="debootstrap")
        made.append(ref)
        return ref

    monkeypatch.setattr(images, "connect", lambda: object())
    monkeypatch.setattr(images, "_existing", existing)
    monkeypatch.setattr(images, "_holds", lambda ref, wanted: True)
    monkeypatch.setattr(images, "_debootstrap_image", debootstrap)
    monkeypatch.setattr(images, "_remember", lambda settings, ref: None)
    got: dict[str, images.ImageRef] = {}

    def run(name: str) -> None:
        got[name] = images.bootstrap_image(factories.settings(tmp_path / name))

    first = threading.Thread(target=run, args=("first",), name="first")
    first.start()
    while calls["existing"] == 0:  # the first run is making it (waits for `release`)
        threading.Event().wait(0.01)
    second = threading.Thread(target=run, args=("second",), name="second")
    second.start()
    assert looked.wait(60)
    release.set()
    first.join(60)
    second.join(60)
    assert len(made) == 1, "the image was made twice"
    assert got["first"] == got["second"] == made[0]


def test_the_lock_file_is_private_and_not_followed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from factory._internal.hostlock import host_lock
    from factory.errors import FileSystemError

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with host_lock("builder-image-factory-builder:bookworm"):
        pass
    locks = tmp_path / "cache" / "factory" / "locks"
    assert locks.stat().st_mode & 0o077 == 0
    (lock,) = locks.iterdir()
    assert lock.name == "builder-image-factory-builder_bookworm.lock"
    assert lock.stat().st_mode & 0o077 == 0
    lock.unlink()
    lock.symlink_to(tmp_path / "elsewhere")
    # refused in one line (a FactoryError), not an OSError's traceback
    with pytest.raises(FileSystemError, match="is a symbolic link"), \
            host_lock("builder-image-factory-builder:bookworm"):
        pass
    assert not (tmp_path / "elsewhere").exists()


def test_two_runs_build_one_interpreter_once(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for a CPython built into a shared interpreters_dir (minutes each)."""
    from factory.build import interpreters

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    built: list[str] = []
    looked = threading.Event()
    release = threading.Event()

    def usable(settings: Any, image: Any, pin: Any) -> str | None:
        if threading.current_thread().name == "second" and not built:
            looked.set()
        return built[0] if built else None

    def for_image(settings: Any, image: Any, pin: Any) -> str:
        release.wait(60)
        built.append(f"tree {len(built) + 1}")
        return built[-1]

    monkeypatch.setattr(interpreters, "usable", usable)
    monkeypatch.setattr(interpreters, "for_image", for_image)
    image = images.ImageRef(tag="t", id="sha256:" + "ab" * 32, origin="debootstrap")
    pin = interpreters.PINS["3.13"]
    got: dict[str, Any] = {}

    def run(name: str) -> None:
        got[name] = interpreters.for_build(factories.settings(tmp_path / name), image, pin)

    first = threading.Thread(target=run, args=("first",), name="first")
    first.start()
    lock_dir = tmp_path / "cache" / "factory" / "locks"
    while not lock_dir.exists() or not any(lock_dir.iterdir()):  # the first holds it
        threading.Event().wait(0.01)
    second = threading.Thread(target=run, args=("second",), name="second")
    second.start()
    assert looked.wait(60)
    release.set()
    first.join(60)
    second.join(60)
    assert built == ["tree 1"]
    assert got == {"first": "tree 1", "second": "tree 1"}


def test_a_run_waiting_for_another_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Making the image or a CPython takes minutes: the run that waits says why, once."""
    from factory._internal.hostlock import host_lock

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    entered = threading.Event()

    def second() -> None:
        with host_lock("interpreter-3.13-abc"):
            entered.set()

    with caplog.at_level("WARNING", logger="factory._internal.hostlock"):
        with host_lock("interpreter-3.13-abc"):
            waiting = threading.Thread(target=second)
            waiting.start()
            for _ in range(6000):  # until the second run has said it waits
                if caplog.records:
                    break
                threading.Event().wait(0.01)
            assert not entered.is_set()
        waiting.join(60)
    assert entered.is_set()
    assert [r.getMessage() for r in caplog.records] == [
        "waiting for another run on this host that is making interpreter-3.13-abc"]
    with host_lock("interpreter-3.13-abc"):  # free: taken without a word
        pass
    assert len(caplog.records) == 1
