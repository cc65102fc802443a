"""Coverage-guided fuzzing of safe unpacking (atheris / libFuzzer); not part of the suite.

Property: ``factory.upstream.archive.extract`` either refuses an archive with
UnsafeArchiveError or unpacks it so that every path, links resolved, stays
inside the destination; no other exception, nothing written outside.

    .venv/bin/pip install atheris==3.0.0
    .venv/bin/python fuzz/fuzz_extract.py -max_total_time=300 fuzz/corpus/extract

The first run writes a small seed corpus (a tar.gz, a plain tar, a zip) into
the corpus directory if it is empty. A crash leaves ``crash-<sha1>`` in the
current directory; rerun the script with that file as its only argument.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from factory.errors import UnsafeArchiveError
    from factory.upstream.archive import Limits, extract

LIMITS = Limits(max_members=200, max_member_bytes=1 << 20, max_total_bytes=4 << 20)
KINDS = (".tar.gz", ".tar", ".zip")


def seeds(corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    for kind in KINDS:
        buffer = io.BytesIO()
        if kind == ".zip":
            with zipfile.ZipFile(buffer, "w") as zf:
                zf.writestr("pkg-1/a.py", "x = 1\n")
                zf.writestr("pkg-1/sub/b.txt", "b")
        else:
            with tarfile.open(fileobj=buffer, mode="w:gz" if kind == ".tar.gz" else "w") as tar:
                for name, data in (("pkg-1/a.py", b"x = 1\n"), ("pkg-1/sub/b.txt", b"b")):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                link = tarfile.TarInfo("pkg-1/link")
                link.type, link.linkname = tarfile.SYMTYPE, "a.py"
                tar.addfile(link)
        (corpus / f"seed{kind}").write_bytes(bytes([KINDS.index(kind)]) + buffer.getvalue())


def one_input(data: bytes) -> None:
    if not data:
        return
    kind = KINDS[data[0] % len(KINDS)]
    work = Path(tempfile.mkdtemp(prefix="fuzz-extract-"))
    try:
        archive = work / f"pkg-1{kind}"
        archive.write_bytes(data[1:])
        dest = work / "cache" / "out"
        try:
            extract(archive, dest, LIMITS)
        except UnsafeArchiveError:
            assert not dest.exists(), "a refused archive left files behind"
            return
        top = os.path.realpath(dest)
        for path in dest.rglob("*"):
            real = os.path.realpath(path)
            assert real == top or real.startswith(top + os.sep), f"{path} escapes to {real}"
        leftovers = sorted(p.name for p in work.iterdir())
        assert leftovers == ["cache", archive.name], leftovers
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if corpus and Path(corpus[0]).is_dir():
        seeds(Path(corpus[0]))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
