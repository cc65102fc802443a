"""Coverage-guided fuzzing of the recipe parser (atheris / libFuzzer); not part of the suite.

Property: ``factory.recipes.parse_recipe`` either returns a valid Recipe or
raises RecipeError naming the file; never another exception.

    .venv/bin/pip install atheris==3.0.0
    .venv/bin/python fuzz/fuzz_recipe.py -max_total_time=300 fuzz/corpus/recipe

Seeds: the shipped recipes/*.toml are copied into an empty corpus directory.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from packaging.utils import canonicalize_name

    from factory.errors import RecipeError
    from factory.recipes import KINDS, TRACKS, parse_recipe

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.mkdtemp(prefix="fuzz-recipe-"))
RECIPES = WORK / "recipes"
RECIPES.mkdir()
(RECIPES / "fix.patch").write_text("--- a/x\n+++ b/x\n")
PATH = RECIPES / "demo.toml"


def one_input(data: bytes) -> None:
    PATH.write_bytes(data)
    try:
        recipe = parse_recipe(PATH, RECIPES)
    except RecipeError as exc:
        assert PATH.name in exc.message
        return
    assert canonicalize_name(recipe.name) == "demo"
    assert recipe.track in TRACKS and recipe.kind in KINDS
    assert recipe.cooldown_days is None or (math.isfinite(recipe.cooldown_days)
                                            and recipe.cooldown_days >= 0)
    for patch in recipe.patches:
        assert patch.resolve().is_relative_to(RECIPES.resolve()), patch


def main() -> None:
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if corpus and Path(corpus[0]).is_dir() and not any(Path(corpus[0]).iterdir()):
        for recipe in sorted((ROOT / "recipes").glob("*.toml")):
            text = recipe.read_text().replace(f'"{recipe.stem}"', '"demo"', 1)
            (Path(corpus[0]) / recipe.name).write_text(text)
    try:
        atheris.Setup(sys.argv, one_input)
        atheris.Fuzz()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
