"""The index pages' templates compiled ahead of time (factory.index.compiled_pages): the
package holds exactly what the pages' environment compiles from today's templates, the
pages load them (not compile them) and render the same; a directory that does not match
the running templates or environment is never used."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import jinja2

from factory.index import compiled_pages, human


def test_the_package_holds_what_the_environment_compiles(tmp_path: Path) -> None:
    """Fails when a template, the environment or Jinja changed without `make pages`."""
    fresh = tmp_path / "fresh"
    compiled_pages.write(human._ENV, human.SOURCES, fresh)
    committed = compiled_pages.DIRECTORY
    names = sorted(n for n in os.listdir(fresh))
    assert names == sorted(n for n in os.listdir(committed) if n != "__pycache__"), \
        "run `make pages`"
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
    assert not mismatch and not errors, f"run `make pages`: {mismatch or errors} differ"


def test_the_pages_load_the_compiled_templates() -> None:
    assert isinstance(human._ENV.loader, jinja2.ChoiceLoader)
    module_loader = human._ENV.loader.loaders[0]
    assert isinstance(module_loader, jinja2.ModuleLoader)
    for name in human.SOURCES:  # each found there, none compiled from its source
        module_loader.load(human._ENV, name)


_RENDER = """
import sys
import factory.index.human as human
rows = [{"name": "p", "display_name": "p\\x1b[2J\\u202e<b>", "latest": "1", "files": 1,
         "yanked": 0, "status": "active", "advisories": 0, "updated": None}]
sys.stdout.buffer.write(human.render_home(rows, "https://i.example/", "now", []).encode())
"""


def test_a_page_is_the_same_compiled_or_not(tmp_path: Path) -> None:
    """The same bytes from the compiled templates and from the sources compiled in the
    process (a package whose directory is gone), control characters escaped."""
    def render(env: dict[str, str]) -> bytes:
        done = subprocess.run([sys.executable, "-c", _RENDER], capture_output=True,
                              timeout=60, env={**os.environ, **env})
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        return done.stdout

    compiled = render({})
    assert b"\x1b" not in compiled and "\u202e".encode() not in compiled
    assert b"p\\x1b[2J\\u202e&lt;b&gt;" in compiled
    # The same module with the directory unusable: compiled from the sources.
    copy = tmp_path / "factory"
    package = Path(human.__file__).parents[1]
    subprocess.run(["cp", "-r", str(package), str(copy)], check=True)
    (copy / "index" / "_compiled_pages" / "FINGERPRINT").write_text("0" * 64 + "\n")
    assert render({"PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}) == compiled


def test_a_directory_for_other_templates_or_settings_is_not_used(tmp_path: Path) -> None:
    sources = dict(human.SOURCES)
    env = human._ENV.overlay(loader=jinja2.DictLoader(sources))
    compiled_pages.write(env, sources, tmp_path / "pages")
    assert compiled_pages.use_compiled(env, sources, tmp_path / "pages")

    changed = {**sources, "base": sources["base"] + "<!-- another -->"}
    other = human._ENV.overlay(loader=jinja2.DictLoader(changed))
    assert not compiled_pages.use_compiled(other, changed, tmp_path / "pages")
    assert isinstance(other.loader, jinja2.DictLoader)

    # Without finalize Jinja writes a record's control characters raw: its code differs.
    unfinalized = jinja2.Environment(loader=jinja2.DictLoader(sources), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    assert not compiled_pages.use_compiled(unfinalized, sources, tmp_path / "pages")
    assert not compiled_pages.use_compiled(env, sources, tmp_path / "absent")
