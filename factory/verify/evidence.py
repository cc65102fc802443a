"""One wheel's evidence, read once: its digest and the sidecars published beside it.

Every check reads from here and nothing reads the disk twice. Sidecars are
read only as regular files and up to a bound, so a link, a FIFO or a huge
file planted next to a wheel becomes missing evidence, never a hang. The
helpers at the end turn sidecar text into Sigstore bundles and in-toto
statements bound to the wheel, raising VerificationError on any mismatch.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from factory._internal.plainfile import NotPlain, open_plain, read_plain
from factory.errors import VerificationError
from factory.verify.sbom import read_json
from factory.verify.targets import Item
from factory.verify.view import sidecar

if TYPE_CHECKING:
    from sigstore.models import Bundle

_CHUNK = 1 << 20
_IN_MEMORY = 64 << 20  # a wheel's bytes kept in memory up to this; past it, a private copy
_SIDECAR_LIMIT = 256 << 20  # a sidecar larger than this is not one the factory wrote
_SIDECAR_KINDS = ("sigstore", "intoto", "provenance", "sbom", "build")


def sha256_and_size(path: Path) -> tuple[str, int]:
    """The sha256 and size of the regular file at ``path``; OSError for anything else.
    Opened without blocking (a FIFO swapped in after a check), and never more bytes than
    its size when opened: a file of /proc says size 0 and reads without end (pagemap: 256
    GiB of zeros) or fails (mem: EIO), and a file that grows while read is not one file.
    A link is followed (an auditor's own wheel may be one; the index's files are checked
    for links by the index checks)."""
    sha, size, _ = _read(path, keep=False)
    return sha, size


def _read(path: Path, keep: bool) -> tuple[str, int, WheelBytes | None]:
    """sha256_and_size, and with ``keep`` the bytes it hashed (WheelBytes)."""
    digest, size = hashlib.sha256(), 0
    blocks: list[bytes] = []
    spill: BinaryIO | None = None
    try:
        with open_plain(path, follow_links=True) as handle:
            status = os.fstat(handle.fileno())
            while block := handle.read(min(_CHUNK, status.st_size - size + 1)):
                size += len(block)
                if size > status.st_size:
                    raise OSError(errno.EFBIG, f"more bytes than its size ({status.st_size})")
                digest.update(block)
                if keep and spill is None and size > _IN_MEMORY:
                    spill = tempfile.TemporaryFile()  # noqa: SIM115 (kept: WheelBytes closes it)
                    spill.writelines(blocks)
                    blocks = []
                if spill is not None:
                    spill.write(block)
                elif keep:
                    blocks.append(block)
    except BaseException:
        if spill is not None:
            spill.close()
        raise
    kept = WheelBytes(b"".join(blocks), spill) if keep else None
    return digest.hexdigest(), size, kept


class WheelBytes:
    """The very bytes a wheel's digest was taken of, for the checks that read inside the
    wheel (the in-toto inspection: is it an intact zip?), so that they never read the
    path again (it may hold other bytes by then): in memory, or past _IN_MEMORY in an
    unlinked temporary file of this process's."""

    def __init__(self, data: bytes, spill: BinaryIO | None) -> None:
        self._data, self._spill = data, spill

    def open(self) -> BinaryIO:
        if self._spill is None:
            return io.BytesIO(self._data)
        self._spill.seek(0)
        return self._spill

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()


@dataclass
class Evidence:
    """One wheel's digest and sidecars, read once."""

    wheel: Path
    sha256: str
    size: int
    base: Path  # the wheel path whose siblings hold the sidecars
    sidecars: dict[str, bytes | None] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)  # file name -> sha256 (for in-toto)
    # Verified statement payloads by canonical bundle JSON: the PEP 740 attestations are
    # the same signed bundles as W.intoto.jsonl, so each is verified once.
    verified: dict[str, bytes] = field(default_factory=dict)
    _statements: list[tuple[str, dict[str, Any] | None]] | None = field(default=None,
                                                                        repr=False)
    # JSON parsed from these exact bytes (sidecars, DSSE payloads): the same statement is
    # read from W.intoto.jsonl, the PEP 740 attestations and each check, parsed once.
    _parsed: dict[bytes, Any] = field(default_factory=dict, repr=False)
    # ids of the parsed values (kept alive in _parsed) that hold no float, NaN or Infinity.
    _integral: set[int] = field(default_factory=set, repr=False)
    # The bytes ``sha256`` is the digest of, when gather read them (not when given).
    content: WheelBytes | None = field(default=None, repr=False)

    @property
    def filename(self) -> str:
        return self.wheel.name

    def zip_intact(self) -> bool:
        """Whether the bytes of ``sha256`` are an intact zip (factory.verify.zipcheck;
        raises what it raises). Only for evidence gather read itself."""
        from factory.verify import zipcheck

        assert self.content is not None
        return zipcheck.intact(self.content.open())

    def close(self) -> None:
        if self.content is not None:
            self.content.close()

    def text(self, kind: str) -> str:
        data = self.sidecars.get(kind)
        if data is None:
            raise VerificationError(f"no {sidecar(self.base, kind).name} next to the wheel")
        return data.decode("utf-8")

    def parse(self, data: bytes) -> Any:
        """``data`` (UTF-8 JSON) parsed, once per distinct bytes: readers never change what
        they get (the value is shared by every check of this wheel)."""
        if data not in self._parsed:
            value, integral = read_json(data)
            self._parsed[data] = value
            if integral:
                self._integral.add(id(value))
        return self._parsed[data]

    def integral(self, value: Any) -> bool:
        """True when ``value`` is one parse() returned and its text held no float, NaN or
        Infinity (only strings, integers, true, false, null, arrays and objects)."""
        return id(value) in self._integral and any(v is value for v in self._parsed.values())

    def sidecar_json(self, kind: str) -> Any:
        """The sidecar ``kind`` parsed (once), or VerificationError when it is missing."""
        data = self.sidecars.get(kind)
        if data is None:
            raise VerificationError(f"no {sidecar(self.base, kind).name} next to the wheel")
        return self.parse(data)

    def statements(self) -> list[tuple[str, dict[str, Any] | None]]:
        """(bundle JSON, unverified statement) for each line of W.intoto.jsonl (read once;
        the statements are for finding lines and binding subjects, never changed)."""
        if self._statements is None:
            out = []
            for line in self.text("intoto").splitlines():
                if line.strip():
                    out.append((line, self._unverified_statement(json.loads(line))))
            self._statements = out
        return self._statements

    def _unverified_statement(self, bundle: dict[str, Any]) -> dict[str, Any] | None:
        try:
            statement = self.parse(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        except (KeyError, TypeError, ValueError):
            return None
        return statement if isinstance(statement, dict) else None


def gather(item: Item, known: tuple[str, int] | None = None) -> Evidence:
    """The wheel's evidence, its bytes read once (kept for the zip inspection: Evidence.
    zip_intact); ``known``: the sha256 and size of the wheel's bytes, when the caller read
    them itself (the evidence is then about those bytes)."""
    wheel = item.wheel
    assert wheel is not None
    content = None
    if known is None:
        sha, size, content = _read(wheel, keep=True)
    else:
        sha, size = known
    base = wheel
    if not sidecar(wheel, "sigstore").is_file() and item.published is not None:
        base = item.published.path  # a bare wheel: its evidence is in the index
    evidence = Evidence(wheel, sha, size, base, content=content)
    read: dict[str, bytes | None] = {}  # by file name (all in base's directory)
    for kind in _SIDECAR_KINDS:
        path = sidecar(base, kind)
        evidence.sidecars[kind] = read[path.name] = _plain_bytes(path)
    evidence.held[wheel.name] = sha
    # The files named after this wheel: its name taken literally (a tag may hold '*', '?'
    # or '[', and a pattern would gather another wheel's sidecars as this one's), as a
    # prefix of the directory's names (pathlib's glob compiled a pattern per wheel). A
    # sidecar read above is not read again: its digest is that of the bytes the checks read.
    prefix = base.name + "."
    for name in _names_in(base.parent):
        if name.startswith(prefix):
            data = read[name] if name in read else _plain_bytes(base.parent / name)
            if data is not None:
                evidence.held[name] = hashlib.sha256(data).hexdigest()
    return evidence


def _names_in(directory: Path) -> list[str]:
    """The names in ``directory``; none when it cannot be listed (as a glob finds none)."""
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _plain_bytes(path: Path) -> bytes | None:
    """The bytes of a regular file; None for a link, FIFO, device, directory, a file over
    the limit, or absence (evidence is never read through a link, and a FIFO never
    blocks the verifier)."""
    try:
        return read_plain(path, _SIDECAR_LIMIT)
    except NotPlain:
        return None


# -- reading signed evidence -----------------------------------------------------------------
def parse_bundle(text: str, what: str) -> Bundle:
    # Sigstore is imported on first use: the early child (factory.verify.early) reads
    # evidence without it.
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle

    try:
        return Bundle.from_json(text)
    except (SigstoreError, ValueError) as exc:
        raise VerificationError(f"{what} is not a valid Sigstore bundle: {exc}") from None


def bind(statement: dict[str, Any] | None, ev: Evidence, what: str) -> None:
    """The statement's subject is this wheel (name and sha256), or VerificationError."""
    if statement is None:
        raise VerificationError(f"{what} has no readable in-toto statement")
    from factory.sign.bundles import check_subject

    try:
        check_subject(statement, ev.filename, ev.sha256)
    except VerificationError as exc:
        raise VerificationError(f"{what}: {exc.message}") from None


def attestations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The attestations of a PEP 740 provenance object, at least one."""
    found = [a for b in document.get("attestation_bundles", []) for a in b.get("attestations", [])]
    if not found:
        raise VerificationError("the PEP 740 provenance object holds no attestation")
    return found
