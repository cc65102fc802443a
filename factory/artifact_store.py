"""The content-addressed artifact store that build workers and the publisher share.

Sdists, build-tool wheels, built wheels, build records and logs are kept by the
SHA-256 of their bytes: ``sha256/<first two hex>/<64 hex>``. A few named
pointers, ``refs/<name>``, each hold a tiny JSON ``{"sha256": ..., "size": ...}``
(``builds/<ticket sha>`` says which record a build made, say). The store is a
local or network directory, or object storage through fsspec (``s3://``,
``gs://`` with s3fs or gcsfs installed); ``memory://`` serves tests. It is chosen
by ``[store] url`` in factory.toml, default ``<state_dir>/store``.

Whoever can write the store is not trusted with what the factory builds: the
trusted side always asks for a digest it already holds, and every read is
verified while it streams: at most ``size + 1`` bytes are read, and an object
that is longer, shorter or different is refused (:class:`StoreError`) before
the bytes are used (``get`` renames its temp file into place only then). Local
reads open each name below the root relative to a directory descriptor with
``O_NOFOLLOW`` and read regular files only, so a link never leads out of the
store. Digests and ref names are validated before they become paths.

Writes are never half-visible: a local object is written to ``tmp/`` in the
store, flushed and renamed into place; a remote one is streamed to a temp key
and moved, and a ref is one single-object put. ``put`` is idempotent: an
existing object that hashes right is kept, a damaged one is replaced.

    store = ArtifactStore.of(settings)
    blob = store.put(wheel)                 # Blob(sha256=..., size=...)
    store.set_ref("builds/<ticket sha>", record_blob)
    store.get(blob, work / wheel.name)      # verified, or StoreError
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from factory._internal.atomic import TMP_PREFIX, atomic_writer
from factory._internal.digests import sha256_of
from factory.errors import FactoryError

if TYPE_CHECKING:
    from factory.config import Settings

CHUNK = 1 << 20
REF_LIMIT = 1024  # bytes of a ref: {"sha256": 64 hex, "size": n} needs about 100
MEMORY_LIMIT = 256 << 20  # bytes read_bytes holds in memory; larger blobs go through get
MAX_SIZE = 1 << 40  # bytes a blob may claim (1 TiB): a size is checked before it is trusted
REF_NAME_LIMIT = 512
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REF_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*)://")
_LOCAL_PROTOCOLS = ("file", "local")  # the local backend: O_NOFOLLOW, confined to its root
# fsspec protocols over local files or archives, caches and read-only sources: not a store
_NOT_STORES = frozenset({"dir", "simplecache", "filecache", "blockcache", "cached",
                         "reference", "zip", "tar", "libarchive", "generic", "data", "http",
                         "https", "asynclocal", "async_wrapper", "asyncwrapper"})
_DAMAGED = "the store was tampered with or is damaged: remove the object and rebuild it"
_ROOT = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # the root itself is the operator's choice
_DIR = _ROOT | os.O_NOFOLLOW
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class StoreError(FactoryError):
    default_hint = ("check the artifact store ([store] url in factory.toml or "
                    "FACTORY_STORE_URL) and that this machine can read and write it")


@dataclass(frozen=True)
class Blob:
    """An object of the store: the SHA-256 of its bytes (64 lowercase hex) and their
    number. Made only from valid values, so a digest read from a ref, a message or a
    worker's answer is checked before it names anything."""

    sha256: str
    size: int

    def __post_init__(self) -> None:
        _check_digest(self.sha256)
        if type(self.size) is not int or not 0 <= self.size <= MAX_SIZE:
            raise StoreError(f"blob size {self.size!r} is not a number of bytes "
                             f"from 0 to {MAX_SIZE}", "pass the size the store returned")

    @classmethod
    def of_bytes(cls, data: bytes) -> Blob:
        return cls(hashlib.sha256(data).hexdigest(), len(data))


class ArtifactStore:
    """One store (see the module's docstring). Safe to share between threads."""

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend

    @property
    def where(self) -> str:
        """The store as messages name it (a path, or a URL without credentials)."""
        return self._backend.where

    def __repr__(self) -> str:
        return f"ArtifactStore({self.where!r})"

    @classmethod
    def of(cls, settings: Settings) -> ArtifactStore:
        """The store ``[store] url`` names, or ``<state_dir>/store``."""
        return cls.at(settings.store)

    @classmethod
    def at(cls, url: str) -> ArtifactStore:
        """The store at a path, ``file://``, ``memory://``, ``s3://``, ``gs://`` ...
        (any fsspec protocol whose plugin is installed)."""
        if not isinstance(url, str) or not url.strip() or not url.isprintable():
            raise StoreError(f"artifact store {_shown(url)!r} is not a path or URL",
                             "set [store] url to a directory, s3://bucket/prefix or "
                             "gs://bucket/prefix")
        scheme = _SCHEME.match(url)
        if scheme is None:
            if "://" in url:
                raise StoreError(f"artifact store {_shown(url)!r} is not a path or URL",
                                 "write the URL as scheme://..., e.g. s3://bucket/prefix")
            return cls(_LocalBackend(Path(url).absolute()))
        protocol = scheme.group(1)
        if protocol in _LOCAL_PROTOCOLS:  # fsspec's local files follow links: ours do not
            path = url[scheme.end():]
            if not path.startswith("/"):
                raise StoreError(f"artifact store {_shown(url)!r} is not an absolute "
                                 f"{protocol}:// URL", "write it as file:///absolute/path")
            return cls(_LocalBackend(Path(path)))
        if protocol in _NOT_STORES:
            raise StoreError(f"the artifact store {_shown(url)} uses {protocol}://, which "
                             "wraps local files or an archive (links would be followed) or "
                             "cannot be written", "use a directory, file://, s3:// or gs://")
        if "@" in url[scheme.end():]:
            # a user:secret@ would reach every message (a secret may hold '/', so the
            # authority cannot be told from the path): fsspec is not given it anyway
            raise StoreError(f"the artifact store {_shown(url)} carries credentials or an "
                             "'@' in its URL", "give the store's credentials through the "
                             "environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS)")
        return cls(_RemoteBackend.open(protocol, url))

    # -- objects ---------------------------------------------------------------------
    def put(self, path: Path) -> Blob:
        """Store the file at ``path`` (streamed and hashed); its blob."""
        try:
            blob = Blob(sha256_of(path), os.stat(path).st_size)
            with open(path, "rb") as source:
                return self._put(blob, iter(lambda: source.read(CHUNK), b""))
        except OSError as exc:
            if exc.filename is not None and Path(exc.filename) == Path(path):
                raise StoreError(f"cannot read {path} to store it: {exc.strerror}",
                                 "check that the file exists and is readable") from None
            raise self._os_error(exc, "write to") from None

    def put_bytes(self, data: bytes) -> Blob:
        """Store ``data``; its blob."""
        try:
            return self._put(Blob.of_bytes(data), [data])
        except OSError as exc:
            raise self._os_error(exc, "write to") from None

    def _put(self, blob: Blob, chunks: Iterable[bytes]) -> Blob:
        if self._holds(blob):
            return blob
        key = _object_key(blob)
        digest, seen = hashlib.sha256(), 0
        with self._backend.temp() as temp:
            for chunk in chunks:
                digest.update(chunk)
                seen += len(chunk)
                temp.write(chunk)
            temp.finish()
            if (digest.hexdigest(), seen) != (blob.sha256, blob.size):
                raise StoreError(f"{blob.sha256} changed while it was being stored in "
                                 f"{self.where}", "nothing was stored; put it again once "
                                 "nothing writes the file")
            temp.commit(key)
        return blob

    def _holds(self, blob: Blob) -> bool:
        """Whether the object is there with the right size and hash (an existing one
        that is damaged is then replaced by ``put``)."""
        if self._backend.size(_object_key(blob)) != blob.size:
            return False
        try:
            self._read(blob, lambda chunk: None)
        except StoreError:
            return False
        return True

    def get(self, blob: Blob, dest: Path) -> Path:
        """Copy the object to ``dest``, verified: its bytes stream to a temp file beside
        ``dest``, which is renamed into place only when size and SHA-256 match. A
        mismatch is a StoreError and leaves ``dest`` as it was."""
        try:
            with atomic_writer(dest, "wb", permissions=0o644) as out:
                self._read(blob, out.write)
        except OSError as exc:
            raise self._os_error(exc, "read from") from None
        return dest

    def read_bytes(self, blob: Blob) -> bytes:
        """The object's bytes, verified as ``get`` does (small blobs: records, logs)."""
        if blob.size > MEMORY_LIMIT:
            raise StoreError(f"{blob.sha256} ({blob.size} bytes) is too large to read into "
                             f"memory (limit {MEMORY_LIMIT})", "use get() to a file")
        parts: list[bytes] = []
        try:
            self._read(blob, parts.append)
        except OSError as exc:
            raise self._os_error(exc, "read from") from None
        return b"".join(parts)

    def has(self, blob: Blob) -> bool:
        """Whether an object of that digest and size is there (not re-hashed: a read
        verifies)."""
        try:
            return self._backend.size(_object_key(blob)) == blob.size
        except OSError as exc:
            raise self._os_error(exc, "read from") from None

    def _read(self, blob: Blob, sink: Callable[[bytes], object]) -> None:
        """Stream the object to ``sink``, reading at most ``size + 1`` bytes; a longer,
        shorter or different object is a StoreError (raised before its last bytes
        reach the sink when it is longer, after them otherwise: the caller discards)."""
        stream = self._backend.open_read(_object_key(blob))
        if stream is None:
            raise StoreError(f"{blob.sha256} is not in the artifact store {self.where}",
                             "store it first (put), or rebuild what made it")
        digest, seen = hashlib.sha256(), 0
        with stream:
            while chunk := stream.read(min(CHUNK, blob.size + 1 - seen)):
                seen += len(chunk)
                if seen > blob.size:
                    raise StoreError(f"{blob.sha256} in the artifact store {self.where} is "
                                     f"longer than its {blob.size} bytes", _DAMAGED)
                digest.update(chunk)
                sink(chunk)
        if seen < blob.size:
            raise StoreError(f"{blob.sha256} in the artifact store {self.where} is "
                             f"truncated ({seen} of {blob.size} bytes)", _DAMAGED)
        if digest.hexdigest() != blob.sha256:
            raise StoreError(f"{blob.sha256} in the artifact store {self.where} has other "
                             f"bytes (sha256 {digest.hexdigest()})", _DAMAGED)

    # -- refs ------------------------------------------------------------------------
    def set_ref(self, name: str, blob: Blob, *, only_if_absent: bool = False) -> bool:
        """Point ``refs/<name>`` at ``blob``, which must be in the store already; whether
        it was written. With ``only_if_absent`` a ref that exists is kept, decided by the
        store in one step (a link on a directory, a conditional put on object storage), so
        of two writers racing for the first word exactly one wins."""
        key = _ref_key(name)
        if not self.has(blob):
            raise StoreError(f"ref {name} would point at {blob.sha256}, which is not in the "
                             f"artifact store {self.where}", "put the object before its ref")
        data = json.dumps({"sha256": blob.sha256, "size": blob.size}, sort_keys=True)
        try:
            return self._backend.write_small(key, data.encode("ascii"), only_if_absent)
        except OSError as exc:
            raise self._os_error(exc, "write to") from None

    def ref(self, name: str) -> Blob | None:
        """The blob ``refs/<name>`` points at, or None when there is no such ref."""
        key = _ref_key(name)
        try:
            stream = self._backend.open_read(key)
            if stream is None:
                return None
            with stream:
                data = stream.read(REF_LIMIT + 1)
        except OSError as exc:
            raise self._os_error(exc, "read from") from None
        if len(data) > REF_LIMIT:
            raise StoreError(f"ref {name} in the artifact store {self.where} is larger than "
                             f"{REF_LIMIT} bytes", _DAMAGED)
        try:
            value = json.loads(data)
            if not isinstance(value, dict) or set(value) != {"sha256", "size"}:
                raise ValueError("not {sha256, size}")
            return Blob(value["sha256"], value["size"])
        except (ValueError, RecursionError, StoreError):  # [[[[... nests past the parser
            raise StoreError(f"ref {name} in the artifact store {self.where} is not a valid "
                             "ref", _DAMAGED) from None

    def sweep(self, older_than: float = 3600.0) -> int:
        """Remove the temp files of puts that were killed (``kill -9``), untouched for
        ``older_than`` seconds (a younger one may still have a writer); how many. Local
        stores only: object storage expires them by a lifecycle rule on ``tmp/``."""
        try:
            return self._backend.sweep(older_than)
        except OSError as exc:
            raise self._os_error(exc, "sweep") from None

    def _os_error(self, exc: OSError, what: str) -> StoreError:
        return StoreError(f"cannot {what} the artifact store {self.where}: "
                          f"{exc.strerror or exc}")


# -- names -----------------------------------------------------------------------------

def _check_digest(value: object) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise StoreError(f"{str(value)[:80]!r} is not a sha256 digest (64 lowercase hex)",
                         "pass the digest the store returned")
    return value


def _object_key(blob: Blob) -> str:
    digest = _check_digest(blob.sha256)
    return f"sha256/{digest[:2]}/{digest}"


def _ref_key(name: object) -> str:
    if (not isinstance(name, str) or len(name) > REF_NAME_LIMIT
            or not all(_REF_SEGMENT.fullmatch(s) for s in name.split("/"))):
        raise StoreError(f"{str(name)[:80]!r} is not a ref name",
                         "a ref name is segments of a-z, 0-9, '.', '_', '-' joined by '/', "
                         f"each starting with a letter or digit, at most {REF_NAME_LIMIT} "
                         "characters")
    return f"refs/{name}"


# -- backends --------------------------------------------------------------------------

class _Temp(Protocol):
    def write(self, data: bytes) -> None: ...
    def finish(self) -> None: ...
    def commit(self, key: str, only_if_absent: bool = False) -> bool: ...


class _Backend(Protocol):
    where: str

    def open_read(self, key: str) -> IO[bytes] | None: ...
    def size(self, key: str) -> int | None: ...
    def temp(self) -> contextlib.AbstractContextManager[_Temp]: ...
    def write_small(self, key: str, data: bytes, only_if_absent: bool = False) -> bool: ...
    def sweep(self, older_than: float) -> int: ...


class _LocalBackend:
    """A directory: every name below the root is looked up relative to its parent's
    descriptor with O_NOFOLLOW, so nothing in the store can lead out of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def _walk(self, parts: Sequence[str], create: bool) -> int | None:
        """A descriptor of ``root/parts``, or None when it is absent and not created."""
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.root, _ROOT)
        except FileNotFoundError:
            return None
        try:
            for depth, part in enumerate(parts, 1):
                sub = self._subdir(fd, part, create, "/".join(parts[:depth]))
                if sub is None:
                    return None
                os.close(fd)
                fd = sub
            found, fd = fd, -1
            return found
        finally:
            if fd >= 0:
                os.close(fd)

    def _subdir(self, fd: int, part: str, create: bool, shown: str) -> int | None:
        for _attempt in range(2):
            try:
                return os.open(part, _DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            except OSError as exc:  # ELOOP: a link; ENOTDIR: a file
                raise StoreError(f"{self.where}/{shown} is not a directory of the artifact "
                                 f"store ({exc.strerror})", _DAMAGED) from None
        raise StoreError(f"{self.where}/{shown} vanished while the store made it",
                         "something else is removing the store; try again")

    @contextlib.contextmanager
    def _dir(self, parts: Sequence[str], create: bool = False) -> Iterator[int | None]:
        fd = self._walk(parts, create)
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    def open_read(self, key: str) -> IO[bytes] | None:
        *parents, name = key.split("/")
        with self._dir(parents) as parent:
            if parent is None:
                return None
            try:
                fd = os.open(name, _FILE, dir_fd=parent)
            except FileNotFoundError:
                return None
            except OSError as exc:  # ELOOP: a link
                raise StoreError(f"{self.where}/{key} is not a regular file ({exc.strerror})",
                                 _DAMAGED) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(f"{self.where}/{key} is not a regular file", _DAMAGED)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def size(self, key: str) -> int | None:
        *parents, name = key.split("/")
        with self._dir(parents) as parent:
            if parent is None:
                return None
            try:
                info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    @contextlib.contextmanager
    def temp(self) -> Iterator[_Temp]:
        directory = self._walk(("tmp",), create=True)
        assert directory is not None
        try:
            temp = _LocalTemp(self, directory)
            try:
                yield temp
            finally:
                temp.discard()
        finally:
            os.close(directory)

    def write_small(self, key: str, data: bytes, only_if_absent: bool = False) -> bool:
        with self.temp() as temp:
            temp.write(data)
            temp.finish()
            return temp.commit(key, only_if_absent)


    def sweep(self, older_than: float) -> int:
        horizon = time.time() - older_than
        removed = 0
        with self._dir(("tmp",)) as directory:
            if directory is None:
                return 0
            for name in os.listdir(directory):
                with contextlib.suppress(FileNotFoundError):
                    info = os.stat(name, dir_fd=directory, follow_symlinks=False)
                    if (name.startswith(TMP_PREFIX) and not stat.S_ISDIR(info.st_mode)
                            and info.st_mtime < horizon):
                        os.unlink(name, dir_fd=directory)
                        removed += 1
        return removed


class _LocalTemp:
    """A file in the store's tmp/, named so that it is never taken for an object."""

    def __init__(self, backend: _LocalBackend, directory: int) -> None:
        self._backend, self._directory = backend, directory
        self.name = f"{TMP_PREFIX}{secrets.token_hex(12)}"
        self._file: IO[bytes] | None = os.fdopen(
            os.open(self.name, _NEW, 0o644, dir_fd=directory), "wb")
        self._committed = False

    def write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)

    def finish(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None

    def commit(self, key: str, only_if_absent: bool = False) -> bool:
        *parents, name = key.split("/")
        with self._backend._dir(parents, create=True) as parent:
            if not only_if_absent:
                os.replace(self.name, name, src_dir_fd=self._directory, dst_dir_fd=parent)
                self._committed = True
                return True
            try:  # link(2) fails on an existing name: the first writer wins, whole
                os.link(self.name, name, src_dir_fd=self._directory, dst_dir_fd=parent,
                        follow_symlinks=False)
            except FileExistsError:
                return False
            return True  # the temp name goes in discard()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self._committed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.name, dir_fd=self._directory)


class _RemoteBackend:
    """Object storage (or memory://) through an fsspec filesystem."""

    def __init__(self, fs: Any, root: str, where: str) -> None:
        self.fs, self.root, self.where = fs, root.rstrip("/"), where

    @classmethod
    def open(cls, protocol: str, url: str) -> _RemoteBackend:
        where = _without_credentials(url)
        import fsspec  # only remote stores need it

        try:
            kind = fsspec.get_filesystem_class(protocol)
        except ImportError:
            raise StoreError(f"the artifact store {where} needs fsspec's {protocol}:// "
                             "support, which is not installed",
                             "install s3fs (for s3://) or gcsfs (for gs://, gcs://) into the "
                             "factory's environment") from None
        except ValueError:
            raise StoreError(f"the artifact store {where} uses an unknown protocol "
                             f"{protocol}://", "use a directory, file://, s3:// or gs://"
                             ) from None
        return cls(fsspec.filesystem(protocol), kind._strip_protocol(url), where)

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def open_read(self, key: str) -> IO[bytes] | None:
        try:
            # reads ahead at most one chunk beyond what is asked (fsspec's default is 5 MiB)
            stream: IO[bytes] = self.fs.open(self._path(key), "rb", block_size=CHUNK)
        except FileNotFoundError:
            return None
        return stream

    def size(self, key: str) -> int | None:
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        size = info.get("size")
        return size if info.get("type") == "file" and isinstance(size, int) else None

    @contextlib.contextmanager
    def temp(self) -> Iterator[_Temp]:
        temp = _RemoteTemp(self)
        try:
            yield temp
        finally:
            temp.discard()

    def write_small(self, key: str, data: bytes, only_if_absent: bool = False) -> bool:
        # One put: all of it or nothing. "create" is a conditional put where the object
        # store has one (S3's If-None-Match, GCS's generation match).
        try:
            self.fs.pipe_file(self._path(key), data,
                              mode="create" if only_if_absent else "overwrite")
        except FileExistsError:
            return False
        return True

    def sweep(self, older_than: float) -> int:
        return 0  # listing times differ between object stores: a lifecycle rule does it


class _RemoteTemp:
    """A temp key in tmp/, moved to its object key when complete."""

    def __init__(self, backend: _RemoteBackend) -> None:
        self._backend = backend
        self.path = backend._path(f"tmp/{TMP_PREFIX}{secrets.token_hex(12)}")
        self._file: Any = backend.fs.open(self.path, "wb")
        self._committed = False

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def finish(self) -> None:
        self._file.close()
        self._file = None

    def commit(self, key: str, only_if_absent: bool = False) -> bool:
        # Objects only (refs are one conditional put in write_small): an object's bytes
        # are its name, so a second writer of the same key writes the same bytes.
        self._backend.fs.mv(self.path, self._backend._path(key))
        self._committed = True
        return True

    def discard(self) -> None:
        if self._file is not None:
            # an unfinished upload: abort it where the file can (s3fs, gcsfs), else close
            abort = getattr(self._file, "discard", None)
            with contextlib.suppress(Exception):
                abort() if callable(abort) else self._file.close()
            self._file = None
        if not self._committed:
            with contextlib.suppress(FileNotFoundError):
                self._backend.fs.rm(self.path)


def _shown(url: object) -> str:
    """``url`` for a message, any ``user:secret@`` (up to its last '@') left out."""
    text = str(url)
    if "@" not in text:
        return text
    scheme, sep, _rest = text.partition("://")
    return f"{scheme}{sep}<credentials>@{text.rpartition('@')[2]}" if sep else "<a URL>"


def _without_credentials(url: str) -> str:
    """``url`` as it may be shown: any ``user:secret@`` before the host dropped."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
