"""The index pages' compiled templates are cached (factory.index.human._CompiledTemplates)
without ever reading code another environment compiled.

Jinja keys a compiled template by name and source only; code compiled without the
pages' ``finalize`` writes control characters unescaped. Each render runs in a fresh
interpreter with its own temporary directory (the cache's home).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_POISON = """
import jinja2
import factory.index.human as human
# The same templates, compiled by an environment without finalize, into Jinja's default
# cache directory under Jinja's default names.
env = jinja2.Environment(loader=human._ENV.loader, autoescape=True,
                         bytecode_cache=jinja2.FileSystemBytecodeCache())
env.get_template("home_rows")
"""

_RENDER = """
from factory.index.human import home_rows
print(repr(home_rows([{"name": "p", "display_name": "p\\x1b[2J\\u202e", "latest": "1",
                       "files": 1, "yanked": 0, "status": "active", "advisories": 0,
                       "updated": None}])))
"""


def _python(code: str, tmp: Path) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TMPDIR": str(tmp)}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _cache(tmp: Path) -> list[str]:
    return sorted(name for directory in tmp.glob("_jinja2-cache-*") if directory.is_dir()
                  for name in os.listdir(directory))


def test_code_another_environment_compiled_is_never_read(tmp_path: Path) -> None:
    _python(_POISON, tmp_path)
    poisoned = _cache(tmp_path)
    assert poisoned and all(name.startswith("__jinja2_") for name in poisoned)
    for _ in range(2):  # compiled (and cached), then read from the cache
        shown = eval(_python(_RENDER, tmp_path))
        assert "\x1b" not in shown and "\u202e" not in shown
        assert "p\\x1b[2J\\u202e" in shown
    ours = [name for name in _cache(tmp_path) if name not in poisoned]
    assert ours and all(name.startswith("factory-pages-") for name in ours)


def test_pages_render_when_the_cache_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / f"_jinja2-cache-{os.getuid()}").write_text("")  # Jinja refuses it: unsafe
    shown = eval(_python(_RENDER, tmp_path))  # no cache, the same page
    assert "p\\x1b[2J\\u202e" in shown and "\x1b" not in shown
    assert _cache(tmp_path) == []
