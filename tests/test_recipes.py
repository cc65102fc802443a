from __future__ import annotations

from pathlib import Path

import pytest

from factory.config import Settings, load_settings
from factory.errors import RecipeError
from factory.recipes import check_recipes, load_recipes, parse_recipe
from tests import factories

REPO = Path(__file__).resolve().parents[1]


def parse(root: Path, name: str, body: str):
    path = root / "recipes" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'name = "{name}"\n' + body)
    return parse_recipe(path, root / "recipes")


def test_full_recipe_parses(tmp_path: Path) -> None:
    recipe = parse(tmp_path, "Foo_Bar", 'versions = ">=1.2,<2"\ntrack = "patch"\n'
                   'licenses = ["MIT"]\ncooldown_days = 2\nsystem_packages = ["libffi-dev"]\n'
                   '[source]\nindex = "http://127.0.0.1:1/simple/"\n')
    assert recipe.key == "foo-bar"
    assert recipe.versions.contains("1.5") and not recipe.versions.contains("2.0")
    assert recipe.track == "patch" and recipe.cooldown_days == 2.0
    assert recipe.source.index == "http://127.0.0.1:1/simple/"
    assert recipe.digest.startswith("sha256:") and len(recipe.digest) == 71


@pytest.mark.parametrize(("body", "field", "words"), [
    ('versions = ">=1"\nversion = "1"\n', "version", "unknown key"),
    ('versions = ">=1"\n[source]\nindx = "x"\n', "source.indx", "unknown key"),
    ('versions = "=>1.0"\n', "versions", "not a PEP 440 specifier"),
    ('track = "minor"\n', "versions", "missing"),
    ('versions = ">=1"\ntrack = "weekly"\n', "track", "not one of"),
    ('versions = ">=1"\nlicenses = "MIT"\n', "licenses", "expected list"),
    ('versions = ">=1"\ncooldown_days = -1\n', "cooldown_days", "negative"),
    ('versions = ">=1"\npatches = ["nope.patch"]\n', "patches", "does not exist"),
    ('versions = ">=1"\n[upstream_wheel]\nfilename = "a.whl"\nsha256 = "' + "a" * 64 + '"\n',
     "upstream_wheel.filename", "build tool"),
    ('versions = ">=1"\n[source]\ngit = "https://x"\nindex = "https://y"\n', "source.git",
     "not both"),
])
def test_bad_recipe_names_file_and_field(tmp_path: Path, body: str, field: str,
                                         words: str) -> None:
    with pytest.raises(RecipeError) as info:
        parse(tmp_path, "foo", body)
    assert f"foo.toml: field '{field}'" in info.value.message
    assert words in info.value.message


def test_name_must_match_file(tmp_path: Path) -> None:
    path = tmp_path / "recipes" / "foo.toml"
    path.parent.mkdir()
    path.write_text('name = "bar"\nversions = ">=1"\n')
    with pytest.raises(RecipeError, match="does not match the file name"):
        parse_recipe(path, path.parent)


def test_check_reports_every_error(tmp_path: Path) -> None:
    factories.recipe(tmp_path, "good", 'versions = ">=1"\n')
    factories.recipe(tmp_path, "bad1", 'versions = ">=1"\ntypo = 1\n')
    factories.recipe(tmp_path, "bad2", 'versions = "nonsense"\n')
    recipes, errors = check_recipes(load_settings(tmp_path))
    assert set(recipes) == {"good"}
    assert sorted(e.message.split(":")[0] for e in errors) == ["bad1.toml", "bad2.toml"]
    with pytest.raises(RecipeError, match=r"and 1 more"):
        load_recipes(load_settings(tmp_path))


def test_shipped_recipes_are_valid_and_cover_the_approved_set() -> None:
    recipes = load_recipes(load_settings(REPO))
    runtime = {k for k, r in recipes.items() if r.kind == "runtime"}
    assert runtime == {"requests", "urllib3", "idna", "certifi", "charset-normalizer", "flask",
                       "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker"}


def test_settings_reject_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "factory.toml").write_text("[build]\nconcurency = 3\n")
    from factory.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key build.concurency"):
        load_settings(tmp_path)


def test_settings_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "factory.toml").write_text("[build]\nconcurrency = 3\n")
    assert load_settings(tmp_path).build_concurrency == 3
    monkeypatch.setenv("FACTORY_BUILD_CONCURRENCY", "5")
    settings: Settings = load_settings(tmp_path)
    assert settings.build_concurrency == 5
