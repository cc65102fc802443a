"""The index's TUF repository: the Sigstore trust of the index for ``sigstore --instance URL``.

The stock client bootstraps trust once from a root.json the auditor got out of
band (``sigstore --instance URL trust-instance root.json``), then every
``sigstore --instance URL verify ...`` refreshes the metadata from URL with
python-tuf's ngclient and takes the trusted root and the signing config from
it. This module writes that repository with python-tuf's Metadata API, holding
the very trusted root and signing config of the published ClientTrustConfig
(keys/trust_config.json), under ``<index>/tuf/``, served at ``/tuf/``:

- ``<N>.root.json``: every root version, chained (version N+1 is signed by the
  root key version N trusts). A new version is written when the online key
  changes or when the root has less than ``RENEW["root"]`` left; a rotation of
  the root key itself is not done here (it needs the old and the new root key
  signing one version: docs/threat-model.md);
- ``<N>.targets.json``, ``<N>.snapshot.json``: consistent snapshots, only ever
  added, never replaced in place;
- ``targets/<sha256>.trusted_root.json``, ``targets/<sha256>.signing_config.v0.2.json``:
  the targets sigstore-python asks for, named by their digest;
- ``timestamp.json``: the one file replaced, last: the commit point. A crash
  before it leaves new files no timestamp names yet, harmless and rewritten by
  the next run.

Keys: ``tuf_root`` (root) and ``tuf_online`` (timestamp, snapshot, targets),
functionary roles of factory.attest.keys: private halves in the state's keys
directory or a KMS/HSM URI (``FACTORY_KEY_TUF_ROOT``), never in the index.

Each role is re-signed only when its content changes or less than its
``RENEW`` time is left, so a second run in a row writes nothing (same bytes:
ECDSA signatures are not deterministic, the metadata is). ``refresh`` runs when
the factory publishes its trust files (``factory publish``/``rebuild``, ``factory
index rebuild``), in each watch cycle, and on its own as ``factory index tuf``: a
timestamp lives ``LIFETIME["timestamp"]``, so an index with no publish and no watch
for that long needs ``factory index tuf`` from cron (daily) or clients refuse its
metadata as expired.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from securesystemslib.signer import Key, Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (
    TOP_LEVEL_ROLE_NAMES,
    Metadata,
    MetaFile,
    Role,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from factory._internal.atomic import atomic_writer
from factory.config import Settings
from factory.errors import SigningError, one_line
from factory.index.tree import NotReadable, TooLarge, read_regular
from factory.sign.tuf_paths import (  # noqa: F401 (the repository's names, re-exported)
    MAX_METADATA_BYTES,
    PREFIX,
    SIGNING_CONFIG_TARGET,
    TARGET_NAMES,
    TRUSTED_ROOT_TARGET,
    VERSIONED,
    is_repository_path,
    is_target_path,
)

ROOT_ROLE, ONLINE_ROLE = "tuf_root", "tuf_online"

LIFETIME = {"root": timedelta(days=365), "targets": timedelta(days=90),
            "snapshot": timedelta(days=30), "timestamp": timedelta(days=7)}
# Re-signed when less than this is left: a daily `factory index tuf` re-signs the timestamp.
RENEW = {"root": timedelta(days=90), "targets": timedelta(days=45),
         "snapshot": timedelta(days=15), "timestamp": timedelta(days=6)}
PUBLIC = 0o644  # read by any web server serving the index

_SERIALIZER = JSONSerializer(compact=False)
_S = TypeVar("_S", Root, Snapshot, Targets, Timestamp)


@dataclass
class TufState:
    """What ``refresh`` left: each role's version and expiry, and what it wrote."""

    versions: dict[str, int] = field(default_factory=dict)
    expires: dict[str, datetime] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)


def targets_from_config(config: dict[str, Any], trusted_root: bytes) -> dict[str, bytes]:
    """The target files of a ClientTrustConfig: its trusted root (the published file's
    own bytes) and its signing config."""
    if json.loads(trusted_root) != config.get("trustedRoot"):
        raise SigningError("the trust config's trusted root is not the published trusted root",
                           "run `factory keys init` to rewrite both")
    signing = json.dumps(config["signingConfig"], indent=2, sort_keys=True) + "\n"
    return {TRUSTED_ROOT_TARGET: trusted_root, SIGNING_CONFIG_TARGET: signing.encode()}


class _Repository:
    """The repository as it is on disk (``directory``), read and extended."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.written: list[str] = []

    def read(self, name: str, kind: type[_S]) -> Metadata[_S] | None:
        path = self.dir / name
        if not os.path.lexists(path):
            return None
        try:  # never through a link, never a FIFO, bounded: the index tree is not trusted
            data = read_regular(self.dir, name, MAX_METADATA_BYTES)
        except TooLarge:
            data = b""  # refused just below, as any file that is not metadata
        except NotReadable as exc:
            raise SigningError(f"{path}: not a regular file ({one_line(str(exc), 200)})",
                               f"remove {path}; `factory index tuf` then re-signs what is "
                               "needed") from None
        try:
            if not data:
                raise DeserializationError(f"empty or larger than {MAX_METADATA_BYTES} bytes")
            found: Metadata[Any] = Metadata.from_bytes(data)
        except DeserializationError as exc:
            raise SigningError(f"{path}: not TUF metadata ({one_line(str(exc), 200)})",
                               f"move {self.dir} aside and run `factory index tuf` to start a "
                               "new repository (clients then need its new root)") from None
        if not isinstance(found.signed, kind):
            raise SigningError(f"{path}: not {kind.type} metadata")
        return found

    def root(self) -> Metadata[Root] | None:
        """The newest root version, checked to chain from version 1."""
        versions = sorted(int(m.group(1)) for p in self.dir.glob("*.root.json")
                          if (m := VERSIONED.fullmatch(p.name)))
        if not versions:
            return None
        if versions != list(range(1, versions[-1] + 1)):
            raise SigningError(f"{self.dir}: root versions {versions} are not 1..N",
                               "restore the missing N.root.json files from a backup")
        trusted: Metadata[Root] | None = None
        self.chain: list[Root] = []
        for version in versions:
            current = self.read(f"{version}.root.json", Root)
            assert current is not None
            try:
                if trusted is not None:
                    trusted.signed.verify_delegate("root", current.signed_bytes,
                                                   current.signatures)
                current.signed.verify_delegate("root", current.signed_bytes, current.signatures)
            except UnsignedMetadataError as exc:
                raise SigningError(f"{self.dir}/{version}.root.json is not signed by the root "
                                   f"key(s) of the version before ({one_line(str(exc), 200)})",
                                   "restore the root files from a backup") from None
            if current.signed.version != version:
                raise SigningError(f"{self.dir}/{version}.root.json says version "
                                   f"{current.signed.version}")
            trusted = current
            self.chain.append(current.signed)
        return trusted

    def signed_by_chain(self, md: Metadata[Any], role: str) -> bool:
        """Whether a root version of the chain (``root()`` walked it) signs ``md`` for
        ``role``: only such a file says which versions were served."""
        for root in getattr(self, "chain", []):
            try:
                root.verify_delegate(role, md.signed_bytes, md.signatures)
                return True
            except UnsignedMetadataError:
                continue
        return False

    def newest(self, role: str, kind: type[_S]) -> tuple[Metadata[_S] | None, int]:
        """(the newest ``N.<role>.json`` that parses, says version N and is signed by a
        root of the chain; the highest N named on disk, whatever its content). The files
        themselves, not timestamp.json's pointer: a deleted or planted timestamp never
        makes the writer reuse a version a client may hold (a rollback it would refuse)."""
        numbers = sorted((int(m.group(1)) for p in self.dir.glob(f"*.{role}.json")
                          if (m := VERSIONED.fullmatch(p.name)) and m.group(2) == role),
                         reverse=True)
        for number in numbers:
            try:
                md = self.read(f"{number}.{role}.json", kind)
            except SigningError:
                continue
            if md is not None and md.signed.version == number and self.signed_by_chain(md, role):
                return md, numbers[0]
        return None, numbers[0] if numbers else 0

    def write(self, name: str, data: bytes) -> None:
        path = self.dir / name
        try:
            if read_regular(self.dir, name, len(data)) == data:
                return
        except NotReadable:
            pass  # none yet, or not a regular file: replaced (the rename replaces a link)
        with atomic_writer(path, "wb", permissions=PUBLIC) as handle:
            handle.write(data)
        self.written.append(name)

    def meta(self, name: str, version: int) -> MetaFile:
        """What the next role says of the file ``name`` just written: version, length, hash."""
        return MetaFile.from_data(version, (self.dir / name).read_bytes(), ["sha256"])

    def sign(self, metadata: Metadata[Any], signer: Signer) -> bytes:
        metadata.sign(signer)
        return metadata.to_bytes(_SERIALIZER)


def _next(md: Metadata[Any] | None, floor: int = 0) -> int:
    return max(floor, 0 if md is None else md.signed.version) + 1


def _due(signed: Signed | None, role: str, now: datetime) -> bool:
    return signed is None or signed.expires - now < RENEW[role]


def _expires(role: str, now: datetime) -> datetime:
    return (now + LIFETIME[role]).replace(microsecond=0)


def _wanted_root(root_key: Key, online_key: Key) -> tuple[dict[str, Key], dict[str, Role]]:
    keys = {root_key.keyid: root_key, online_key.keyid: online_key}
    roles = {name: Role([online_key.keyid], 1) for name in TOP_LEVEL_ROLE_NAMES}
    roles["root"] = Role([root_key.keyid], 1)
    return keys, roles


def refresh(settings: Settings, targets: dict[str, bytes], directory: Path,
            now: datetime | None = None) -> TufState:
    """Bring the repository in ``directory`` up to date with ``targets`` (name -> bytes):
    a new root version, targets, snapshot and timestamp where each is needed. Idempotent.

    The caller holds the index's publish lock (one writer at a time)."""
    from factory.attest.keys import load_public_key, load_signer

    now = (now or datetime.now(UTC)).replace(microsecond=0)
    for inside in (directory, directory / "targets"):  # written into: never through a link
        if inside.is_symlink() or (os.path.lexists(inside) and not inside.is_dir()):
            raise SigningError(f"{inside} is a symbolic link or not a directory; the TUF "
                               "repository is not written through it",
                               f"remove {inside}; `factory index tuf` writes the repository "
                               "again (clients keep the root they pinned only if you restore "
                               "its N.root.json files)")
    repo = _Repository(directory)
    root_key = load_public_key(settings, ROOT_ROLE)
    online_key = load_public_key(settings, ONLINE_ROLE)
    keys, roles = _wanted_root(root_key, online_key)

    root = repo.root()
    if root is not None and root.signed.roles["root"].keyids != [root_key.keyid]:
        raise SigningError(
            f"{directory}: the TUF root is signed by another root key than keys/"
            f"{ROOT_ROLE}.pub.pem",
            "restore the tuf_root key this repository was made with (a root key rotation "
            "is not automated: docs/threat-model.md)")
    rotated = root is not None and (root.signed.keys != keys or root.signed.roles != roles)
    if root is None or rotated or _due(root.signed, "root", now):
        version = 1 if root is None else root.signed.version + 1
        new = Metadata(Root(version=version, expires=_expires("root", now), keys=keys,
                            roles=roles, consistent_snapshot=True))
        repo.write(f"{version}.root.json", repo.sign(new, load_signer(settings, ROOT_ROLE)))
        root = new

    online: Signer | None = None
    floor: dict[str, int] = {"timestamp": 0}

    def signer() -> Signer:
        nonlocal online
        online = online or load_signer(settings, ONLINE_ROLE)
        return online

    def stale(md: Metadata[Any] | None, role: str) -> bool:
        """Re-sign: none yet, a key change, close to expiry, or not signed by the key the
        root names (a damaged file is replaced, never endorsed by the next role)."""
        if md is None or rotated or _due(md.signed, role, now):
            return True
        try:
            root.signed.verify_delegate(role, md.signed_bytes, md.signatures)
        except UnsignedMetadataError:
            return True
        return False

    # The current versions, read even when they are re-signed: versions only grow. Only
    # files a root of the chain signs say which versions were served; each next version is
    # above every version named on disk too (a damaged file is replaced by a newer one).
    timestamp = repo.read("timestamp.json", Timestamp)
    if timestamp is not None and not repo.signed_by_chain(timestamp, "timestamp"):
        # What was served is unknown (deleted, planted, damaged): a version above any one a
        # client can hold (a version per second since 1970), never the planted one's.
        floor["timestamp"] = max(int(now.timestamp()), 1)
        timestamp = None
    elif timestamp is None and (directory / "1.root.json").is_file() \
            and any(directory.glob("*.snapshot.json")):
        floor["timestamp"] = max(int(now.timestamp()), 1)  # one was served, and is gone
    snapshot, floor["snapshot"] = repo.newest("snapshot", Snapshot)
    targets_md, floor["targets"] = repo.newest("targets", Targets)
    if timestamp is not None:
        floor["snapshot"] = max(floor["snapshot"], timestamp.signed.snapshot_meta.version)
    if snapshot is not None and "targets.json" in snapshot.signed.meta:
        floor["targets"] = max(floor["targets"], snapshot.signed.meta["targets.json"].version)
    # What this state signed last for this repository (outside the index: a replayed old
    # signed file, or newer files deleted, never make the writer sign a lower version).
    kept = _signed_before(settings, directory)
    for role in ("timestamp", "snapshot", "targets"):
        floor[role] = max(floor[role], kept.get(role, 0))
    replayed = timestamp is not None and timestamp.signed.version < kept.get("timestamp", 0)
    # A pointer to a version that is not the newest on disk (a newer file deleted, an old
    # one put back, a crash between two writes): re-signed, never left dangling.
    unlinked = (timestamp is not None and snapshot is not None
                and timestamp.signed.snapshot_meta.version != snapshot.signed.version) or (
        snapshot is not None and targets_md is not None
        and snapshot.signed.meta.get("targets.json") is not None
        and snapshot.signed.meta["targets.json"].version != targets_md.signed.version)
    for role in ("snapshot", "targets"):
        if floor[role] + 1 >= 10 ** 10:  # the next is beyond the names served (VERSIONED)
            raise SigningError(f"{directory}: a {role} version of {floor[role]} is named on disk",
                               f"move the planted {role} files of {directory} aside and run "
                               "`factory index tuf`")

    files = {name: TargetFile.from_data(name, data, ["sha256"]) for name, data in targets.items()}
    changed = stale(targets_md, "targets") or targets_md is None \
        or targets_md.signed.targets != files or unlinked \
        or targets_md.signed.version < kept.get("targets", 0)
    if changed:
        for name, data in sorted(targets.items()):
            repo.write(f"targets/{files[name].hashes['sha256']}.{name}", data)
        targets_md = Metadata(Targets(version=_next(targets_md, floor["targets"]),
                                      expires=_expires("targets", now),
                                      targets=files))
        repo.write(f"{targets_md.signed.version}.targets.json", repo.sign(targets_md, signer()))
    assert targets_md is not None

    changed = changed or stale(snapshot, "snapshot") or (
        snapshot is not None and snapshot.signed.version < kept.get("snapshot", 0))
    if changed:
        meta = repo.meta(f"{targets_md.signed.version}.targets.json", targets_md.signed.version)
        snapshot = Metadata(Snapshot(version=_next(snapshot, floor["snapshot"]),
                                     expires=_expires("snapshot", now),
                                     meta={"targets.json": meta}))
        repo.write(f"{snapshot.signed.version}.snapshot.json", repo.sign(snapshot, signer()))
    assert snapshot is not None

    if changed or replayed or stale(timestamp, "timestamp"):
        meta = repo.meta(f"{snapshot.signed.version}.snapshot.json", snapshot.signed.version)
        timestamp = Metadata(Timestamp(version=_next(timestamp, floor["timestamp"]),
                                       expires=_expires("timestamp", now), snapshot_meta=meta))
        repo.write("timestamp.json", repo.sign(timestamp, signer()))  # the commit point
    assert timestamp is not None

    state = TufState(written=repo.written)
    for md in (root, timestamp, snapshot, targets_md):
        state.versions[md.signed.type] = md.signed.version
        state.expires[md.signed.type] = md.signed.expires
    if repo.written:
        _remember_signed(settings, directory, state.versions)
    return state


MAX_KEPT = 64 << 10


def _kept_path(settings: Settings) -> Path:
    return settings.state_dir / "tuf-signed.json"


def _signed_before(settings: Settings, directory: Path) -> dict[str, int]:
    """The versions this state last signed for the repository at ``directory``."""
    path = _kept_path(settings)
    try:
        with path.open("rb") as handle:
            data = json.loads(handle.read(MAX_KEPT + 1)[:MAX_KEPT])
        found = data.get(str(directory.resolve()), {})
    except (OSError, ValueError, AttributeError, RecursionError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {role: value for role, value in found.items() if isinstance(role, str)
            and isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10 ** 12}


def _remember_signed(settings: Settings, directory: Path, versions: dict[str, int]) -> None:
    from factory._internal.atomic import write_json

    path = _kept_path(settings)
    try:
        with path.open("rb") as handle:
            data = json.loads(handle.read(MAX_KEPT + 1)[:MAX_KEPT])
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError, RecursionError):
        data = {}
    data[str(directory.resolve())] = {role: versions[role]
                                      for role in ("timestamp", "snapshot", "targets")}
    write_json(path, dict(list(data.items())[-100:]))
