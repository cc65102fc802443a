"""CPython interpreters built from Debian's verified source, once per builder image.

The builder image holds Debian bookworm's Python 3.11 (the default interpreter set,
``[build] interpreters = ["3.11"]``: nothing to build). Other CPython versions are
built the way manylinux images hold several Pythons side by side, each in its own
prefix ``/opt/python/cp3XY-cp3XY``, from the unmodified release tarball Debian's
archive carries (PINS: the source package, its version and suite, and the tarball's
sha256), fetched through the signed chain (``factory.build.debian_source``:
InRelease checked with gpgv and the Debian archive keyring -> Sources.xz -> the
tarball's sha256). Where upstream signed the tarball with OpenPGP (3.13: Debian's
stanza lists ``<tarball>.asc``), that signature is checked with gpgv against the
release manager's key pinned by fingerprint in ``factory/data/cpython/``. From 3.14
upstream signs with Sigstore only and Debian ships no such bundle; nothing reaches
python.org from here, so 3.14 rests on Debian's chain alone (``signature: none``).

The build runs in a container like every build (no network, read-only root, the
build user), in the builder image plus the headers CPython's modules need
(BUILD_PACKAGES: a derived image, like a recipe's system packages), with shared
libraries off and no PGO or LTO, from a fixed source path with fixed flags. The
installed prefix is kept under
``<state>/builder/interpreters/<tag>-<source>-<image>-<flags>/tree`` with a
manifest (sha256 and mode of every file, the target of every link): built once per
(tarball digest, image id, configure flags digest), and the whole tree is hashed
again and compared with its manifest every time it is used; a tree that differs is
refused and built again.

    image = bootstrap_image(settings, BUILD_PACKAGES)
    for pin in select(settings):
        python = for_image(settings, image, pin)   # built once, then found
        python.tree  # mount read-only at python.prefix
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import posixpath
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from factory._internal.atomic import canonical_json, write_json
from factory._internal.hostlock import host_lock
from factory.build import debian_source
from factory.build.confined import Confined
from factory.build.debian_source import SourcePin, SourceTarball, SourceUnavailable
from factory.build.docker import Bind, owner_id, prepare_output, run_container
from factory.build.image import ImageRef, split_package
from factory.build.workdir import work_dir
from factory.config import Settings
from factory.errors import BuildError, ConfigError, UnsafeArchiveError, one_line
from factory.upstream import archive

SYSTEM = "3.11"  # the builder image's own python3 (Debian bookworm): nothing to build
SYSTEM_TAG = "cp311"
# What CPython's configure needs on top of the builder image for the modules a build
# tool uses (ssl, zlib, bz2, lzma, ctypes, sqlite3, uuid, readline, curses), plus make
# and xz. Their runtime libraries are in the builder image already (Debian's python3
# depends on them), so an interpreter built here runs in either image.
BUILD_PACKAGES = ("make", "xz-utils", "pkgconf", "zlib1g-dev", "libssl-dev", "libffi-dev",
                  "libbz2-dev", "liblzma-dev", "libsqlite3-dev", "uuid-dev", "libncurses-dev",
                  "libreadline-dev")
BUILD_SECONDS = 3600  # one interpreter (about 8 minutes on 2 busy cores)
# The build's memory limit: /build is a tmpfs holding the source, the objects and the
# installed prefix (about 1 GB), charged to the container. The factory's own pinned
# build, so not [build] memory (the limit of the components' builds).
BUILD_MEMORY = "4g"
MAX_NOTE = 16 << 10
MAX_MANIFEST = 8 << 20  # bytes of a kept manifest (3.13's: about 0.5 MB)
MAX_TREE_ENTRIES = 20_000  # files, links and directories of one installed prefix (~2,500)
MAX_TREE_BYTES = 1 << 30
MAX_TREE_DEPTH = 24
DATA = Path(__file__).resolve().parent.parent / "data" / "cpython"
GPGV_SECONDS = 60


class SignatureRefused(SourceUnavailable):
    """Upstream's signature of a release tarball is missing, bad, or not the pinned key's."""

    default_hint = ("the tarball Debian carries is not the one the release manager signed; "
                    "report it, and do not build from it")


@dataclass(frozen=True)
class ReleaseKey:
    """A release manager's OpenPGP key, pinned by fingerprint, shipped in DATA."""

    fingerprint: str  # 40 hex digits, upper case
    owner: str
    expires: int  # the primary key's expiry in the shipped copy (epoch seconds; 0: none)

    @property
    def path(self) -> Path:
        return DATA / f"{self.fingerprint}.asc"


@dataclass(frozen=True)
class InterpreterPin:
    """One CPython release line: the Debian source package that carries its tarball."""

    version: str  # "3.13"
    source: SourcePin
    orig_sha256: str  # the tarball meant; the signed Sources stanza must name the same
    key: ReleaseKey | None  # None: upstream made no OpenPGP signature (Sigstore only)

    @property
    def tag(self) -> str:
        return "cp" + self.version.replace(".", "")

    @property
    def prefix(self) -> str:
        return f"/opt/python/{self.tag}-{self.tag}"


WOUTERS = ReleaseKey("7169605F62C751356D054A26A821E680E5FA6305",
                     "Thomas Wouters <thomas@python.org> (3.12 and 3.13)", 1782998657)
# Debian's archive as this was pinned (2026-11-30): trixie (stable) carries 3.13.5 with
# upstream's .asc; 3.14 is in forky (testing) 3.14.8-1 and sid 3.14.9/3.14.10, with no
# .asc (upstream signs 3.14 with Sigstore only). A pin a suite no longer carries is found
# at a snapshot mirror (FACTORY_DEBIAN_MIRROR=https://snapshot.debian.org/archive/...).
PINS: dict[str, InterpreterPin] = {
    "3.13": InterpreterPin(
        "3.13", SourcePin("python3.13", "3.13.5-2+deb13u5", "trixie"),
        "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640", WOUTERS),
    "3.14": InterpreterPin(
        "3.14", SourcePin("python3.14", "3.14.8-1", "forky"),
        "c2215904f02b175596dc49351585104f4bc20341e1c47378b26a2c274360ce73", None),
}

# The build, in one script: fixed source path, no shared library, no PGO/LTO, the
# bundled libmpdec (bookworm has no libmpdec-dev), no ensurepip (build tools are the
# factory's own wheels), the test suite left out of the prefix. SOURCE_DATE_EPOCH fixes
# gcc's __DATE__/__TIME__ and makes compileall write hash-checked .pyc files. The prefix
# leaves the container as one tar file (the output watcher allows a build few entries;
# a prefix has about 6,000), unpacked by the host with the checks an sdist gets.
CONFIGURE = ("--build=x86_64-pc-linux-gnu", "--disable-shared", "--without-ensurepip",
             "--with-system-libmpdec=no", "CFLAGS=-ffile-prefix-map=/build/src=. -g0")
ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "TZ": "UTC",
               "HOME": "/tmp", "SOURCE_DATE_EPOCH": "0", "PYTHONHASHSEED": "0"}
# The modules a build tool needs; the build fails when one did not build.
MODULES = ("ssl", "zlib", "bz2", "lzma", "ctypes", "sqlite3", "_decimal", "hashlib", "uuid",
           "pyexpat", "readline", "curses", "venv")
_SCRIPT = """set -eu
tarball=$1 prefix=$2 jobs=$3 short=$4; shift 4
mkdir /build/src
tar -xf "/source/$tarball" -C /build/src --strip-components=1 --no-same-owner
cd /build/src
./configure --prefix="$prefix" "$@" > /build/configure.log 2>&1 \
    || { tail -n 40 /build/configure.log; exit 1; }
make -j"$jobs" > /build/make.log 2>&1 || { tail -n 60 /build/make.log; exit 1; }
make install DESTDIR=/build/root > /build/install.log 2>&1 \
    || { tail -n 60 /build/install.log; exit 1; }
root="/build/root$prefix"
rm -rf "$root/lib/python$short/test" "$root/lib/python$short/idlelib/idle_test"
strip --strip-unneeded "$root/bin/python$short" "$root"/lib/python$short/lib-dynload/*.so
"$root/bin/python$short" -c "import sys, $MODULES; print(sys.version.split()[0])" \
    > /out/version
tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf /out/tree.tar .
"""


@dataclass(frozen=True)
class Interpreter:
    """A CPython the factory built: where its prefix is kept, what it is, what it came from."""

    version: str  # "3.13.5", as the interpreter says
    tag: str  # "cp313"
    prefix: str  # where it is mounted: /opt/python/cp313-cp313
    tree: Path  # the kept prefix (mount it read-only at ``prefix``)
    tree_sha256: str  # of the canonical manifest
    source: dict[str, Any]  # SourceTarball.describe()
    signature: dict[str, Any]  # what upstream's signature check found
    image_id: str
    flags_sha256: str
    seconds: float  # what building it took (paid once per image)
    fresh: bool = False  # built by this call (else found kept and checked)

    @property
    def executable(self) -> str:
        """Its python inside a container (the tree mounted at ``prefix``)."""
        return f"{self.prefix}/bin/python{'.'.join(self.version.split('.')[:2])}"

    def describe(self) -> dict[str, Any]:
        """What a record says of it (host-known: the host built and checked it)."""
        return {"version": self.version, "tag": self.tag, "prefix": self.prefix,
                "tree_sha256": self.tree_sha256, "source": self.source,
                "signature": self.signature, "image_id": self.image_id,
                "flags_sha256": self.flags_sha256,
                "origin": "built by the factory from the Debian source package "
                          f"{self.source.get('package')} {self.source.get('version')} "
                          f"({self.source.get('suite')})"}


# -- the configured set -------------------------------------------------------------

def select(settings: Settings) -> list[InterpreterPin]:
    """The interpreters ``[build] interpreters`` asks the factory to build (the image's
    own 3.11 needs none). ConfigError for a version no pin carries."""
    chosen = []
    for version in settings.build_interpreters:
        if version == SYSTEM:
            continue
        pin = PINS.get(version)
        if pin is None:
            raise ConfigError(f"build.interpreters names CPython {one_line(version, 20)}, "
                              "which the factory has no source pin for",
                              f"known: {', '.join([SYSTEM, *PINS])}")
        chosen.append(pin)
    return chosen


def flags_sha256() -> str:
    """The digest of how an interpreter is built (script, configure flags, environment)."""
    return hashlib.sha256(canonical_json(
        {"script": _SCRIPT, "configure": list(CONFIGURE), "environment": ENVIRONMENT,
         "modules": list(MODULES)}).encode()).hexdigest()


def directory(settings: Settings, pin: InterpreterPin, source_sha256: str,
              image_id: str) -> Path:
    image = image_id.removeprefix("sha256:")[:16]
    return (settings.interpreters_home
            / f"{pin.tag}-{source_sha256[:16]}-{image}-{flags_sha256()[:16]}")


# -- the source and its signature ---------------------------------------------------

def fetch_source(settings: Settings, pin: InterpreterPin,
                 **fetch: Any) -> tuple[SourceTarball, dict[str, Any]]:
    """The verified tarball of ``pin`` and what its upstream signature check found."""
    tarball = debian_source.fetch_orig(settings, pin.source, signature=True, **fetch)
    if tarball.sha256 != pin.orig_sha256:
        raise SourceUnavailable(f"Debian's signed index names {tarball.filename} with sha256 "
                                f"{tarball.sha256}, not the pinned {pin.orig_sha256}",
                                "the pin table and the archive disagree; check the pin")
    return tarball, check_signature(tarball, pin)


def check_signature(tarball: SourceTarball, pin: InterpreterPin) -> dict[str, Any]:
    """Check upstream's OpenPGP signature of ``tarball`` against the pinned key.

    Returns what a record says: ``{"kind": "openpgp", "fingerprint": ..., "signed": ...}``,
    or ``{"kind": "none", ...}`` for a release line upstream does not sign with OpenPGP.
    SignatureRefused when a pinned key's signature is missing or not good."""
    if pin.key is None:
        if tarball.signature is not None:
            raise SignatureRefused(f"{tarball.filename} comes with an OpenPGP signature, but "
                                   f"no key is pinned for CPython {pin.version}",
                                   "pin the release manager's key for this line")
        return {"kind": "none", "why": f"upstream signs CPython {pin.version} with Sigstore "
                "only; Debian's signed chain is the only check here"}
    if tarball.signature is None:
        raise SignatureRefused(f"Debian's stanza of {pin.source.package} {pin.source.version} "
                               f"lists no upstream signature of {tarball.filename}, and "
                               f"CPython {pin.version} is signed by {pin.key.fingerprint}")
    signed = verify_detached(tarball.path, tarball.signature, pin.key)
    return {"kind": "openpgp", "fingerprint": pin.key.fingerprint, "signer": pin.key.owner,
            "signed": signed}


def dearmor(text: bytes) -> bytes:
    """The binary packets of an ASCII-armored OpenPGP block (RFC 4880, 6.2)."""
    lines = text.decode("ascii", "strict").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN PGP "))
        end = next(i for i, line in enumerate(lines) if line.startswith("-----END PGP "))
    except StopIteration:
        raise ValueError("not an ASCII-armored OpenPGP block") from None
    body = lines[start + 1:end]
    blank = body.index("") if "" in body else -1
    data = [line.strip() for line in body[blank + 1:] if line.strip()]
    if data and data[-1].startswith("="):
        data.pop()  # the CRC-24 line; gpgv checks the packets themselves
    try:
        return base64.b64decode("".join(data), validate=True)
    except binascii.Error:
        raise ValueError("the armored block is not base64") from None


def verify_detached(path: Path, signature: Path, key: ReleaseKey) -> str:
    """Check ``signature`` over ``path`` with gpgv and ``key`` alone; the date the
    signature says it was made (UTC, YYYY-MM-DD). SignatureRefused otherwise.

    Accepted: a good signature (GOODSIG) whose VALIDSIG names the pinned primary key, or
    one made by it before the shipped copy's expiry (EXPKEYSIG: the key has expired
    since). Refused: BADSIG, ERRSIG, REVKEYSIG, EXPSIG, a signature by any other key."""
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise SignatureRefused("cannot check upstream's signature: gpgv is not installed",
                               "apt-get install gpgv")
    try:
        keyring = dearmor(key.path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SignatureRefused(f"the pinned key {key.path.name} cannot be read: "
                               f"{one_line(str(exc), 120)}") from None
    with tempfile.TemporaryDirectory(prefix="factory-gpgv-") as home:
        ring = Path(home) / "key.gpg"
        ring.write_bytes(keyring)
        try:
            done = subprocess.run(
                [gpgv, "--status-fd", "1", "--keyring", str(ring), str(signature), str(path)],
                capture_output=True, timeout=GPGV_SECONDS, check=False,
                env={"GNUPGHOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                     "LC_ALL": "C"})
        except subprocess.TimeoutExpired:
            raise SignatureRefused(f"gpgv did not check {signature.name} within "
                                   f"{GPGV_SECONDS} s") from None
    return signature_date(done.stdout, done.returncode, key, path.name)


def signature_date(status: bytes, exit_code: int, key: ReleaseKey, what: str) -> str:
    """Judge gpgv's status lines (see verify_detached); the signature's date."""
    lines = [line.split() for line in status.decode("ascii", "replace").splitlines()
             if line.startswith("[GNUPG:] ")]
    words = {parts[1] for parts in lines if len(parts) > 1}
    bad = words & {"BADSIG", "ERRSIG", "REVKEYSIG", "EXPSIG", "NO_PUBKEY"}
    valid = [parts for parts in lines if len(parts) >= 12 and parts[1] == "VALIDSIG"]
    if bad or exit_code != 0 or not valid or not words & {"GOODSIG", "EXPKEYSIG"}:
        found = ", ".join(sorted(bad)) or "no good signature"
        raise SignatureRefused(f"upstream's signature of {what} does not check against "
                               f"{key.fingerprint} ({found})")
    if any(parts[-1] != key.fingerprint for parts in valid):
        raise SignatureRefused(f"{what} is signed by {one_line(valid[0][-1], 60)}, not by "
                               f"the pinned {key.fingerprint}")
    made = valid[0][4]
    if not made.isdigit():
        raise SignatureRefused(f"gpgv gave no signature time for {what}")
    if "EXPKEYSIG" in words and not (key.expires and int(made) < key.expires):
        raise SignatureRefused(f"{what} was signed after {key.fingerprint} expired")
    return time.strftime("%Y-%m-%d", time.gmtime(int(made)))


# -- the kept tree ------------------------------------------------------------------

def manifest(root: Path) -> list[list[str]]:
    """Every entry under ``root``, sorted: ``[path, "d", mode]``, ``[path, "f", mode,
    sha256]`` or ``[path, "l", target]``. Links are never followed and must stay in the
    tree; anything else (a FIFO, a device, a socket) and a tree past its bounds is refused
    (BuildError). Modes are octal strings."""
    entries: list[list[str]] = []
    total = 0
    top = os.path.realpath(root)
    stack = [("", 0)]
    while stack:
        rel, depth = stack.pop()
        with os.scandir(root / rel if rel else root) as found:
            children = sorted(found, key=lambda e: e.name)
        for entry in children:
            path = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            mode = f"{stat.S_IMODE(st.st_mode):o}"
            if len(entries) >= MAX_TREE_ENTRIES:
                raise BuildError(f"the interpreter tree {root} holds more than "
                                 f"{MAX_TREE_ENTRIES} entries")
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(root / path)
                inside = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
                # Alone, then through the tree's other links (``s -> ..`` makes
                # ``s/../x`` leave it although it reads as staying in).
                real = os.path.realpath(root / path)
                if (target.startswith("/") or inside == ".." or inside.startswith("../")
                        or (real != top and not real.startswith(top + os.sep))):
                    raise BuildError(f"the interpreter tree {root} has a link leaving it: "
                                     f"{one_line(path, 120)} -> {one_line(target, 120)}")
                entries.append([path, "l", target])
            elif stat.S_ISDIR(st.st_mode):
                if depth + 1 >= MAX_TREE_DEPTH:
                    raise BuildError(f"the interpreter tree {root} nests deeper than "
                                     f"{MAX_TREE_DEPTH} levels")
                entries.append([path, "d", mode])
                stack.append((path, depth + 1))
            elif stat.S_ISREG(st.st_mode):
                total += st.st_size
                if total > MAX_TREE_BYTES:
                    raise BuildError(f"the interpreter tree {root} holds more than "
                                     f"{MAX_TREE_BYTES} bytes")
                entries.append([path, "f", mode, _hash(root / path)])
            else:
                raise BuildError(f"the interpreter tree {root} holds a special file: "
                                 f"{one_line(path, 120)}")
    return sorted(entries)


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise BuildError(f"{path} is not a regular file")
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(entries: list[list[str]]) -> str:
    return hashlib.sha256(canonical_json(entries).encode()).hexdigest()


def _normalise(root: Path) -> None:
    """Make what the build user left the host's: owned by us, 0755 or 0644, no set-id bit,
    nothing writable by others (walked without following links)."""
    uid, gid = os.geteuid(), os.getegid()
    for top, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if uid == 0:
                os.lchown(path, uid, gid)
            if stat.S_ISLNK(st.st_mode):
                continue
            if stat.S_ISDIR(st.st_mode):
                os.chmod(path, 0o755)
            elif stat.S_ISREG(st.st_mode):
                os.chmod(path, 0o755 if st.st_mode & 0o111 else 0o644)
    if uid == 0:
        os.lchown(root, uid, gid)
    os.chmod(root, 0o755)


def private(where: Path) -> bool:
    """Whether only this user (or root) can change the kept ``where``: it, the directory
    holding it, and every entry of it owned by us or root, none writable by group or
    others (a link's own mode means nothing), the holder unless it is sticky. The
    manifest is checked before a tree is mounted, so whoever can write the tree could
    change it after the check; a tree another user could write is not used at all."""
    allowed = {os.geteuid(), 0}
    holder = os.lstat(where.parent)
    if holder.st_uid not in allowed or (holder.st_mode & 0o022
                                        and not holder.st_mode & stat.S_ISVTX):
        return False
    for top, dirs, files in os.walk(where, followlinks=False):
        for path in [top, *(os.path.join(top, name) for name in [*dirs, *files])]:
            st = os.lstat(path)
            if st.st_uid not in allowed or (not stat.S_ISLNK(st.st_mode)
                                            and st.st_mode & 0o022):
                return False
    return True


def _read_json(path: Path, limit: int) -> Any:
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > limit:
            return None
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None


def _kept(where: Path, pin: InterpreterPin, source: dict[str, Any],
          signature: dict[str, Any], image_id: str) -> Interpreter | None:
    """The tree kept at ``where`` when its note matches and every file still matches the
    manifest (hashed again now); None otherwise."""
    note = _read_json(where / "interpreter.json", MAX_NOTE)
    listed = _read_json(where / "manifest.json", MAX_MANIFEST)
    tree = where / "tree"
    if not isinstance(note, dict) or not isinstance(listed, list):
        return None
    digest, version = note.get("tree_sha256"), note.get("version")
    if (note.get("source") != source or note.get("image_id") != image_id
            or note.get("flags_sha256") != flags_sha256() or note.get("tag") != pin.tag
            or not isinstance(digest, str) or not isinstance(version, str)
            or version != source.get("upstream_version")
            or not version.startswith(f"{pin.version}.")
            or tree_sha256(listed) != digest or not tree.is_dir() or tree.is_symlink()):
        return None
    try:
        if not private(where) or manifest(tree) != listed:
            return None
    except (OSError, BuildError):
        return None
    seconds = note.get("seconds")
    return Interpreter(version, pin.tag, pin.prefix, tree, digest, dict(source),
                       signature, image_id, flags_sha256(),
                       float(seconds) if isinstance(seconds, int | float) else 0.0)


def usable(settings: Settings, image: ImageRef, pin: InterpreterPin) -> Interpreter | None:
    """The interpreter built for ``image`` from ``pin``'s tarball and kept, checked against
    its manifest, without the tarball itself: its note must name the pinned source (its
    sha256, package and version), and what upstream's signature check found then is what
    the note says. What a build uses (the tarball need not be kept in this state, so a
    machine's shared interpreters_dir serves every state); None when there is none."""
    note = _read_json(directory(settings, pin, pin.orig_sha256, image.id) / "interpreter.json",
                      MAX_NOTE)
    if not isinstance(note, dict) or not isinstance(note.get("source"), dict) \
            or not isinstance(note.get("signature"), dict):
        return None
    source = note["source"]
    if (source.get("sha256"), source.get("package"), source.get("version")) != (
            pin.orig_sha256, pin.source.package, pin.source.version):
        return None
    return _kept(directory(settings, pin, pin.orig_sha256, image.id), pin, source,
                 note["signature"], image.id)


def for_build(settings: Settings, image: ImageRef, pin: InterpreterPin) -> Interpreter:
    """The interpreter a build uses: kept (``usable``), or fetched, verified and built now
    (``for_image``). A build of the same interpreter for the same image by another run on
    this host (minutes, into a shared interpreters_dir) is waited for, then used."""
    found = usable(settings, image, pin)
    if found is None:
        with host_lock(f"interpreter-{pin.version}-{image.id.removeprefix('sha256:')[:32]}"):
            found = usable(settings, image, pin) or for_image(settings, image, pin)
    return found


def find_recorded(settings: Settings, described: dict[str, Any]) -> Interpreter:
    """The kept interpreter a build record describes (``Interpreter.describe()``): the same
    pin, image, flags and tree digest, checked against its manifest. BuildError when this
    machine does not keep it."""
    version = str(described.get("version", ""))
    line = ".".join(version.split(".")[:2])
    pin = PINS.get(line)
    image_id = str(described.get("image_id", ""))
    found = None
    if pin is not None and described.get("tag") == pin.tag and image_id.startswith("sha256:"):
        found = usable(settings, ImageRef(tag="", id=image_id, origin=""), pin)
    if (found is None or found.tree_sha256 != described.get("tree_sha256")
            or found.flags_sha256 != described.get("flags_sha256")
            or found.version != version):
        raise BuildError(f"the recorded interpreter CPython {one_line(version, 20)} (tree "
                         f"sha256 {one_line(str(described.get('tree_sha256')), 64)[:16]}…) is "
                         f"not kept in {settings.interpreters_home}",
                         "build it again on the recorded image (`factory builder bootstrap "
                         "--interpreters`) or point build.interpreters_dir at where it is kept")
    return found


def system_description(image: ImageRef) -> dict[str, Any]:
    """What a record says of the builder image's own python3 (Debian bookworm's 3.11)."""
    package = next((p for p in image.packages if split_package(p)[0] == f"python{SYSTEM}"), "")
    debian_version = split_package(package)[1] or ""
    upstream = debian_version.partition(":")[2] or debian_version
    return {"version": upstream.rsplit("-", 1)[0] or SYSTEM, "tag": SYSTEM_TAG,
            "prefix": "/usr", "executable": "python3",
            "debian_package": package or f"python{SYSTEM}",
            "origin": "the builder image's Debian python3 (its dpkg list names the package)"}


def kept(settings: Settings, image: ImageRef, pin: InterpreterPin) -> Interpreter | None:
    """The interpreter already built for ``image``, checked; None (nothing is fetched or
    built) when there is none or it no longer matches its manifest."""
    tarball = debian_source.kept_orig(settings, pin.source, signature=True)
    if tarball is None or tarball.sha256 != pin.orig_sha256:
        return None
    signature = check_signature(tarball, pin)
    return _kept(directory(settings, pin, tarball.sha256, image.id), pin, tarball.describe(),
                 signature, image.id)


def for_image(settings: Settings, image: ImageRef, pin: InterpreterPin) -> Interpreter:
    """The interpreter ``pin`` for ``image``: kept and checked, or built now (the source
    fetched and verified first when it is not kept). SourceUnavailable (or
    SignatureRefused) or BuildError when it cannot be had."""
    tarball, signature = fetch_source(settings, pin)
    where = directory(settings, pin, tarball.sha256, image.id)
    found = _kept(where, pin, tarball.describe(), signature, image.id)
    if found is not None:
        return found
    return _build(settings, image, pin, tarball, signature, where)


def _why(result: Any, settings: Settings) -> str:
    """Why the build container ended badly, in words (the log's last line otherwise)."""
    if result.output_refused is not None:
        return f"killed: {result.output_refused.problem}"
    if result.oom_killed:
        return f"killed: out of memory (limit {BUILD_MEMORY})"
    if result.timed_out:
        return f"killed after the {BUILD_SECONDS} s limit"
    if result.pids_limit_hit:
        return f"it hit the limit of {settings.build_pids} processes"
    tail = result.log.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return f"exit {result.exit_code}: {one_line(tail[0], 200)}"


def unpack(packed: Path, target: Path) -> None:
    """The build's tar of its prefix, unpacked into ``target`` (made here) with the checks
    an sdist gets (``factory.upstream.archive.unpack_tar``: no absolute names or "..",
    nothing under a link, hard links only to regular files, no devices, FIFOs or set-id
    bits, links that stay inside even through other links), within the tree's bounds,
    counted before anything is written. Not tarfile's "data" filter alone: before Python
    3.11.13 a chain of links past PATH_MAX slipped by it and wrote outside ``target``."""
    limits = archive.Limits(max_members=MAX_TREE_ENTRIES, max_member_bytes=MAX_TREE_BYTES,
                            max_total_bytes=MAX_TREE_BYTES, max_depth=MAX_TREE_DEPTH)
    try:
        archive.unpack_tar(packed, target, limits)
    except (UnsafeArchiveError, OSError) as exc:
        message = exc.message if isinstance(exc, UnsafeArchiveError) else str(exc)
        raise BuildError(f"the interpreter's tar is refused: {one_line(message, 240)}") from None


def _check_image(image: ImageRef) -> None:
    held = {split_package(p)[0] for p in image.packages}
    missing = [p for p in BUILD_PACKAGES if held and p not in held]
    if missing:
        raise BuildError(f"the image {image.tag} lacks what CPython's build needs: "
                         f"{', '.join(missing)}",
                         "build interpreters in bootstrap_image(settings, BUILD_PACKAGES) "
                         "(`factory builder bootstrap --interpreters` does)")


def _build(settings: Settings, image: ImageRef, pin: InterpreterPin, tarball: SourceTarball,
           signature: dict[str, Any], where: Path) -> Interpreter:
    _check_image(image)
    what = f"CPython {tarball.upstream_version}"
    jobs = str(max(1, int(settings.build_cpus)))
    with work_dir(settings.builds_dir, f"build-{pin.tag}-", owner_id()) as work:
        source = tarball.stage(work)
        prepare_output(work / "out")
        started = time.monotonic()
        result = run_container(
            replace(settings, build_memory=BUILD_MEMORY), image.id,
            ["sh", "-c", _SCRIPT, f"{pin.tag}-build", tarball.filename, pin.prefix, jobs,
             pin.version, *CONFIGURE],
            [Bind(source, "/source"), Bind(work / "out", "/out", read_only=False)],
            {**ENVIRONMENT, "MODULES": ", ".join(MODULES)}, BUILD_SECONDS,
            {"org.factory.component": f"cpython=={tarball.upstream_version}"})
        seconds = round(time.monotonic() - started, 1)
        log = settings.logs_dir / f"{pin.tag}-{tarball.upstream_version}-{image.id[7:19]}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(result.log)
        if result.exit_code != 0:
            raise BuildError(f"{what} did not build: {_why(result, settings)} (log: {log})")
        out = Confined(work / "out", what, f" (log: {log})")
        said = (out.read("version", 256) or b"").decode("ascii", "replace").strip()
        if said != tarball.upstream_version:
            raise out.refuse(f"the interpreter built says it is {one_line(repr(said), 80)}")
        packed = work / "out" / "tree.tar"
        if packed.is_symlink() or not packed.is_file():
            raise out.refuse("the build left no tree.tar")
        where.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=where.parent))
        try:
            unpack(packed, staging / "tree")
            _normalise(staging / "tree")
            listed = manifest(staging / "tree")
            digest = tree_sha256(listed)
            write_json(staging / "manifest.json", listed)
            write_json(staging / "interpreter.json",
                       {"version": said, "tag": pin.tag, "prefix": pin.prefix,
                        "source": tarball.describe(), "signature": signature,
                        "image_id": image.id, "flags_sha256": flags_sha256(),
                        "tree_sha256": digest, "seconds": seconds})
            staging.chmod(0o755)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    shutil.rmtree(where, ignore_errors=True)  # a damaged one (kept ones were checked)
    try:
        staging.rename(where)
    except OSError:  # another factory process on this state dir placed it first
        shutil.rmtree(staging, ignore_errors=True)
        placed = _kept(where, pin, tarball.describe(), signature, image.id)
        if placed is None:
            raise
        return placed
    return Interpreter(said, pin.tag, pin.prefix, where / "tree", digest, tarball.describe(),
                       signature, image.id, flags_sha256(), seconds, fresh=True)
