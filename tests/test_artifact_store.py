"""The artifact store (factory.artifact_store): nothing leaves it unless its bytes are
the ones the trusted side asked for, and nothing half-written is ever an object.

Every test runs on a local directory and, where the backend matters, on memory://
(the fsspec path object storage takes)."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec
import pytest

from factory import artifact_store
from factory.artifact_store import REF_LIMIT, ArtifactStore, Blob, StoreError
from factory.config import load_settings
from factory.errors import ConfigError

WHEEL = b"PK\x03\x04 a wheel's bytes " * 1000
OTHER = b"another artifact, as long as it needs to be" * 100


class Where:
    """A store under test and a way round it, to damage what it holds."""

    def __init__(self, url: str, local: Path | None) -> None:
        self.url, self.local = url, local
        self.store = ArtifactStore.at(url)
        self.fs = fsspec.filesystem("memory")

    def path(self, key: str) -> str:
        return str(self.local / key) if self.local else f"{self.url[len('memory:/'):]}/{key}"

    def object_key(self, blob: Blob) -> str:
        return f"sha256/{blob.sha256[:2]}/{blob.sha256}"

    def write(self, key: str, data: bytes) -> None:
        if self.local:
            Path(self.path(key)).parent.mkdir(parents=True, exist_ok=True)
            Path(self.path(key)).write_bytes(data)
        else:
            self.fs.pipe_file(self.path(key), data)

    def files(self) -> list[str]:
        """Every file in the store, as keys (temp files too)."""
        if self.local:
            return sorted(str(p.relative_to(self.local)) for p in self.local.rglob("*")
                          if not p.is_dir())
        root = self.url[len("memory:/"):]
        return sorted(p[len(root) + 1:] for p in self.fs.find(root))


@pytest.fixture(params=["local", "memory"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Where]:
    if request.param == "local":
        yield Where(str(tmp_path / "store"), tmp_path / "store")
        return
    url = f"memory://store-{secrets.token_hex(8)}"
    place = Where(url, None)
    try:
        yield place
    finally:
        if place.fs.exists(url[len("memory:/"):]):
            place.fs.rm(url[len("memory:/"):], recursive=True)


def _wheel(tmp_path: Path, data: bytes = WHEEL) -> Path:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    path.write_bytes(data)
    return path


# -- round trips ---------------------------------------------------------------------

def test_put_get_read_bytes_round_trip(where: Where, tmp_path: Path) -> None:
    blob = where.store.put(_wheel(tmp_path))
    assert blob == Blob(hashlib.sha256(WHEEL).hexdigest(), len(WHEEL))
    assert where.store.has(blob)
    assert where.files() == [where.object_key(blob)]  # the layout, and no temp left behind
    dest = where.store.get(blob, tmp_path / "out" / "copy.whl")
    assert dest.read_bytes() == WHEEL
    assert where.store.read_bytes(blob) == WHEEL
    small = where.store.put_bytes(b"")
    assert small.size == 0 and where.store.read_bytes(small) == b""


def test_put_is_idempotent_and_heals_a_damaged_object(where: Where, tmp_path: Path) -> None:
    blob = where.store.put_bytes(WHEEL)
    assert where.store.put(_wheel(tmp_path)) == blob
    assert where.files() == [where.object_key(blob)]
    for damage in (b"x" * len(WHEEL), WHEEL[:10]):  # same size, other size
        where.write(where.object_key(blob), damage)
        assert where.store.put_bytes(WHEEL) == blob
        assert where.store.read_bytes(blob) == WHEEL
    assert where.files() == [where.object_key(blob)]


def test_a_missing_object(where: Where, tmp_path: Path) -> None:
    blob = Blob.of_bytes(b"never stored")
    assert not where.store.has(blob)
    dest = tmp_path / "dest"
    dest.write_bytes(b"kept")
    with pytest.raises(StoreError, match="is not in the artifact store"):
        where.store.get(blob, dest)
    assert dest.read_bytes() == b"kept"


def test_the_settings_default_and_the_toml_key(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    settings = load_settings(root)
    assert settings.store_url is None and settings.store == str(settings.state_dir / "store")
    assert ArtifactStore.of(settings).where == str(settings.state_dir / "store")
    (root / "factory.toml").write_text('[store]\nurl = "../shared-store"\n')
    settings = load_settings(root)
    assert settings.store_url == str(tmp_path / "shared-store")
    blob = ArtifactStore.of(settings).put_bytes(OTHER)
    assert (tmp_path / "shared-store" / "sha256" / blob.sha256[:2] / blob.sha256).is_file()
    for url in ("s3://bucket/prefix", "gs://bucket", "file:///srv/store", "memory://x"):
        (root / "factory.toml").write_text(f'[store]\nurl = "{url}"\n')
        assert load_settings(root).store_url == url


@pytest.mark.parametrize("value", ['""', '" "', "42", "true", '"s3://key:secret@bucket/p"',
                                   '"file://relative/dir"', '"::://x"', '"a\\nb"',
                                   '"S3 ://x"'])
def test_a_bad_store_url_is_a_config_error(tmp_path: Path, value: str) -> None:
    (tmp_path / "factory.toml").write_text(f"[store]\nurl = {value}\n")
    with pytest.raises(ConfigError, match="store_url"):
        load_settings(tmp_path)


def test_unknown_or_missing_protocols(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreError, match="unknown protocol nosuch://"):
        ArtifactStore.at("nosuch://bucket")

    def not_installed(protocol: str) -> type:
        raise ImportError(f"Install s3fs to access {protocol}")

    monkeypatch.setattr(fsspec, "get_filesystem_class", not_installed)
    with pytest.raises(StoreError, match="s3:// support, which is not installed") as caught:
        ArtifactStore.at("s3://bucket/prefix")
    assert "s3fs" in caught.value.hint  # (credentials in the URL: tests/test_attack_issue19.py)


# -- what the store's bytes cannot do ------------------------------------------------

@pytest.mark.parametrize("damage", ["tampered", "truncated", "extended", "swapped"])
def test_a_damaged_object_is_refused_and_nothing_is_written(
        where: Where, tmp_path: Path, damage: str) -> None:
    blob = where.store.put_bytes(WHEEL)
    other = where.store.put_bytes(OTHER)
    bytes_now = {"tampered": WHEEL[:-1] + b"!", "truncated": WHEEL[:-1],
                 "extended": WHEEL + b"\0", "swapped": OTHER}[damage]
    where.write(where.object_key(blob), bytes_now)
    dest = tmp_path / "work" / "demo.whl"
    dest.parent.mkdir()
    dest.write_bytes(b"what was there")
    expected = {"tampered": "has other bytes", "truncated": "truncated",
                "extended": "longer than", "swapped": "longer than" if len(OTHER) > len(WHEEL)
                else "truncated"}[damage]
    with pytest.raises(StoreError, match=expected) as caught:
        where.store.get(blob, dest)
    assert blob.sha256 in caught.value.message and where.store.where in caught.value.message
    assert "tampered with or is damaged" in caught.value.hint
    assert dest.read_bytes() == b"what was there"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["demo.whl"]
    with pytest.raises(StoreError, match=expected):
        where.store.read_bytes(blob)
    assert where.store.read_bytes(other) == OTHER


def test_a_swapped_object_of_the_same_size_is_refused(where: Where) -> None:
    blob = where.store.put_bytes(b"a" * 64)
    other = where.store.put_bytes(b"b" * 64)
    where.write(where.object_key(blob), b"b" * 64)
    with pytest.raises(StoreError, match=f"sha256 {other.sha256}"):
        where.store.read_bytes(blob)


def test_at_most_size_plus_one_bytes_are_read(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = ArtifactStore.at(str(tmp_path / "store"))
    blob = store.put_bytes(b"small")
    huge = tmp_path / "store" / "sha256" / blob.sha256[:2] / blob.sha256
    with huge.open("wb") as handle:  # a sparse gigabyte where five bytes belong
        handle.truncate(1 << 30)
    asked: list[int] = []
    opened = store._backend.open_read

    class Counting(io.BufferedReader):
        def read(self, size: int | None = -1) -> bytes:
            asked.append(-1 if size is None else size)
            return super().read(size)

    def counting(key: str) -> io.BufferedReader:
        stream = opened(key)
        assert isinstance(stream, io.BufferedReader)
        return Counting(stream.detach())

    monkeypatch.setattr(store._backend, "open_read", counting)
    with pytest.raises(StoreError, match="longer than its 5 bytes"):
        store.read_bytes(blob)
    assert asked and all(0 <= n <= 6 for n in asked) and sum(asked) <= 6


def test_a_symlinked_object_or_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ArtifactStore.at(str(root))
    blob = store.put_bytes(WHEEL)
    obj = root / "sha256" / blob.sha256[:2] / blob.sha256
    outside = tmp_path / "outside"
    outside.write_bytes(WHEEL)  # the right bytes, but not in the store
    obj.unlink()
    obj.symlink_to(outside)
    dest = tmp_path / "dest.whl"
    with pytest.raises(StoreError, match="not a regular file"):
        store.get(blob, dest)
    assert not dest.exists()
    assert not store.has(blob)
    # a directory of the store that is a link to one outside it
    obj.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / blob.sha256).write_bytes(WHEEL)
    (root / "sha256" / blob.sha256[:2]).rmdir()
    (root / "sha256" / blob.sha256[:2]).symlink_to(elsewhere)
    with pytest.raises(StoreError, match="not a directory of the artifact store"):
        store.read_bytes(blob)
    with pytest.raises(StoreError, match="not a directory of the artifact store"):
        store.put_bytes(WHEEL)  # nor is anything written through it
    assert sorted(p.name for p in elsewhere.iterdir()) == [blob.sha256]


def test_a_fifo_object_is_refused_without_blocking(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ArtifactStore.at(str(root))
    blob = store.put_bytes(b"data")
    obj = root / "sha256" / blob.sha256[:2] / blob.sha256
    obj.unlink()
    os.mkfifo(obj)
    with pytest.raises(StoreError, match="not a regular file"):
        store.read_bytes(blob)


@pytest.mark.parametrize("digest", ["../x", "/etc/passwd", "A" * 64, "a" * 63 + "\0",
                                    "a" * 65, "a" * 63, "../" + "a" * 61, "", "g" * 64])
def test_hostile_digests_are_refused(where: Where, digest: str) -> None:
    with pytest.raises(StoreError, match="not a sha256 digest"):
        Blob(digest, 1)
    forged = object.__new__(Blob)  # even one that skipped the check names no path
    object.__setattr__(forged, "sha256", digest)
    object.__setattr__(forged, "size", 1)
    with pytest.raises(StoreError, match="not a sha256 digest"):
        where.store.has(forged)


@pytest.mark.parametrize("size", [-1, True, 1.0, "1", 1 << 41])
def test_bad_sizes_are_refused(size: object) -> None:
    with pytest.raises(StoreError, match="not a number of bytes"):
        Blob("a" * 64, size)  # type: ignore[arg-type]


# -- refs ----------------------------------------------------------------------------

def test_refs_round_trip(where: Where) -> None:
    blob = where.store.put_bytes(OTHER)
    assert where.store.ref("builds/abc") is None
    where.store.set_ref("builds/" + "0" * 64, blob)
    where.store.set_ref("logs/demo-1.0.log", blob)
    assert where.store.ref("builds/" + "0" * 64) == blob
    newer = where.store.put_bytes(WHEEL)
    where.store.set_ref("logs/demo-1.0.log", newer)
    assert where.store.ref("logs/demo-1.0.log") == newer
    assert not [k for k in where.files() if "tmp" in k]
    with pytest.raises(StoreError, match="not in the artifact store"):
        where.store.set_ref("builds/missing", Blob.of_bytes(b"not stored"))
    assert where.store.ref("builds/missing") is None


def test_a_first_word_ref_keeps_the_first_of_racing_writers(where: Where) -> None:
    """Two runs of one build finishing together (a live run given up for lost, say):
    the first result stands, the second is refused in one step, none is half-written."""
    import threading

    blobs = [where.store.put_bytes(bytes([n]) * 64) for n in range(16)]
    won: list[Blob] = []
    # A directory decides with link(2), so its writers race for real. fsspec's memory://
    # checks and then writes (it stands in for object storage, whose conditional put is
    # the object store's own): its writers go one at a time.
    start = threading.Barrier(len(blobs) if where.local is not None else 1)

    def race(blob: Blob) -> None:
        start.wait()
        if where.store.set_ref("builds/" + "a" * 64, blob, only_if_absent=True):
            won.append(blob)

    if where.local is None:
        for blob in blobs:
            race(blob)
    else:
        threads = [threading.Thread(target=race, args=(b,)) for b in blobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(won) == 1 and where.store.ref("builds/" + "a" * 64) == won[0]
    assert not where.store.set_ref("builds/" + "a" * 64, blobs[0], only_if_absent=True) \
        or won[0] == blobs[0]
    assert where.store.ref("builds/" + "a" * 64) == won[0]  # kept
    where.store.set_ref("builds/" + "a" * 64, blobs[1])  # an ordinary set still replaces
    assert where.store.ref("builds/" + "a" * 64) == blobs[1]
    assert not [k for k in where.files() if "tmp" in k and ".tmp-" in k]


@pytest.mark.parametrize("name", ["../x", "/abs", "builds/../../x", "Builds/x", "a\0b", "",
                                  "a//b", "a/", ".hidden", "a/..", "x" * 600, "a b", "é"])
def test_hostile_ref_names_are_refused(where: Where, name: str) -> None:
    blob = where.store.put_bytes(b"data")
    with pytest.raises(StoreError, match="is not a ref name"):
        where.store.set_ref(name, blob)
    with pytest.raises(StoreError, match="is not a ref name"):
        where.store.ref(name)


@pytest.mark.parametrize("content", [
    b"not json", b"[]", b'{"sha256": "../x", "size": 1}', b'{"sha256": "' + b"a" * 64 + b'"}',
    b'{"sha256": "' + b"a" * 64 + b'", "size": -1}',
    b'{"sha256": "' + b"a" * 64 + b'", "size": 1, "url": "http://x"}',
    b'{"sha256": "' + b"a" * 64 + b'", "size": 1}' + b" " * REF_LIMIT, b"\xff\xfe"])
def test_a_corrupt_or_huge_ref_is_a_store_error(where: Where, content: bytes) -> None:
    where.write("refs/builds/x", content)
    with pytest.raises(StoreError, match="ref builds/x in the artifact store"):
        where.store.ref("builds/x")


# -- crashes -------------------------------------------------------------------------

def test_a_put_killed_midway_leaves_no_object(where: Where, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    source = _wheel(tmp_path, WHEEL * 4)
    monkeypatch.setattr(artifact_store, "CHUNK", 1000)

    class Dying(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() >= 3000:
                raise KeyboardInterrupt  # the worker killed in the middle of the copy
            return super().read(size)

    monkeypatch.setattr(artifact_store, "open", lambda *_a, **_k: Dying(WHEEL * 4),
                        raising=False)
    with pytest.raises(KeyboardInterrupt):
        where.store.put(source)
    assert not where.store.has(Blob.of_bytes(WHEEL * 4))
    assert where.files() == []  # no object, and the temp file is gone too
    monkeypatch.undo()
    assert where.store.read_bytes(where.store.put(source)) == WHEEL * 4


def test_a_file_changing_while_stored_is_not_stored(where: Where, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    source = _wheel(tmp_path)
    monkeypatch.setattr(artifact_store, "open", lambda *_a, **_k: io.BytesIO(OTHER),
                        raising=False)
    with pytest.raises(StoreError, match="changed while it was being stored"):
        where.store.put(source)
    assert where.files() == []


def test_file_urls_and_concurrent_puts(tmp_path: Path) -> None:
    store = ArtifactStore.at(f"file://{tmp_path}/store")
    assert store.where == str(tmp_path / "store")
    with pytest.raises(StoreError, match="not an absolute file:// URL"):
        ArtifactStore.at("file://relative/store")
    with ThreadPoolExecutor(8) as pool:  # workers storing the same wheel at once
        blobs = list(pool.map(lambda _: store.put_bytes(WHEEL), range(16)))
        reads = list(pool.map(lambda b: store.read_bytes(b), blobs))
    assert set(blobs) == {Blob.of_bytes(WHEEL)} and set(reads) == {WHEEL}
    assert sorted(p.name for p in (tmp_path / "store" / "tmp").iterdir()) == []


def test_sweep_removes_only_old_temp_files(tmp_path: Path) -> None:
    store = ArtifactStore.at(str(tmp_path / "store"))
    assert store.sweep() == 0  # nothing there yet
    blob = store.put_bytes(WHEEL)
    tmp = tmp_path / "store" / "tmp"
    old, young = tmp / ".tmp-killed", tmp / ".tmp-writing"
    old.write_bytes(b"half")
    young.write_bytes(b"half")
    os.utime(old, (1, 1))
    (tmp / "keep-me").write_bytes(b"not a temp")
    os.utime(tmp / "keep-me", (1, 1))
    assert store.sweep(older_than=60) == 1
    assert sorted(p.name for p in tmp.iterdir()) == [".tmp-writing", "keep-me"]
    assert store.read_bytes(blob) == WHEEL
