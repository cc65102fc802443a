"""Recipe fields for what to use instead and PEP 792 status: ``alternatives``,
``status`` and ``status_reason``, each checked with errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.config import load_settings
from factory.errors import RecipeError
from factory.recipes import check_recipes, load_recipes, parse_recipe


def _write(root: Path, name: str, body: str) -> Path:
    path = root / "recipes" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'name = "{name}"\nversions = ">=1"\n' + body, encoding="utf-8")
    return path


def test_alternatives_and_status_parse_normalized(tmp_path: Path) -> None:
    path = _write(tmp_path, "oldlib", 'alternatives = ["New_Lib", "other.lib"]\n'
                  'status = "deprecated"\nstatus_reason = "superseded by newlib"\n')
    recipe = parse_recipe(path, path.parent)
    assert recipe.alternatives == ("new-lib", "other-lib")
    assert (recipe.status, recipe.status_reason) == ("deprecated", "superseded by newlib")
    plain = parse_recipe(_write(tmp_path, "plain", ""), path.parent)
    assert (plain.alternatives, plain.status, plain.status_reason) == ((), None, None)


@pytest.mark.parametrize(("body", "field", "words"), [
    ('alternatives = "newlib"\n', "alternatives", "expected list"),
    ('alternatives = [1]\n', "alternatives", "list of non-empty strings"),
    ('alternatives = ["new lib"]\n', "alternatives", "not a project name"),
    ('alternatives = ["x\\u0007y"]\n', "alternatives", "not a project name"),
    ('alternatives = ["' + "a" * 201 + '"]\n', "alternatives", "not a project name"),
    ('alternatives = ["Old_Lib"]\n', "alternatives", "own project"),
    ('alternatives = ["a", "A"]\n', "alternatives", "named twice"),
    ('alternatives = [' + ", ".join(f'"p{i}"' for i in range(11)) + ']\n', "alternatives",
     "at most 10"),
    ('status = "active"\n', "status", "not one of"),
    ('status = "gone"\n', "status", "not one of"),
    ('status = 1\n', "status", "expected str"),
    ('status_reason = "why"\n', "status_reason", "without a status"),
    ('status = "archived"\nstatus_reason = ""\n', "status_reason", "printable"),
    ('status = "archived"\nstatus_reason = "a\\nb"\n', "status_reason", "printable"),
    ('status = "archived"\nstatus_reason = "a\\u202eb"\n', "status_reason", "printable"),
    ('status = "archived"\nstatus_reason = "' + "x" * 301 + '"\n', "status_reason",
     "printable"),
])
def test_bad_fields_name_file_and_field(tmp_path: Path, body: str, field: str,
                                        words: str) -> None:
    path = _write(tmp_path, "old-lib", body)
    with pytest.raises(RecipeError) as info:
        parse_recipe(path, path.parent)
    assert f"old-lib.toml: field '{field}'" in info.value.message
    assert words in info.value.message


def test_an_alternative_must_be_approved(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path)
    _write(tmp_path, "oldlib", 'alternatives = ["newlib", "ghost"]\n')
    _write(tmp_path, "newlib", "")
    recipes, errors = check_recipes(settings)
    assert sorted(recipes) == ["newlib", "oldlib"]
    assert [e.message for e in errors] == [
        "oldlib.toml: field 'alternatives': 'ghost' is not an approved component"]
    with pytest.raises(RecipeError, match="'ghost' is not an approved component"):
        load_recipes(settings)
    _write(tmp_path, "ghost", "")
    assert load_recipes(settings)["oldlib"].alternatives == ("newlib", "ghost")
