"""Fuzzing the recipe parser: any document either parses into a valid Recipe or
is refused with a RecipeError naming the file; never another exception.

A recipe is policy: a parser crash would stop the factory, and a recipe that
parses into something half-valid (a patch outside recipes/, a NaN cooldown)
would approve more than its author meant.
"""

from __future__ import annotations

import datetime as dt
import math
import string
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from factory.errors import RecipeError
from factory.recipes import _TOP_KEYS, KINDS, TRACKS, Recipe, parse_recipe

SUITE = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])

_scalars = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["demo", ">=1,<2", "==1.*", "minor", "patch", "any", "runtime",
                     "build-tool", "MIT", "../x.patch", "/etc/passwd", "fix.patch", "",
                     "a\x00b", "v{version}", "https://pypi.org/simple/", "0" * 64]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 1, 1)),
    st.dates(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)
_keys = st.one_of(st.sampled_from(sorted(_TOP_KEYS)), st.text(max_size=10))
_tables = st.dictionaries(_keys, _values, max_size=8)


def _write(directory: Path, stem: str, body: bytes) -> Path:
    recipes = directory / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    (recipes / "fix.patch").write_text("--- a/x\n+++ b/x\n")
    path = recipes / f"{stem}.toml"
    path.write_bytes(body)
    return path


def _check(path: Path) -> None:
    try:
        recipe = parse_recipe(path, path.parent)
    except RecipeError as exc:
        assert path.name in exc.message  # the error names the file
        return
    _assert_valid(recipe, path)


def _assert_valid(recipe: Recipe, path: Path) -> None:
    recipes_dir = path.parent.resolve()
    assert canonicalize_name(recipe.name) == canonicalize_name(path.stem)
    assert isinstance(recipe.versions, SpecifierSet)
    assert recipe.track in TRACKS and recipe.kind in KINDS
    assert all(isinstance(x, str) and x for x in recipe.licenses + recipe.system_packages)
    assert recipe.cooldown_days is None or (math.isfinite(recipe.cooldown_days)
                                            and recipe.cooldown_days >= 0)
    for patch in recipe.patches:
        assert patch.resolve().is_relative_to(recipes_dir) and patch.is_file()
    if recipe.upstream_wheel is not None:
        assert recipe.kind == "build-tool" and len(recipe.upstream_wheel.sha256) == 64


_stems = st.text(alphabet=string.ascii_lowercase + "-_.", min_size=1, max_size=8).filter(
    lambda s: s[0].isalpha())


@SUITE
@given(stem=_stems, table=_tables, named=st.booleans())
def test_any_toml_table_parses_or_is_a_recipe_error(
        tmp_path_factory: pytest.TempPathFactory, stem: str, table: dict[str, object],
        named: bool) -> None:
    if named:  # most interesting documents get past the name check
        table = {**table, "name": stem}
    try:
        body = tomli_w.dumps(table).encode()
    except (TypeError, ValueError):
        return  # not representable in TOML (e.g. a list of mixed tables)
    _check(_write(tmp_path_factory.mktemp("r"), stem, body))


@SUITE
@given(stem=_stems, body=st.one_of(st.binary(max_size=200),
                                   st.text(alphabet=string.printable + "é\u202e\x00", max_size=200)
                                   .map(str.encode)))
def test_any_bytes_parse_or_are_a_recipe_error(
        tmp_path_factory: pytest.TempPathFactory, stem: str, body: bytes) -> None:
    _check(_write(tmp_path_factory.mktemp("r"), stem, body))


@pytest.mark.parametrize(("line", "words"), [
    ('patches = ["../../etc/passwd"]', "patches"),
    ('patches = ["/etc/passwd"]', "patches"),
    ('patches = ["fix\\u0000.patch"]', "patches"),
    ("cooldown_days = nan", "cooldown_days"),
    ("cooldown_days = inf", "cooldown_days"),
])
def test_hostile_recipe_fields_are_refused(tmp_path: Path, line: str, words: str) -> None:
    path = _write(tmp_path, "demo", f'name = "demo"\nversions = ">=1"\n{line}\n'.encode())
    with pytest.raises(RecipeError, match=words):
        parse_recipe(path, path.parent)


def test_a_patch_inside_recipes_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "demo", b'name = "demo"\nversions = ">=1"\npatches = ["fix.patch"]\n')
    assert parse_recipe(path, path.parent).patches == (path.parent / "fix.patch",)
