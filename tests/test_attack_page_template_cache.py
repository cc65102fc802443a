"""Attack on the index pages' compiled-template cache, by someone who did not write it;
the cache is gone since, and these cases keep it gone or safe.

The environment that renders the home and project pages (factory.index.human) kept
Jinja's compiled code in Jinja's default directory ($TMPDIR/_jinja2-cache-<uid>,
FileSystemBytecodeCache) under names keyed by the sha256 of human.py and Jinja's
version. The attack found thirteen breaks in four classes; the fix was to drop the cache
(compiling the four templates costs a process about 30 ms, once). Held to now: rendering
a page neither reads nor writes the temporary directory, so nothing planted there, by
this user or another, changes a page, fails a render or hangs one.

| class | case (then) | then |
|---|---|---|
| key | stale .pyc (same size, mtime) wrote its code under the new key | BROKE: page unescaped |
| corrupt entry | cut after the magic; garbage header; non-code | BROKE: every render failed |
| special entry | symlink loop; socket; FIFO | BROKE: render failed; FIFO blocked in open() |
| other user | their symlink as the cache dir | BROKE: root chmod-ed its target 0700 at import |
| other user | dir 0777 or swapped after import, their entry | BROKE: unescaped; their pickle ran |
| key | another Jinja version; a human.py without finalize | held |
| load | disk full; six processes; eight threads; data never adds entries | held |

Each render runs in a fresh interpreter with its own TMPDIR (where the cache lived).
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

_HUMAN = Path(__file__).resolve().parents[1] / "factory" / "index" / "human.py"
_TEMPLATES = ("base", "home", "home_rows", "project")
_OTHER = 1000  # a less-privileged user

_RENDER = """
import sys
import factory.index.human as human
rows = [{"name": "p", "display_name": "p\\x1b[2J\\u202e", "latest": "1", "files": 1,
         "yanked": 0, "status": "active", "advisories": 0, "updated": None}]
sys.stdout.buffer.write(human.render_home(rows, "https://i.example/", "now", []).encode())
"""

# The templates compiled by an environment without ``finalize`` (what another program,
# or an older human.py, makes: a record's control characters reach the page raw), into
# a bytecode cache at argv[1] under the name pattern argv[2].
_UNFINALIZED = """
import sys, jinja2
import factory.index.human as human
env = jinja2.Environment(loader=human._ENV.loader, autoescape=True,
                         bytecode_cache=jinja2.FileSystemBytecodeCache(sys.argv[1], sys.argv[2]))
for name in sys.argv[3:]:
    env.get_template(name)
"""


def _render(tmp: Path, timeout: float = 60) -> bytes:
    done = subprocess.run([sys.executable, "-c", _RENDER], capture_output=True, timeout=timeout,
                          env={**os.environ, "TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout


def _escaped(page: bytes) -> bool:
    return (b"\x1b" not in page and "\u202e".encode() not in page
            and b"p\\x1b[2J\\u202e" in page)


def _fresh(tmp: Path, name: str) -> Path:
    (tmp / name).mkdir()
    return tmp / name


def _cache_dir(tmp: Path) -> Path:
    return tmp / f"_jinja2-cache-{os.getuid()}"


def _patterns() -> list[str]:
    """The names compiled templates were cached under: Jinja's default, and the pages'
    own (the sha256 of human.py and Jinja's version)."""
    made_by = hashlib.sha256(_HUMAN.read_bytes() + jinja2.__version__.encode())
    return ["__jinja2_%s.cache", f"factory-pages-{made_by.hexdigest()[:32]}-%s.cache"]


def test_rendering_neither_writes_nor_needs_the_temporary_directory(tmp_path: Path) -> None:
    page = _render(tmp_path)
    assert _escaped(page)
    assert os.listdir(tmp_path) == []
    tmp_path.chmod(0o500)  # one it cannot write: the same page
    try:
        assert _render(tmp_path) == page
    finally:
        tmp_path.chmod(0o700)


def test_code_another_environment_compiled_is_never_read(tmp_path: Path) -> None:
    clean = _render(_fresh(tmp_path, "clean"))
    poisoned = tmp_path / "poisoned"
    cache = _cache_dir(poisoned)
    cache.mkdir(parents=True, mode=0o700)
    for pattern in _patterns():
        subprocess.run([sys.executable, "-c", _UNFINALIZED, str(cache), pattern, *_TEMPLATES],
                       check=True, timeout=60, env={**os.environ, "TMPDIR": str(poisoned)})
    assert len(os.listdir(cache)) == 2 * len(_TEMPLATES)
    for _ in range(2):
        assert _render(poisoned) == clean


def test_entries_that_are_not_files_neither_fail_nor_block_a_render(tmp_path: Path) -> None:
    """A FIFO blocked Jinja's open() until a writer came; a loop or a socket failed it."""
    clean = _render(_fresh(tmp_path, "clean"))
    trapped = tmp_path / "trapped"
    cache = _cache_dir(trapped)
    cache.mkdir(parents=True, mode=0o700)
    for template in _TEMPLATES:
        key = hashlib.sha1(template.encode()).hexdigest()
        fifo, loop = _patterns()
        os.mkfifo(cache / (fifo % key))
        (cache / (loop % key)).symlink_to(cache / (loop % key))
    assert _render(trapped, timeout=30) == clean


@pytest.mark.skipif(os.getuid() != 0, reason="needs root (to act as another user)")
def test_another_users_link_for_the_cache_dir_changes_nothing(tmp_path: Path) -> None:
    """Root rendering with a TMPDIR another user owns: Jinja chmod-ed the link's target
    to 0700 (following the link) before it checked the directory."""
    users = tmp_path / "users-tmp"
    users.mkdir()
    target = tmp_path / "their-target"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    _cache_dir(users).symlink_to(target)
    os.lchown(_cache_dir(users), _OTHER, _OTHER)
    os.chown(users, _OTHER, _OTHER)
    assert _escaped(_render(users))
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert os.listdir(target) == []
