"""The index pages' templates, compiled ahead of time into modules of this package.

Compiling the four templates (factory.index.human) costs each process that renders a
page about 30 ms (`factory serve`, `verify --all`'s early child, every publish); loading
them compiled costs a few. Jinja's own bytecode cache would keep them in a temporary
directory, where another user can plant or swap what is run
(tests/test_attack_page_template_cache.py); these are Python modules beside this one,
trusted as the package's code is, loaded by the import system (jinja2.ModuleLoader).

The code Jinja generates depends on the templates and on the environment (autoescape,
finalize: without it a record's control characters reach the page raw), so the
directory holds the fingerprint of both (FINGERPRINT) and is used only when the running
environment's fingerprint is the same; otherwise the templates are compiled as before.
`make pages` writes them again; a test holds them to what the environment compiles.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import jinja2

DIRECTORY = Path(__file__).with_name("_compiled_pages")
_FINGERPRINT = "FINGERPRINT"


def fingerprint(env: jinja2.Environment, sources: Mapping[str, str]) -> str:
    """The sha256 of what the generated code is a function of: Jinja's version, the
    environment's settings that shape it, and every template's name and source."""
    settings = (f"jinja2 {jinja2.__version__}; autoescape={env.autoescape!r}; "
                f"finalize={env.finalize is not None}; undefined={env.undefined.__name__}; "
                f"optimized={env.optimized}; is_async={env.is_async}; "
                f"trim_blocks={env.trim_blocks}; lstrip_blocks={env.lstrip_blocks}; "
                f"newline={env.newline_sequence!r}; extensions={sorted(env.extensions)}")
    digest = hashlib.sha256(settings.encode())
    for name in sorted(sources):
        digest.update(b"\0" + name.encode() + b"\0" + sources[name].encode())
    return digest.hexdigest()


def use_compiled(env: jinja2.Environment, sources: Mapping[str, str],
                 directory: Path = DIRECTORY) -> bool:
    """Load ``env``'s templates from ``directory`` when it was compiled from these
    sources by an environment like this one (else leave its loader as it is)."""
    try:
        written = (directory / _FINGERPRINT).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    if written != fingerprint(env, sources):
        return False
    # (a template missing there is compiled from its source, as without the directory)
    env.loader = jinja2.ChoiceLoader([jinja2.ModuleLoader(str(directory)),
                                      jinja2.DictLoader(dict(sources))])
    return True


def write(env: jinja2.Environment, sources: Mapping[str, str],
          directory: Path = DIRECTORY) -> None:
    """Compile ``sources`` with ``env`` into ``directory`` (replaced whole)."""
    directory.mkdir(exist_ok=True)
    compiler = env.overlay(loader=jinja2.DictLoader(dict(sources)))
    with tempfile.TemporaryDirectory(dir=directory.parent) as staging:
        compiler.compile_templates(staging, zip=None)
        for stale in directory.glob("tmpl_*.py"):
            stale.unlink()
        for name in sorted(os.listdir(staging)):
            os.replace(Path(staging) / name, directory / name)
    (directory / _FINGERPRINT).write_text(fingerprint(env, sources) + "\n", encoding="ascii")
