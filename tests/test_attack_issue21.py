"""Attack pass on issue 21 (by someone who did not write the code): the CPython bootstrap
(factory/build/debian_source.py, interpreters.py) and the grafted-library path
(patchelf.py, repair.py, grafted.py).

The attacker is a hostile Debian mirror, a hostile build (its tree.tar, its wheel's
``.libs``, its repair report), a hostile upstream sdist, or another user who can write
the kept cache (``[build] interpreters_dir`` on a shared machine). Each case is a break,
fixed in the module that owns it (the docstring says what broke), or a case that held.
No docker, no CPython build: fakes, hand-made tars and ELF files, the system's gpgv.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import re
import struct
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

from factory.build import debian, debian_source, interpreters, patchelf, repair
from factory.build.debian_source import SourcePin, SourceTarball, SourceUnavailable
from factory.build.image import ImageRef
from factory.build.interpreters import InterpreterPin
from factory.errors import BuildError, FactoryError, UnsafeArchiveError
from factory.upstream import archive
from tests import factories
from tests.test_interpreters import IMAGE, PIN313, TARBALL, built  # noqa: F401 (fixture)

# -- a tar that walks out through a chain of links past PATH_MAX (CVE-2025-4517) ---------

_COMPONENT = "d" * 247
_STEPS = "abcdefghijklmnop"


def _escaping_tar(path: Path, top: str = "", ups: int = 1, compress: str = "") -> str:
    """A tar whose last member is written ``ups`` directories above the directory it is
    unpacked into, on a Python whose "data" filter judges by os.path.realpath (before
    3.11.13): symbolic links ``a``..``p`` each to a 247-character directory make the
    resolved path longer than PATH_MAX, so realpath stops resolving and the chain looks
    inside. Returns the escaping file's name."""
    prefix = f"{top}/" if top else ""
    with tarfile.open(path, f"w:{compress}") as tar:
        if top:
            info = tarfile.TarInfo(f"{top}/PKG-INFO")
            data = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n"
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        where = prefix
        for step in _STEPS:
            folder = tarfile.TarInfo(f"{where}{_COMPONENT}")
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
            link = tarfile.TarInfo(f"{where}{step}")
            link.type, link.linkname = tarfile.SYMTYPE, _COMPONENT
            tar.addfile(link)
            where = f"{where}{_COMPONENT}/"
        deep = "/".join(_STEPS) + "/" + "l" * 254
        long_link = tarfile.TarInfo(f"{prefix}{deep}")
        long_link.type, long_link.linkname = tarfile.SYMTYPE, "../" * len(_STEPS)
        tar.addfile(long_link)
        escape = tarfile.TarInfo(f"{prefix}escape")
        escape.type = tarfile.SYMTYPE
        escape.linkname = deep + "/" + "../" * (ups + (1 if top else 0))
        tar.addfile(escape)
        data = b"written outside the tree\n"
        outside = tarfile.TarInfo(f"{prefix}escape/outside-21.txt")
        outside.size = len(data)
        tar.addfile(outside, io.BytesIO(data))
    return "outside-21.txt"


def test_an_sdist_cannot_write_outside_its_tree_through_links_past_path_max(
        tmp_path: Path) -> None:
    """Broke: factory/upstream/archive.py checked each link alone and trusted tarfile's
    "data" filter for the rest; on this Python (3.11.7) a chain of links past PATH_MAX
    slipped by it, and a hostile sdist wrote a file two directories above its staging
    directory (anywhere, with more "../"; as root on this machine), before the final
    link check ran (which then raised a bare OSError, not a refusal).
    Held (fixed): no member may lie under a link or a file of the archive, checked on the
    names before anything is written."""
    sdist = tmp_path / "pkg-1.0.tar.gz"
    name = _escaping_tar(sdist, top="pkg-1.0", ups=2, compress="gz")
    (tmp_path / "work").mkdir()
    with pytest.raises(UnsafeArchiveError, match="lies under the link 'pkg-1.0/a'"):
        archive.extract(sdist, tmp_path / "work" / "unpacked")
    assert not list(tmp_path.rglob(name)), "nothing was written anywhere"


def test_a_build_tree_tar_cannot_write_outside_the_kept_tree(tmp_path: Path) -> None:
    """Broke: interpreters.unpack (the host unpacking the CPython build's tree.tar, as
    root) used tarfile's "data" filter alone: the same chain wrote outside the staging
    directory. Held (fixed): the tree is unpacked with the sdist's checks
    (archive.unpack_tar), refused as a BuildError in one line."""
    packed = tmp_path / "tree.tar"
    name = _escaping_tar(packed, ups=1)
    (tmp_path / "staging").mkdir()
    with pytest.raises(BuildError, match="tar is refused: .*lies under the link") as caught:
        interpreters.unpack(packed, tmp_path / "staging" / "tree")
    assert "\n" not in caught.value.message
    assert not list(tmp_path.rglob(name))


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w") as tar:
        for member in members:
            if member.isreg():
                tar.addfile(member, io.BytesIO(b"x" * member.size))
            else:
                tar.addfile(member)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "",
            size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = size if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(("members", "why"), [
    # os.link follows a symbolic link: a hard link to one links whatever it points at
    ([_member("t/a", tarfile.SYMTYPE, "b"), _member("t/b"),
      _member("t/h", tarfile.LNKTYPE, "t/a")], "names no regular file"),
    # a directory member over a link: tarfile would chmod the link's target
    ([_member("t/s", tarfile.SYMTYPE, "."), _member("t/s", tarfile.DIRTYPE)], "twice"),
    # one file under two spellings: the later one is written through the former
    ([_member("t/x", tarfile.SYMTYPE, "y"), _member("t//x")], "twice"),
    ([_member("t/f"), _member("t/f/g")], "lies under the file 't/f'"),
])
def test_a_tar_layout_that_writes_through_a_link_is_refused(
        tmp_path: Path, members: list[tarfile.TarInfo], why: str) -> None:
    """Broke (the hard link and the second spelling passed the per-member checks; only
    tarfile's realpath-based filter stood behind them). Held (fixed): refused on names."""
    packed = _tar(tmp_path / "t.tar", members)
    with pytest.raises(UnsafeArchiveError, match=why):
        archive.unpack_tar(packed, tmp_path / "out", archive.DEFAULT_LIMITS)


# -- the kept interpreter tree ---------------------------------------------------------

def test_a_kept_link_that_leaves_through_another_link_is_refused(tmp_path: Path) -> None:
    """Broke: manifest() judged each link's target alone (``s -> ..`` from ``a`` and
    ``a/out -> s/../..`` both read as staying in), so a kept tree held a link to the
    directory above it. Held (fixed): each link's real path must also be in the tree."""
    (tmp_path / "tree/a").mkdir(parents=True)
    (tmp_path / "tree/a/s").symlink_to("..")
    assert interpreters.manifest(tmp_path / "tree")  # alone, it stays in
    (tmp_path / "tree/a/out").symlink_to("s/../..")
    with pytest.raises(BuildError, match="link leaving it: a/out"):
        interpreters.manifest(tmp_path / "tree")


def _kept_dir(setup: dict[str, Any]) -> Path:
    settings, pin = setup["settings"], setup["pin"]
    return interpreters.for_image(settings, IMAGE, pin).tree.parent


def test_an_interpreter_json_that_lies_about_its_version_is_not_used(
        built: dict[str, Any]) -> None:  # noqa: F811 (the fixture)
    """Broke: the note's version was taken as said (only its type checked), so a note
    saying 3.13.9 over the 3.13.5 tree made every record and SBOM say 3.13.9. Held
    (fixed): the version must be the verified tarball's upstream version. The note's
    prefix and tag were never believed (held): the pin gives them."""
    where = _kept_dir(built)
    note = json.loads((where / "interpreter.json").read_text())
    for lie in ({"version": "3.13.9"}, {"version": "3.14.0"}, {"tag": "cp314"}):
        (where / "interpreter.json").write_text(json.dumps({**note, **lie}))
        assert interpreters.kept(built["settings"], IMAGE, built["pin"]) is None
    (where / "interpreter.json").write_text(json.dumps({**note, "prefix": "/usr"}))
    found = interpreters.kept(built["settings"], IMAGE, built["pin"])
    assert found is not None and found.prefix == "/opt/python/cp313-cp313"


def test_a_tree_whose_manifest_was_rewritten_to_match_is_used(
        built: dict[str, Any]) -> None:  # noqa: F811 (the fixture)
    """Left open, on purpose: the manifest and its digest are kept beside the tree, so
    whoever can write as this user can change a file and both notes consistently; the
    tree is then used (and the records name its new digest). The manifest detects damage,
    not a writer with our uid, exactly as for the rest of the state directory."""
    where = _kept_dir(built)
    tree = where / "tree"
    (tree / "lib/python3.13/os.py").write_text("import evil\n")
    listed = interpreters.manifest(tree)
    note = json.loads((where / "interpreter.json").read_text())
    (where / "manifest.json").write_text(json.dumps(listed))
    (where / "interpreter.json").write_text(json.dumps(
        {**note, "tree_sha256": interpreters.tree_sha256(listed)}))
    assert interpreters.kept(built["settings"], IMAGE, built["pin"]) is not None


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize("change", ["owner", "group-writable", "holder-writable", "note"])
def test_a_kept_tree_another_user_can_write_is_not_used(
        built: dict[str, Any], change: str) -> None:  # noqa: F811 (the fixture)
    """Broke: a kept tree (or the directory holding it, e.g. a shared interpreters_dir)
    another user could write was used once its manifest matched; that user could change
    a file between the check and the build's mount, or pre-place a whole tree with a
    consistent manifest. Held (fixed): every entry and the holder owned by us or root,
    none writable by group or others (a sticky holder such as /tmp is allowed); else the
    tree is not used, and building it again cannot replace another user's entry either
    (the build then fails: a denial of service, not a substitution)."""
    where = _kept_dir(built)
    os_py = where / "tree/lib/python3.13/os.py"
    if change == "owner":
        os.lchown(os_py, 12345, 12345)
    elif change == "group-writable":
        (where / "tree/lib").chmod(0o775)
    elif change == "holder-writable":
        where.parent.chmod(0o777)
    else:
        os.lchown(where / "interpreter.json", 12345, 12345)
    assert interpreters.kept(built["settings"], IMAGE, built["pin"]) is None
    if change == "holder-writable":
        where.parent.chmod(0o1777)  # sticky: others cannot rename or remove our entries
        assert interpreters.kept(built["settings"], IMAGE, built["pin"]) is not None


# -- the source chain -------------------------------------------------------------------

def test_a_kept_tarball_swapped_after_its_check_is_not_staged(tmp_path: Path) -> None:
    """Broke: SourceTarball.stage copied the kept file that kept_orig had hashed earlier;
    a file swapped in between was what the build compiled. Held (fixed): the copy the
    build mounts is hashed again."""
    kept = tmp_path / "python3.13_3.13.5.orig.tar.xz"
    kept.write_bytes(TARBALL)
    tarball = SourceTarball(kept, kept.name, hashlib.sha256(TARBALL).hexdigest(),
                            len(TARBALL), "python3.13", PIN313.version, "trixie", "3.13.5")
    (tmp_path / "a").mkdir()
    assert (tarball.stage(tmp_path / "a") / kept.name).read_bytes() == TARBALL
    kept.write_bytes(b"swapped" + TARBALL[7:])
    (tmp_path / "b").mkdir()
    with pytest.raises(SourceUnavailable, match="changed after it was checked"):
        tarball.stage(tmp_path / "b")


def test_patchelf_is_pinned_to_its_tarball_like_the_interpreters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broke: patchelf's pin was a Debian version only: a signed index that named other
    bytes for it (replayed, another suite's, or a lie Debian signed) was built and
    grafted into every repaired wheel. Held (fixed): the tarball's sha256 is pinned, as
    CPython's are; a kept tarball of other bytes is not used either."""
    other = tmp_path / "patchelf_0.18.0.orig.tar.gz"
    other.write_bytes(b"not the release")
    tarball = SourceTarball(other, other.name, hashlib.sha256(b"not the release").hexdigest(),
                            15, "patchelf", patchelf.PIN.version, "trixie", "0.18.0")
    monkeypatch.setattr(debian_source, "fetch_orig", lambda s, p, **k: tarball)
    monkeypatch.setattr(debian_source, "kept_orig", lambda s, p, **k: tarball)
    settings = factories.settings(tmp_path)
    with pytest.raises(SourceUnavailable, match="not the pinned 1451d01e"):
        patchelf.for_image(settings, IMAGE)
    assert patchelf.kept(settings, IMAGE) is None


def test_an_interpreter_tarball_other_than_the_pinned_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: a signed chain naming other bytes for the pinned version (a replayed or
    expired InRelease is not refused as such: Debian's main archive sets no
    Valid-Until, and every file is pinned) does not reach a build."""
    other = tmp_path / "python3.13_3.13.5.orig.tar.xz"
    other.write_bytes(b"other")
    tarball = SourceTarball(other, other.name, hashlib.sha256(b"other").hexdigest(), 5,
                            "python3.13", PIN313.version, "trixie", "3.13.5")
    monkeypatch.setattr(debian_source, "fetch_orig", lambda s, p, **k: tarball)
    pin = interpreters.PINS["3.13"]
    with pytest.raises(SourceUnavailable, match="not the pinned"):
        interpreters.fetch_source(factories.settings(tmp_path), pin)


def test_a_sources_index_that_inflates_past_its_bound_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: Sources.xz is fetched only at the size and sha256 the signed Release names,
    and inflated with a bound (a bomb Debian signed is still refused)."""
    bomb = lzma.compress(b"\n" * (1 << 20), format=lzma.FORMAT_XZ)
    target = debian_source.directory(factories.settings(tmp_path)) / "trixie" / "Sources.xz"
    target.parent.mkdir(parents=True)
    target.write_bytes(bomb)
    monkeypatch.setattr(debian_source, "MAX_SOURCES_INFLATED", 1 << 16)
    with pytest.raises(SourceUnavailable, match="decompresses to more than"):
        debian_source._sources(factories.settings(tmp_path), "http://127.0.0.1:9", "trixie",
                               hashlib.sha256(bomb).hexdigest(), len(bomb))


def test_a_stanza_cannot_name_a_file_outside_the_pool() -> None:
    """Held: Directory and every file name are checked before anything is fetched."""
    for folder, name in (("pool/main/p/python3.13/../../../../tmp", "x.orig.tar.xz"),
                         ("pool/main/p/python3.13", "../python3.13_3.13.5.orig.tar.xz"),
                         ("pool/main/p/python3.13", "python3.13_3.13.5.orig.tar.xz/..")):
        index = (f"Package: python3.13\nVersion: 3.13.5-2+deb13u5\nDirectory: {folder}\n"
                 f"Checksums-Sha256:\n {'a' * 64} 10 {name}\n").encode()
        with pytest.raises(SourceUnavailable, match="refused"):
            debian_source.find_orig(index, SourcePin("python3.13", "3.13.5-2+deb13u5",
                                                     "trixie"))
    for version in ("3.13.5/../../x", "3.13.5\nPackage: x", "..3.13"):
        with pytest.raises(SourceUnavailable):  # a pin's version names the kept note
            SourcePin("python3.13", version, "trixie").check()


_REAL = Path("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease")
_OTHER = Path("/var/lib/apt/lists/"
              "deb.debian.org_debian-security_dists_bookworm-security_InRelease")


@pytest.mark.skipif(not (_REAL.is_file() and _OTHER.is_file() and debian.KEYRING.is_file()),
                     reason="needs apt's lists of bookworm and the Debian archive keyring")
def test_text_around_or_between_signed_inreleases_is_never_read() -> None:
    """Held: only the text gpgv says Debian signed is returned, whatever the mirror puts
    before, after or between signed messages; a signature moved onto other text fails."""
    real, other = _REAL.read_bytes(), _OTHER.read_bytes()
    forged = b"Codename: trixie\nSHA256:\n " + b"f" * 64 + b" 10 main/source/Sources.xz\n"
    armored = (b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n" + forged
               + other[other.index(b"-----BEGIN PGP SIGNATURE"):])
    for data in (forged + real, real + forged, real + armored, real + other):
        assert b"f" * 64 not in debian.verify_release(data)
    for data in (armored + real,
                 real[:real.index(b"\n\n") + 2] + forged
                 + real[real.index(b"-----BEGIN PGP SIGNATURE"):]):
        with pytest.raises(debian.LookupUnavailable, match="no good signature"):
            debian.verify_release(data)


# -- upstream's OpenPGP signature: gpgv's status judged strictly ----------------------

FPR = interpreters.WOUTERS.fingerprint


def _validsig(fpr: str = FPR, when: str = "1749600000") -> str:
    return f"[GNUPG:] VALIDSIG {fpr} 2025-06-11 {when} 0 4 0 1 10 00 {fpr}\n"


@pytest.mark.parametrize("status", [
    # a good signature by the key, and another by a key the keyring lacks
    f"[GNUPG:] GOODSIG A821E680E5FA6305 tw\n{_validsig()}[GNUPG:] ERRSIG 1 1 1 1 9 1\n",
    f"[GNUPG:] GOODSIG A821E680E5FA6305 tw\n{_validsig()}[GNUPG:] NO_PUBKEY 0\n",
    # two valid signatures, one of them another primary key's
    f"[GNUPG:] GOODSIG A821E680E5FA6305 tw\n{_validsig()}{_validsig('B' * 40)}",
    # a signature time that is not a number
    f"[GNUPG:] GOODSIG A821E680E5FA6305 tw\n{_validsig(when='20250611T000000')}",
    # a status word only at the start of a line counts: text after it is not a status
    f"[GNUPG:] NEWSIG x [GNUPG:] GOODSIG A821E680E5FA6305 tw\n{_validsig()}",
    # an expired key's signature made after the shipped copy's expiry
    f"[GNUPG:] EXPKEYSIG A821E680E5FA6305 tw\n{_validsig(when='1900000000')}",
])
def test_gpgv_status_is_judged_strictly(status: str) -> None:
    """Held: anything but one good signature by the pinned primary key is refused."""
    with pytest.raises(interpreters.SignatureRefused):
        interpreters.signature_date(status.encode(), 0, interpreters.WOUTERS, "t")
    good = f"[GNUPG:] GOODSIG A821E680E5FA6305 tw\n{_validsig()}".encode()
    assert interpreters.signature_date(good, 0, interpreters.WOUTERS, "t") == "2025-06-11"


# -- the grafted libraries ----------------------------------------------------------------

def _wheel(tmp_path: Path, names: list[str]) -> Path:
    wheel = tmp_path / "ext-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("ext/_speedups.cpython-311-x86_64-linux-gnu.so", b"\x7fELF ext")
        for name in names:
            zf.writestr(name, b"\x7fELF lib")
    return wheel


@pytest.mark.parametrize("name", ["ext.libs/libevil.so", "ext.libs/evil",
                                  "ext.libs/sub/libffi-0123abcd.so.8",
                                  "ext.libs/libffi-0123ABCD.so.8"])
def test_a_libs_file_the_grafted_list_would_not_name_is_refused(
        tmp_path: Path, name: str) -> None:
    """Broke: repair.grafted listed only the files named like auditwheel's grafts and
    skipped the rest of ``<pkg>.libs/``: a build could put a library there (loaded
    through the extension's DT_NEEDED and RPATH) that the record never named, and the
    SBOM lists only files it recognises as shared libraries ("evil" has no .so). Held
    (fixed): a repaired wheel whose .libs hold anything else is refused."""
    wheel = _wheel(tmp_path, ["ext.libs/libffi-0123abcd.so.8.1.2", name])
    with pytest.raises(BuildError, match="not named as a grafted library"):
        repair.grafted(wheel, ImageRef("t", "sha256:" + "a" * 64, "debootstrap"))


def test_a_grafted_name_maps_only_to_a_package_the_image_holds(tmp_path: Path) -> None:
    """Held: a name the build chose names a Debian package only when the image holds one
    by the naming rule (or the Contents index), and then only as inferred until the
    host compares the bytes (grafted.verify; a library shown to differ loses the
    identity: test_grafted_identity)."""
    wheel = _wheel(tmp_path, ["ext.libs/libffi-0123abcd.so.8.1.2",
                              "ext.libs/libnotinimage-0123abcd.so.1"])
    image = ImageRef("t", "sha256:" + "a" * 64, "debootstrap",
                     packages=["libffi8=3.4.4-1"], architectures={"libffi8": "amd64"})
    found = {e["library"]: e for e in repair.grafted(wheel, image)}
    assert found["libffi.so.8.1.2"]["package"] == "libffi8"
    assert "package" not in found["libnotinimage.so.1"]


def test_a_repair_report_naming_another_patchelf_is_refused(tmp_path: Path) -> None:
    """Held: the report's patchelf must be the one the host built and mounted."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "repair.json").write_text(json.dumps(
        {"action": "repaired", "env": [], "policy": "manylinux_2_17_x86_64",
         "patchelf": "patchelf 0.14.3", "patcher": "patchelf"}))
    tool = patchelf.Patchelf(tmp_path, "0.18.0", "e" * 64, {}, "sha256:" + "a" * 64)
    settings = factories.settings(tmp_path)
    with pytest.raises(BuildError, match="host mounted patchelf 0.18.0"):
        repair.outcome(settings, out, [], "", "ext 1.0",
                       wheel="ext-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", patchelf=tool)


def test_a_pin_the_factory_does_not_carry_is_a_config_error() -> None:
    """Held: ``[build] interpreters`` names versions, never a source: 3.12 or 3.14t have
    no pin, so nothing the site writes there fetches or builds from elsewhere."""
    assert set(interpreters.PINS) == {"3.13", "3.14"}
    assert all(isinstance(p, InterpreterPin) and len(p.orig_sha256) == 64
               for p in interpreters.PINS.values())


def _dynamic(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(file offset, [(tag, value)]) of the PT_DYNAMIC array of an ELF64 little-endian."""
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phnum, = struct.unpack_from("<H", data, 0x38)
    for i in range(phnum):
        kind, _, offset, _, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data,
                                                                 phoff + i * 56)
        if kind == 2:
            return offset, [struct.unpack_from("<qQ", data, offset + at)
                            for at in range(0, filesz, 16)]
    raise AssertionError("no PT_DYNAMIC")


def _set_entry(data: bytes, tag: int, new_tag: int, value: Any) -> bytes:
    """``data`` with its first dynamic entry of ``tag`` made (new_tag, value(old))."""
    offset, entries = _dynamic(data)
    index = next(i for i, (t, _) in enumerate(entries) if t == tag)
    out = bytearray(data)
    struct.pack_into("<qQ", out, offset + index * 16, new_tag, value(entries[index][1]))
    return bytes(out)


def _soname_offset(data: bytes) -> int:
    return next(v for t, v in _dynamic(data)[1] if t == 14)


@pytest.mark.parametrize(("change", "why"), [
    # the initialiser pointed elsewhere in the (unchanged) code: other code runs at load
    (lambda d: _set_entry(d, 12, 12, lambda v: v + 16), "dynamic entries differ"),
    # one more library loaded with it (what `patchelf --add-needed` writes)
    (lambda d: _set_entry(d, 0x6FFFFFF9 if 0x6FFFFFF9 in dict(_dynamic(d)[1]) else 0x6FFFFEF5,
                          1, lambda v: _soname_offset(d)), "dynamic entries differ"),
    # its dependencies searched for in a directory other users can write
    (lambda d: _set_entry(d, 14, 15, lambda v: v), "leaves \\$ORIGIN"),
])
def test_a_graft_whose_dynamic_entries_the_build_changed_is_not_verified(
        tmp_path: Path, change: Any, why: str) -> None:
    """Broke: grafted.verify compared every section but .dynamic and .dynstr (what
    patchelf rewrites) and nothing of what the loader reads from them, so a graft whose
    DT_INIT pointed elsewhere, that loaded one more library, or whose rpath left
    $ORIGIN was "verified: bytes compared with the image's file" in the SBOM (confidence
    1). Held (fixed): the dynamic entries (read through PT_DYNAMIC, as the loader does)
    must be the image's file's but for SONAME, the string table's place and size and
    the grafted names of needed libraries; an rpath must stay under $ORIGIN; executable
    segments must be the same bytes. Such a graft is contradicted: no Debian identity."""
    from tests.test_grafted_identity import _elf, _patch_section, _verify

    original = _elf(tmp_path)
    assert "verified" in _verify(tmp_path, original, _patch_section(original, ".dynstr"))
    done = _verify(tmp_path, original, change(original))
    assert "verified" not in done and "package" not in done
    assert re.search(why, done["contradicted"]), done


def test_a_graft_with_more_executable_bytes_is_not_verified(tmp_path: Path) -> None:
    """Broke (as above): program headers were not compared, so code mapped executable
    outside every section (a segment grown over appended bytes) went unseen. Held
    (fixed): the executable PT_LOAD segments must be the image's file's, byte for byte."""
    from tests.test_grafted_identity import _elf, _verify

    original = _elf(tmp_path)
    phoff, = struct.unpack_from("<Q", original, 0x20)
    phnum, = struct.unpack_from("<H", original, 0x38)
    out = bytearray(original)
    for i in range(phnum):
        kind, flags, *_ = struct.unpack_from("<IIQQQQQQ", original, phoff + i * 56)
        if kind == 1 and flags & 1:
            filesz, = struct.unpack_from("<Q", original, phoff + i * 56 + 32)
            struct.pack_into("<QQ", out, phoff + i * 56 + 32, filesz + 16, filesz + 16)
    done = _verify(tmp_path, original, bytes(out))
    assert "executable segments" in done["contradicted"]


def test_a_graft_whose_segments_map_other_bytes_than_its_sections_is_not_verified(
        tmp_path: Path) -> None:
    """Broke (as above): the loader maps segments, not sections; a read-only segment
    whose file offset was moved maps other bytes of the file at the relocations' or the
    symbols' address while every section compares equal. Held (fixed): each allocated
    section a segment covers must be mapped from its own bytes, and no two segments
    may overlap."""
    from tests.test_grafted_identity import _elf, _verify

    original = _elf(tmp_path)
    phoff, = struct.unpack_from("<Q", original, 0x20)
    phnum, = struct.unpack_from("<H", original, 0x38)
    out = bytearray(original)
    first = next(i for i in range(phnum)
                 if struct.unpack_from("<II", original, phoff + i * 56) == (1, 4))  # LOAD, R
    offset, = struct.unpack_from("<Q", original, phoff + first * 56 + 8)
    struct.pack_into("<Q", out, phoff + first * 56 + 8, offset + 0x40)
    done = _verify(tmp_path, original, bytes(out))
    assert "maps other bytes" in done["contradicted"]


# -- the mirror's HTTP answers ------------------------------------------------------------

class _Redirecting:
    """A mirror that answers every request with a redirect to ``to`` + the path."""

    def __init__(self, to: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        target = to

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                self.send_response(302)
                self.send_header("Location", target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/debian"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_mirror_that_redirects_elsewhere_or_answers_without_end_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: InRelease is read from the mirror's own origin only (a redirect to another
    origin, even on loopback, is refused before it is followed) and at most 4 MiB of it
    is read, whatever the mirror sends; nothing is kept."""
    from tests.test_catalogue_debian import Mirror, trusted

    served = Mirror()
    redirecting = _Redirecting("http://127.0.0.1:9")
    try:
        monkeypatch.setenv(debian.SWITCH, "on")
        settings = factories.settings(tmp_path)
        with pytest.raises(FactoryError, match="not the index's origin|redirect") as caught:
            debian_source.fetch_orig(settings, patchelf.PIN, verify=trusted,
                                     mirror=redirecting.url)
        assert "\n" not in caught.value.message
        served.files["/debian/dists/trixie/InRelease"] = b"Codename: trixie\n" * (1 << 18) * 2
        with pytest.raises(SourceUnavailable, match="larger than"):
            debian_source.fetch_orig(settings, patchelf.PIN, verify=trusted, mirror=served.url)
        assert not list(debian_source.directory(settings).rglob("*.orig.tar.*"))
    finally:
        for server in (served.server, redirecting.server):
            server.shutdown()
            server.server_close()
