"""The indexes compared: `factory serve` on the published index, and pypiserver on a
directory holding the very same wheel files (hard links); and, as floors, nginx
serving the published tree as static files, as is and without its PEP 658
metadata."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench import peers, servers
from bench.harness import BenchSetupError, Context
from bench.servers import Running

# The approved runtime set: these two names pull in the other ten.
TOP_LEVEL = ("requests", "flask")


def published_index(ctx: Context) -> Path:
    index = ctx.settings.index_dir
    missing = [n for n in TOP_LEVEL if not (index / "simple" / n).is_dir()]
    if missing:
        raise BenchSetupError(
            f"no published index with {', '.join(missing)} at {index}",
            "run `factory fetch`, `factory build` and `factory publish` first (or `make demo`)",
        )
    return index


def wheels(index: Path) -> list[Path]:
    found = sorted((index / "files").rglob("*.whl"))
    if not found:
        raise BenchSetupError(f"the index at {index} holds no wheels",
                              "run `factory publish` first")
    return found


@contextmanager
def both(ctx: Context) -> Iterator[dict[str, Running]]:
    """factory and pypiserver, serving the same wheels, both on 127.0.0.1."""
    index = published_index(ctx)
    files = wheels(index)
    packages = ctx.work / "pypiserver-packages"
    servers.link_tree(files, packages)
    venv = peers.venv("pypiserver", peers.PYPISERVER, cache=ctx.cache)
    ctx.describe("pypiserver", " + ".join(peers.PYPISERVER) + " (--server auto: waitress)")
    ctx.describe("wheels served by both", len(files))
    with ExitStack() as stack:
        factory = stack.enter_context(servers.factory_serve(
            ctx.settings.root, ctx.settings.state_dir, ctx.work / "factory-serve.log"))
        pypi = stack.enter_context(servers.pypiserver(
            venv, packages, ctx.work / "pypiserver.log"))
        yield {"factory": factory, "pypiserver": pypi}


_METADATA_KEYS = ("core-metadata", "dist-info-metadata", "data-dist-info-metadata")
_METADATA_ATTRS = re.compile(r' data-(?:core|dist-info)-metadata="[^"]*"')


def without_core_metadata(index: Path, target: Path) -> Path:
    """A copy of the published tree whose Simple pages announce no PEP 658/714 metadata.

    Everything is hard-linked except the project pages, which are rewritten (after
    unlinking, so the published tree is never touched).
    """
    shutil.copytree(index, target, copy_function=servers.link_or_copy, dirs_exist_ok=True)
    for page in sorted((target / "simple").glob("*/index.json")):
        data = json.loads(page.read_text())
        for entry in data.get("files", []):
            for key in _METADATA_KEYS:
                entry.pop(key, None)
        page.unlink()
        page.write_text(json.dumps(data, indent=1, sort_keys=True))
    for page in sorted((target / "simple").glob("*/index.html")):
        text = _METADATA_ATTRS.sub("", page.read_text())
        page.unlink()
        page.write_text(text)
    return target


@contextmanager
def static_floors(ctx: Context) -> Iterator[dict[str, Running]]:
    """nginx serving the published tree, as is and without PEP 658 metadata.

    Not contenders for the goal: they show what a static server costs an installer
    (nginx answers in a fraction of a millisecond), and what announcing PEP 658
    metadata costs it. Without nginx on this machine there are none.
    """
    if servers.nginx_binary() is None:
        ctx.note("nginx is not installed: the static-server floors were not measured "
                 "(apt-get install nginx-light)")
        yield {}
        return
    index = published_index(ctx)
    stripped = without_core_metadata(index, ctx.work / "index-without-metadata")
    with ExitStack() as stack:
        yield {
            "nginx": stack.enter_context(servers.nginx(index, ctx.work / "nginx")),
            "nginx, no PEP 658": stack.enter_context(
                servers.nginx(stripped, ctx.work / "nginx-no-658", name="nginx, no PEP 658")),
        }


def locked_sdists(ctx: Context, names: tuple[str, ...]) -> list[tuple[str, Path]]:
    """The project's locked sdists of ``names`` (key, path in its verified source cache),
    to serve from a local upstream."""
    from factory.lock import load_lock
    from factory.upstream.cache import cache_path

    found = []
    for entry in load_lock(ctx.settings).components:
        if entry.key in names:
            path = cache_path(ctx.settings, entry.sdist.sha256, entry.sdist.filename)
            if not path.is_file():
                raise BenchSetupError(f"{entry.sdist.filename} is not in the source cache",
                                      "run `factory fetch` (or `make demo`) first")
            found.append((entry.key, path))
    return found


def tool_project(ctx: Context, upstream_url: str, tools: tuple[str, ...],
                 settings_toml: str = "") -> Path:
    """A project at ``ctx.work/project`` approving ``tools`` with this project's own
    recipes (their allowances: prebuilt files), on the local upstream at
    ``upstream_url``, with an empty advisory database; ``settings_toml`` is added to
    its factory.toml."""
    root = ctx.work / "project"
    (root / "recipes").mkdir(parents=True)
    for name in tools:
        shutil.copyfile(ctx.settings.recipes_dir / f"{name}.toml",
                        root / "recipes" / f"{name}.toml")
    (ctx.work / "advisories").mkdir()
    (root / "factory.toml").write_text(
        f'[factory]\nupstream = "{upstream_url}"\nstate_dir = "state"\n'
        f'advisories = "{ctx.work / "advisories"}"\n' + settings_toml, encoding="utf-8")
    return root


def factory_cli(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    """`factory ARGS` in a fresh process; its stdout, or BenchSetupError with its last
    line of stderr."""
    result = subprocess.run([sys.executable, "-m", "factory.cli", *args], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise BenchSetupError(f"factory {' '.join(args)} failed: "
                              f"{(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return result.stdout


def confirm_install(ctx: Context, index: str, requirement: str, what: str) -> None:
    """Describe whether pip downloads ``requirement`` from ``index`` (``what`` it is)."""
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--isolated", "--no-deps",
                             "--no-cache-dir", "-d", str(ctx.work / "dl"), "--index-url", index,
                             requirement], capture_output=True, text=True, timeout=120)
    ctx.describe(f"pip download of {what}", "ok" if result.returncode == 0
                 else f"failed: {result.stderr.strip()[-200:]}")
