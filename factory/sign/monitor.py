"""Watching the published transparency log: `factory log verify` and `factory log monitor`.

The embedded log publishes its entries and a signed checkpoint as static files
(``factory.sign.tiles``, under ``/log/`` of the index). Anyone holding the
trusted root can then check, without the factory's help:

- ``read_log``: the checkpoint is signed by the log key of the trusted root; the
  entries, hashed as RFC 6962 leaves, give the checkpoint's root; every hash tile
  holds the hashes those entries give; every entry's time is signed by the log
  (its SET). A tampered, added or dropped entry or tile fails here.
- ``check_consistency``: a checkpoint kept from an earlier run (or given) is a
  prefix of the current tree: the same origin, no larger, and its root is the root
  of the first ``size`` entries. A log that rewrote its history fails here.
- ``signatures`` / ``monitor``: who signed each entry (the certificate's SAN and
  OIDC issuer), so an organisation notices a signature it did not make.

Everything read is bounded (factory.sign.tiles) and every failure is one
VerificationError line.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from factory._internal.atomic import write_text
from factory._internal.plainfile import NotPlain, read_plain
from factory._internal.plugins import plugins_off
from factory.errors import UpstreamError, VerificationError, one_line
from factory.sign._authority.merkle import MerkleTree, leaf_hash
from factory.sign.tiles import (
    CHECKPOINT,
    MAX_BUNDLE_BYTES,
    MAX_CHECKPOINT_BYTES,
    MAX_TIMESTAMPS_BYTES,
    PREFIX,
    TILE_HEIGHT,
    TILE_WIDTH,
    Note,
    TileFormatError,
    bundles,
    entries_path,
    parse_checkpoint,
    parse_entry_bundle,
    parse_hash_tile,
    tile_path,
    tiles,
    timestamps_path,
)
from factory.upstream.transport import inflated, shown

if TYPE_CHECKING:
    import httpx

MAX_TRUSTED_ROOT_BYTES = 1024 * 1024
HTTP_TIMEOUT = 30.0
OIDC_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
TRUSTED_ROOT_PATH = ".well-known/factory/trusted_root.json"
STATE_DIR = "log-checkpoints"  # in the state directory: the last checkpoint verified, per log


# -- where the log is read from -----------------------------------------------------------------
class LogSource(Protocol):
    """The published log's files by their path under /log/ (None: not published)."""

    location: str

    def get(self, path: str, limit: int) -> bytes | None: ...

    def trusted_root(self) -> bytes | None: ...


class DirectorySource:
    """An index directory (or its ``log/``) on disk: regular files only, no link followed."""

    def __init__(self, directory: Path) -> None:
        directory = Path(directory)
        self.index = directory.parent if (directory / CHECKPOINT).is_file() else directory
        self.root = directory if (directory / CHECKPOINT).is_file() else directory / PREFIX
        self.location = str(directory.resolve())

    def get(self, path: str, limit: int) -> bytes | None:
        return _read(self.root / path, limit, path)

    def trusted_root(self) -> bytes | None:
        return _read(self.index / "trust" / "trusted_root.json", MAX_TRUSTED_ROOT_BYTES,
                     "trusted_root.json")


def _read(path: Path, limit: int, name: str) -> bytes | None:
    try:
        return read_plain(path, limit)
    except NotPlain as exc:
        if exc.errno == errno.ENOTDIR:  # as absent: the log has no such level yet
            return None
        raise VerificationError(f"{name}: {path}: {exc.why}") from None


class NamedFileError(VerificationError):
    """A file the user named (--from, --trusted-root) cannot be used: a usage error
    (exit 2), nothing said about the log."""

    exit_code = 2
    default_hint = ("give --from a checkpoint kept by an earlier `factory log verify`, and "
                    "--trusted-root the factory's keys/trusted_root.json")


def read_file(path: Path, limit: int, name: str) -> bytes:
    """A file the user named (``--from``, ``--trusted-root``): regular, at most ``limit``
    bytes, else one NamedFileError line (also when it does not exist)."""
    try:
        data = _read(path, limit, name)
    except VerificationError as exc:
        raise NamedFileError(exc.message) from None
    if data is None:
        raise NamedFileError(f"{name}: {path}: no such file")
    return data


def given_root(path: Path) -> tuple[TrustedRoot, str]:
    """The trusted root file ``path`` (``--trusted-root``); NamedFileError when it is none."""
    data = read_file(path, MAX_TRUSTED_ROOT_BYTES, "--trusted-root")
    try:
        return load_trusted_root(data), str(path)
    except VerificationError as exc:
        raise NamedFileError(f"--trusted-root {path}: {exc.message}") from None


def given_checkpoint(path: Path) -> bytes:
    """The checkpoint file ``path`` (``--from``), read and parsed; NamedFileError when it
    is none (parse errors of a file the user chose are theirs, not the log's)."""
    data = read_file(path, MAX_CHECKPOINT_BYTES, "--from")
    try:
        parse_checkpoint(data)
    except TileFormatError as exc:
        raise NamedFileError(f"--from {path} is not a log checkpoint: {exc}") from None
    return data


class HttpSource:
    """An index over HTTP(S): GET <index>/log/<path>, no redirect followed, bounded."""

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        import httpx

        from factory.upstream.transport import Cutoff

        self._base = url.rstrip("/") + "/"
        self.location = shown(self._base)  # what messages say: no user:password@
        self._client = client or httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False)
        self._cutoff = Cutoff()

    def _get(self, url: str, limit: int, name: str) -> bytes | None:
        """The body at ``url``, within HTTP_TIMEOUT + ``limit`` at MIN_RATE in all
        (httpx bounds each read only: a dripping server is cut at that bound)."""
        from factory.upstream.transport import MIN_RATE

        seconds = HTTP_TIMEOUT + limit / MIN_RATE
        with self._cutoff.bound(seconds) as expired:
            try:
                return self._stream(url, limit, name)
            except VerificationError:
                if expired.is_set():  # the timer shut the socket: say why
                    raise VerificationError(f"{name}: {shown(url)} sent no complete answer "
                                            f"within "
                                            f"{seconds:g} s",
                                            "the server is too slow or stalling on purpose"
                                            ) from None
                raise

    def _stream(self, url: str, limit: int, name: str) -> bytes | None:
        import httpx

        try:
            with self._client.stream("GET", url,
                                     extensions={"trace": self._cutoff.trace}) as response:
                if response.status_code == 404:
                    return None
                if response.status_code != 200:
                    raise VerificationError(f"{name}: {shown(url)} answered HTTP "
                                            f"{response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise VerificationError(f"{name}: larger than {limit} bytes")
                body = bytearray()
                for chunk in inflated(response):  # one encoding, in bounded pieces
                    body += chunk
                    if len(body) > limit:
                        raise VerificationError(f"{name}: larger than {limit} bytes")
                return bytes(body)
        except UpstreamError as exc:  # a stacked or corrupt Content-Encoding
            raise VerificationError(f"{name}: {shown(url)}: {exc.message}") from None
        except httpx.HTTPError as exc:
            raise VerificationError(f"{name}: cannot fetch {shown(url)}: {exc}",
                                    "check the index URL and that the index is up") from None

    def get(self, path: str, limit: int) -> bytes | None:
        return self._get(f"{self._base}{PREFIX}/{path}", limit, path)

    def trusted_root(self) -> bytes | None:
        return self._get(self._base + TRUSTED_ROOT_PATH, MAX_TRUSTED_ROOT_BYTES,
                         "trusted_root.json")


def open_source(index: str | Path) -> LogSource:
    """The published log of ``index``: an http(s) URL of an index, or its directory."""
    text = str(index)
    if text.startswith(("http://", "https://")):
        return HttpSource(text)
    directory = Path(text)
    if not directory.is_dir():
        raise VerificationError(f"{text} is neither an index URL nor a directory",
                                "give --index http(s)://... or the index directory")
    return DirectorySource(directory)


# -- the log's keys -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LogKey:
    key_id: bytes  # RFC 6962 key ID: sha256 of the DER SubjectPublicKeyInfo
    key: ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class TrustedRoot:
    logs: dict[bytes, LogKey]  # by 4-byte note key hint
    cas: tuple[x509.Certificate, ...]


def load_trusted_root(data: bytes) -> TrustedRoot:
    """The log keys and CA certificates of a Sigstore trusted root (JSON bytes)."""
    try:
        root = json.loads(data)
        logs = {}
        for tlog in root["tlogs"]:
            der = base64.b64decode(tlog["publicKey"]["rawBytes"], validate=True)
            key = serialization.load_der_public_key(der)
            if isinstance(key, ec.EllipticCurvePublicKey):
                key_id = hashlib.sha256(der).digest()
                logs[key_id[:4]] = LogKey(key_id, key)
        cas = tuple(
            x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"], validate=True))
            for authority in root.get("certificateAuthorities", [])
            for c in authority["certChain"]["certificates"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise VerificationError(f"the trusted root is malformed: {one_line(str(exc), 200)}",
                                "fetch it again from /.well-known/factory/") from None
    if not logs:
        raise VerificationError("the trusted root names no ECDSA transparency log key")
    return TrustedRoot(logs, cas)


def verify_note(note: Note, root: TrustedRoot, what: str = "checkpoint") -> LogKey:
    """The log key of ``root`` that signed ``note``; VerificationError when none did."""
    for _name, hint, signature in note.signatures:
        log = root.logs.get(hint)
        if log is None:
            continue
        try:
            log.key.verify(signature, note.signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise VerificationError(f"the {what}'s signature is invalid: it was forged or "
                                    "altered after signing",
                                    "do not trust this log; report it") from None
        return log
    raise VerificationError(f"the {what} is not signed by the log key of the trusted root",
                            "a different log, or a forged checkpoint: do not trust it")


# -- reading and checking the published log -----------------------------------------------------
@dataclass(frozen=True)
class Entry:
    index: int
    integrated_time: int
    body: bytes


@dataclass
class PublishedLog:
    """The log as published and checked: the verified checkpoint and every entry."""

    location: str
    checkpoint: Note
    entries: list[Entry]
    tree: MerkleTree = field(repr=False)
    root: TrustedRoot = field(repr=False)

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def origin(self) -> str:
        return self.checkpoint.origin


def _fetch(source: LogSource, path: str, full: str | None, limit: int) -> tuple[bytes, bool]:
    """The file at ``path``, and whether it is the full tile ``full`` instead: a partial
    tile that is gone is read from the full tile, which holds the partial's data first
    (tlog-tiles lets a log drop the partials a full tile supersedes)."""
    data = source.get(path, limit)
    if data is None and full is not None:
        data = source.get(full, limit)
        if data is not None:
            return data, True
    if data is None:
        raise VerificationError(f"{path} is not published: the log is incomplete",
                                "an entry or tile was removed; do not trust this log")
    return data, False


def _prefix(data: list[Any], width: int, path: str) -> list[Any]:
    if len(data) < width:
        raise VerificationError(f"{path}: holds {len(data)} items, the tree needs {width}")
    return data[:width]


def read_log(source: LogSource, root: TrustedRoot) -> PublishedLog:
    """Fetch and check the whole published log (see the module docstring)."""
    data = source.get(CHECKPOINT, MAX_CHECKPOINT_BYTES)
    if data is None:
        raise VerificationError(f"{source.location} publishes no transparency log "
                                "(no log/checkpoint)",
                                "the index signs with another Sigstore, or nothing was signed yet")
    try:
        note = parse_checkpoint(data)
    except TileFormatError as exc:
        raise VerificationError(f"checkpoint: {exc}") from None
    log_key = verify_note(note, root)
    tree, read = MerkleTree(), []
    for bundle in bundles(note.size):
        full = entries_path(bundle.n, TILE_WIDTH) if bundle.width < TILE_WIDTH else None
        path = entries_path(bundle.n, bundle.width)
        raw, whole = _fetch(source, path, full, MAX_BUNDLE_BYTES)
        try:
            bodies = parse_entry_bundle(raw, TILE_WIDTH if whole else bundle.width)
        except TileFormatError as exc:
            raise VerificationError(f"{path}: {exc}", "an entry was added or dropped; "
                                    "do not trust this log") from None
        bodies = _prefix(bodies, bundle.width, path)
        for body in bodies:
            tree.append(leaf_hash(body))
        read.append((bundle, bodies))
    if tree.root(note.size) != note.root:
        raise VerificationError(
            f"the published entries do not give the checkpoint's root (tree size {note.size}): "
            "an entry was altered, added or dropped",
            "do not trust this log; compare with a copy you kept")
    entries = []
    for bundle, bodies in read:
        times = _times(source, bundle.n, bundle.width, bodies, log_key)
        entries += [Entry(bundle.n * TILE_WIDTH + offset, times[offset], body)
                    for offset, body in enumerate(bodies)]
    _check_tiles(source, tree, note.size)
    return PublishedLog(source.location, note, entries, tree, root)


def _times(source: LogSource, n: int, width: int, bodies: list[bytes], log: LogKey) -> list[int]:
    """The signed time of each entry of bundle ``n`` (its SET checked with the log key)."""
    full = timestamps_path(n, TILE_WIDTH) if width < TILE_WIDTH else None
    path = timestamps_path(n, width)
    raw, _whole = _fetch(source, path, full, MAX_TIMESTAMPS_BYTES)
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = _prefix(lines, width, path)
    times = []
    for offset, (line, body) in enumerate(zip(lines, bodies, strict=True)):
        index = n * TILE_WIDTH + offset
        try:
            value = json.loads(line)
            when, signature = int(value["integratedTime"]), value["signedEntryTimestamp"]
            if value["logIndex"] != index or not isinstance(signature, str) or when < 0:
                raise ValueError("wrong index or fields")
            payload = rfc8785.dumps({"body": base64.b64encode(body).decode(),
                                     "integratedTime": when, "logID": log.key_id.hex(),
                                     "logIndex": index})
            log.key.verify(base64.b64decode(signature, validate=True), payload,
                           ec.ECDSA(hashes.SHA256()))
        except (ValueError, KeyError, TypeError, binascii.Error, InvalidSignature,
                RecursionError):  # RecursionError: a line of nested brackets
            raise VerificationError(f"{path}: entry {index}'s signed time is missing or "
                                    "invalid", "do not trust this log") from None
        times.append(when)
    return times


def _check_tiles(source: LogSource, tree: MerkleTree, size: int) -> None:
    """Every hash tile holds what the entries give (clients that read tiles for proofs
    see the same tree as this monitor)."""
    for tile in tiles(size):
        path = tile_path(tile.level, tile.n, tile.width)
        full = tile_path(tile.level, tile.n, TILE_WIDTH) if tile.width < TILE_WIDTH else None
        raw, whole = _fetch(source, path, full, TILE_WIDTH * 32)
        try:
            got = parse_hash_tile(raw, TILE_WIDTH if whole else tile.width)
        except TileFormatError as exc:
            raise VerificationError(f"{path}: {exc}") from None
        got = _prefix(got, tile.width, path)
        height = TILE_HEIGHT * tile.level
        for j, value in enumerate(got):
            if value != tree.node(height, tile.n * TILE_WIDTH + j):
                raise VerificationError(f"{path}: hash {j} does not match the published entries",
                                        "do not trust this log") from None


# -- consistency with an earlier checkpoint -----------------------------------------------------
def check_consistency(log: PublishedLog, older: bytes, what: str = "saved checkpoint") -> Note:
    """Raise VerificationError unless the checkpoint ``older`` is a prefix of ``log``."""
    try:
        note = parse_checkpoint(older)
    except TileFormatError as exc:
        raise VerificationError(f"the {what}: {exc}") from None
    verify_note(note, log.root, what)
    if note.origin != log.origin:
        raise VerificationError(f"the log's origin is now {log.origin!r}, the {what}'s "
                                f"{note.origin!r}: another log answers at {log.location}",
                                "do not trust it until you know why the log changed")
    if note.size > log.size:
        raise VerificationError(f"the log shrank: {log.size} entries now, {note.size} in the "
                                f"{what}", "the log rolled back its history; do not trust it")
    if log.tree.root(note.size) != note.root:
        raise VerificationError(f"the log rewrote its history: its first {note.size} entries "
                                f"no longer give the {what}'s root",
                                "do not trust this log; keep the checkpoint as evidence")
    return note


def state_file(state_dir: Path, location: str) -> Path:
    """Where the last checkpoint verified for the log at ``location`` is kept."""
    name = hashlib.sha256(location.encode()).hexdigest()[:24]
    return state_dir / STATE_DIR / f"{name}.checkpoint"


@dataclass(frozen=True)
class Verified:
    log: PublishedLog
    previous: Note | None  # the earlier checkpoint the log was checked against
    kept: Path | None  # where the checkpoint is kept for the next run


def verify_log(source: LogSource, root: TrustedRoot, state_dir: Path | None,
               older: bytes | None = None) -> Verified:
    """``read_log``, then consistency with ``older`` (else the checkpoint kept in
    ``state_dir`` for this log); on success the new checkpoint is kept there."""
    plugins_off()  # entries are parsed with rekor_types' models (factory._internal.plugins)
    log = read_log(source, root)
    kept = state_file(state_dir, source.location) if state_dir else None
    what = "given checkpoint"
    if older is None and kept is not None and kept.is_file():
        older, what = kept.read_bytes()[:MAX_CHECKPOINT_BYTES + 1], f"checkpoint kept in {kept}"
    previous = check_consistency(log, older, what) if older is not None else None
    # The largest checkpoint seen of this log wherever it was read (another URL, a mirror,
    # a copy on disk): a log no smaller than it must extend it, or the log has forked
    # (shown one history here and another there). A smaller one (a mirror behind) is
    # checked against the location's own checkpoint only.
    largest = state_file(state_dir, "origin:" + log.origin) if state_dir else None
    seen = _read(largest, MAX_CHECKPOINT_BYTES, "checkpoint") if largest is not None else None
    grows = True
    if seen is not None:
        with suppress(TileFormatError):
            grows = parse_checkpoint(seen).size <= log.size
        if grows:
            check_consistency(log, seen, f"largest checkpoint of {log.origin!r} seen before "
                              f"(kept in {largest}; another location showed it)")
    for path in (kept, largest if grows else None):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, log.checkpoint.text)
    return Verified(log, previous, kept)


# -- who signed what ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Signature:
    """One log entry, as a monitor shows it."""

    index: int
    time: int
    kind: str  # hashedrekord (an artifact) or dsse (an attestation)
    digest: str  # sha256:<hex> of the artifact (hashedrekord) or the statement (dsse)
    identity: str  # the certificate's SAN
    issuer: str  # its OIDC issuer extension
    trusted_ca: bool  # issued by a CA of the trusted root

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _der_utf8(value: bytes) -> str:
    """The text of a DER UTF8String (Fulcio's issuer extension .8)."""
    if len(value) < 2 or value[0] != 0x0C:
        raise ValueError("not a UTF8String")
    length, at = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, at = int.from_bytes(value[2:2 + count], "big"), 2 + count
    return value[at:at + length].decode("utf-8")


def _who(cert: x509.Certificate) -> tuple[str, str]:
    identity = issuer = ""
    with suppress(x509.ExtensionNotFound):
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.UniformResourceIdentifier),
                 *san.get_values_for_type(x509.RFC822Name)]
        identity = names[0] if names else ""
    for oid, raw in ((OIDC_ISSUER_V2_OID, False), (OIDC_ISSUER_OID, True)):
        with suppress(x509.ExtensionNotFound, ValueError, UnicodeDecodeError):
            value = cert.extensions.get_extension_for_oid(oid).value
            data = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
            issuer = data.decode("utf-8") if raw else _der_utf8(data)
            break
    return identity, issuer


def _issued_by(cert: x509.Certificate, cas: Iterable[x509.Certificate]) -> bool:
    for ca in cas:
        with suppress(ValueError, TypeError, InvalidSignature):
            cert.verify_directly_issued_by(ca)
            return True
    return False


def _signature(entry: Entry, cas: tuple[x509.Certificate, ...]) -> Signature:
    try:
        body = json.loads(entry.body)
        kind, spec = body["kind"], body["spec"]
        if kind == "hashedrekord":
            pem = spec["signature"]["publicKey"]["content"]
            hashed = spec["data"]["hash"]
            digest = f"{hashed['algorithm']}:{hashed['value']}"
        elif kind == "dsse":
            pem = spec["signatures"][0]["verifier"]
            digest = f"{spec['payloadHash']['algorithm']}:{spec['payloadHash']['value']}"
        else:
            raise ValueError(f"kind {kind!r}")
        cert = x509.load_pem_x509_certificate(base64.b64decode(pem, validate=True))
    except (ValueError, KeyError, TypeError, IndexError, binascii.Error,
            RecursionError) as exc:
        raise VerificationError(f"entry {entry.index} is not a hashedrekord or dsse entry "
                                f"with a certificate ({one_line(str(exc), 120)})") from None
    identity, issuer = _who(cert)
    return Signature(entry.index, entry.integrated_time, kind, one_line(digest, 100),
                     one_line(identity, 200), one_line(issuer, 200), _issued_by(cert, cas))


def signatures(log: PublishedLog) -> Iterator[Signature]:
    """Every entry of the log, newest first."""
    for entry in reversed(log.entries):
        yield _signature(entry, log.root.cas)


@dataclass
class Watch:
    """What ``monitor`` found: the entries asked for, and those nobody expected."""

    listed: list[Signature] = field(default_factory=list)
    unexpected: list[Signature] = field(default_factory=list)
    # Every identity that signed an entry (for a user whose --identity matched none).
    seen: set[str] = field(default_factory=set)

    @property
    def alarm(self) -> bool:
        return bool(self.unexpected)


def monitor(log: PublishedLog, identity: str | None = None, issuer: str | None = None,
            expect: Iterable[str] = ()) -> Watch:
    """The entries signed by ``identity`` (and ``issuer``), newest first (every entry when
    no identity is given); ``unexpected``: entries whose identity is not in ``expect``
    (when any is given) or whose certificate no CA of the trusted root issued."""
    allowed = set(expect)
    watch = Watch()
    for signature in signatures(log):
        watch.seen.add(signature.identity)
        if (identity is None or signature.identity == identity) and \
                (issuer is None or signature.issuer == issuer):
            watch.listed.append(signature)
        if (allowed and signature.identity not in allowed) or not signature.trusted_ca:
            watch.unexpected.append(signature)
    return watch


def trusted_root_from(path: Path | None, source: LogSource,
                      local: Path | None) -> tuple[TrustedRoot, str]:
    """The trusted root to check the log with, and where it came from: ``path`` if
    given, else the local public keys' copy (``local``), else the index's own copy
    (trust on first use: say so)."""
    if path is not None:
        return given_root(path)
    if local is not None and local.is_file():
        data = _read(local, MAX_TRUSTED_ROOT_BYTES, str(local))
        if data is not None:
            return load_trusted_root(data), str(local)
    data = source.trusted_root()
    if data is None:
        raise VerificationError(f"no trusted root: {source.location} serves none",
                                "give --trusted-root FILE (the factory's keys/trusted_root.json)")
    return load_trusted_root(data), f"{source.location} (served by the index itself)"


__all__ = [
    "DirectorySource",
    "HttpSource",
    "PublishedLog",
    "Signature",
    "Verified",
    "Watch",
    "check_consistency",
    "load_trusted_root",
    "NamedFileError",
    "given_checkpoint",
    "given_root",
    "monitor",
    "open_source",
    "read_file",
    "read_log",
    "signatures",
    "state_file",
    "trusted_root_from",
    "verify_log",
]
