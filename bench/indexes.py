"""The two indexes compared: `factory serve` on the published index, and pypiserver on
a directory holding the very same wheel files (hard links)."""

from __future__ import annotations

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
