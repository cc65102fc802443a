"""The fast CycloneDX validator (factory.verify.sbom) gives the library's verdicts.

Its ``uniqueItems`` is linear (hashable keys instead of jsonschema's pairwise
``equal``) and its ``$ref`` remembers clean verdicts: neither may change what is
accepted, nor the first error reported, on SBOMs of the size a builder image makes.
The compiled validator in front of it (jsonschema-rs) may only say "valid" where the
library does: on real, tampered and randomly edited SBOMs.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factory.attest.sbom import build_sbom
from factory.build.record import SystemPackage
from factory.verify import sbom as fast
from tests import factories
from tests.attest_fixtures import make_record

# A builder image's worth of Debian packages: the formulation arrays the memo and the
# linear uniqueItems are for.
PACKAGES = [SystemPackage(f"lib{i:03d}", f"1.{i}-1", "amd64", "debian-12") for i in range(60)]


@functools.cache
def _library() -> Any:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    fast.schema_error({})  # the stand-in for the costly IRI parser, as verify runs
    return JsonStrictValidator(SchemaVersion.V1_6)._validator


def _first(validator: Any, document: Any) -> tuple[list[Any], str] | None:
    error = next(iter(validator.iter_errors(document)), None)
    return None if error is None else (list(error.absolute_path), error.message)


@pytest.fixture(scope="module")
def sbom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("sbom")
    wheel = factories.wheel(tmp / "wheels", requires=("idna<4,>=2.5",))
    record = replace(make_record(wheel, factories.sdist(tmp / "sources")),
                     image_packages=PACKAGES)
    return build_sbom(wheel, record)


def _packages(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["formulation"][0]["components"]


def _duplicate_package(d: dict[str, Any]) -> None:
    _packages(d).append(copy.deepcopy(_packages(d)[7]))


def _bad_type(d: dict[str, Any]) -> None:
    _packages(d)[5]["type"] = "bogus"


def _purl_not_a_string(d: dict[str, Any]) -> None:
    _packages(d)[9]["purl"] = 5


def _bad_url(d: dict[str, Any]) -> None:
    _packages(d)[11]["externalReferences"] = [{"type": "website", "url": "not a uri \\ x"}]


def _duplicate_input(d: dict[str, Any]) -> None:
    inputs = d["formulation"][0]["workflows"][0]["inputs"]
    inputs.append(copy.deepcopy(inputs[-1]))


def _bool_for_number(d: dict[str, Any]) -> None:
    d["version"] = True


@pytest.mark.parametrize("tamper", [None, _duplicate_package, _bad_type, _purl_not_a_string,
                                    _bad_url, _duplicate_input, _bool_for_number])
def test_the_same_verdict_and_first_error_as_the_library(sbom: dict[str, Any], tamper) -> None:
    document = copy.deepcopy(sbom)
    if tamper is not None:
        tamper(document)
    expected = _first(_library(), document)
    assert (tamper is None) == (expected is None)
    assert _first(fast.strict_validator(), document) == expected  # publishing's, no memo
    # Twice: the second time the unchanged parts come from the memo of clean verdicts.
    assert _first(fast._validator(remember=True), document) == expected
    assert _first(fast._validator(remember=True), document) == expected


def test_a_remembered_part_changed_later_is_checked_again(sbom: dict[str, Any]) -> None:
    document = copy.deepcopy(sbom)
    assert fast.schema_error(document) is None  # every package now remembered as clean
    _packages(document)[3]["type"] = "bogus"  # the same package, changed in place
    assert fast.schema_error(document) == fast.schema_error(copy.deepcopy(document))
    assert "formulation/0/components/3/type" in (fast.schema_error(document) or "")


def test_publishing_never_takes_a_key_that_is_not_a_string_for_one(
        sbom: dict[str, Any]) -> None:
    """A document built in Python may hold an int key, which JSON would write as a string:
    publishing's validator has no memo that could answer for it from a string-keyed twin."""
    document = copy.deepcopy(sbom)
    _packages(document)[2]["properties"] = [{"name": "n", "value": "v"}]
    assert fast.schema_error(document) is None
    assert _first(fast.strict_validator(), document) is None
    _packages(document)[2]["properties"] = [{"name": "n", "value": "v", 1: "x"}]
    assert _first(fast.strict_validator(), document) == _first(_library(), document)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.0, -0.0, 1.0, 2.5])
    | st.sampled_from(["", "a", "1", "true"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "1"]), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(JSON, max_size=5))
def test_unique_items_agrees_with_jsonschema(items: list[Any]) -> None:
    """The same verdict as jsonschema's own check, whatever the items (quirks included:
    its sorted path lets [[false], [0], [false]] through)."""
    from jsonschema._utils import uniq

    assert fast._unique(items) == uniq(items)
    assert fast._unique(items + items[:1]) == uniq(items + items[:1])


@pytest.mark.parametrize("items, unique", [
    ([1, True], True), ([0, False], True), ([1, 1.0], False), ([0, -0.0], False),
    ([{"a": 1}, {"a": True}], True), ([{"a": [1]}, {"a": [1.0]}], False),
    ([{"a": 0}, {"a": -0.0}], False), ([{"a": 1, "b": "x"}, {"b": "x", "a": 1}], False),
    ([[1], [True]], True), ([{}, []], True), ([None, 0], True), (["1", 1], True),
])
def test_unique_items_edge_cases(items: list[Any], unique: bool) -> None:
    from jsonschema._utils import uniq

    assert fast._unique(items) is unique
    assert bool(uniq(items)) is unique


def test_formulation_of_many_packages_is_not_quadratic(monkeypatch: pytest.MonkeyPatch) -> None:
    """600 distinct objects: jsonschema's pairwise check would compare 180,000 pairs.

    Counted, not timed: every pairwise comparison goes through jsonschema's ``equal``,
    and the fast check must make no more of them than there are items."""
    import jsonschema._utils as utils

    calls = 0
    library_equal = utils.equal

    def counting_equal(one: Any, two: Any) -> bool:
        nonlocal calls
        calls += 1
        return bool(library_equal(one, two))

    monkeypatch.setattr(utils, "equal", counting_equal)
    items = [{"bom-ref": f"p{i}", "name": f"p{i}", "properties": [{"name": "n", "value": "v"}]}
             for i in range(600)]
    assert fast._unique(items) and not fast._unique(items + [copy.deepcopy(items[42])])
    assert calls <= len(items)
    utils.uniq(items[:50])  # the count sees the library's pairwise path (1,225 pairs)
    assert calls >= 50 * 49 // 2


# -- the compiled validator (jsonschema-rs): a fast "valid", never laxer than the library --------
def _date_with_newline(d: dict[str, Any]) -> None:
    d["metadata"]["timestamp"] = d["metadata"]["timestamp"] + "\n"


def _hash_with_newline(d: dict[str, Any]) -> None:  # Python's `$` matches before a last \n
    hashes = d["metadata"]["component"]["hashes"]
    hashes[0]["content"] = hashes[0]["content"] + "\n"


def _serial_number(d: dict[str, Any]) -> None:
    d["serialNumber"] = "urn:uuid:not-a-uuid"


def _big_version(d: dict[str, Any]) -> None:
    d["version"] = 10 ** 30  # within the schema (minimum 1): both compare exactly


def _negative_version(d: dict[str, Any]) -> None:
    d["version"] = -(10 ** 30)


def _unknown_top_level(d: dict[str, Any]) -> None:
    d["surprise"] = 1


def _bad_email(d: dict[str, Any]) -> None:
    d["metadata"]["component"]["authors"] = [{"name": "a", "email": "no at sign"}]


def _lone_surrogate(d: dict[str, Any]) -> None:  # the compiled validator cannot take it
    _packages(d)[4]["name"] = "lib\ud800"


COMPILED_CASES = [None, _duplicate_package, _bad_type, _purl_not_a_string, _bad_url,
                  _duplicate_input, _bool_for_number, _date_with_newline, _hash_with_newline,
                  _serial_number, _big_version, _negative_version, _unknown_top_level,
                  _bad_email, _lone_surrogate]


def _library_error(document: Any) -> str | None:
    error = next(iter(_library().iter_errors(document)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message[:300]}"


@pytest.mark.parametrize("tamper", COMPILED_CASES)
def test_the_compiled_validator_never_accepts_what_the_library_refuses(
        sbom: dict[str, Any], tamper) -> None:
    """schema_error's verdict and message are the library's, with the compiled validator
    in front (its "valid" is final; everything else goes to jsonschema)."""
    document = copy.deepcopy(sbom)
    if tamper is not None:
        tamper(document)
    expected = _library_error(document)
    if fast._fast_valid(document):
        assert expected is None
    assert fast.schema_error(copy.deepcopy(document), integral=True) == expected
    assert fast.schema_error(copy.deepcopy(document)) == expected


def test_the_compiled_validator_is_in_use_and_uses_the_python_format_checks(
        sbom: dict[str, Any]) -> None:
    assert fast._compiled() is not None
    assert fast._fast_valid(copy.deepcopy(sbom))  # a real SBOM: the fast path decides
    for tamper in (_bad_url, _bad_email):  # formats the Python checks refuse
        document = copy.deepcopy(sbom)
        tamper(document)
        assert not fast._fast_valid(document) and _library_error(document) is not None
    # jsonschema's date-time check (rfc3339-validator) takes a trailing newline, which
    # jsonschema-rs's own would refuse: the compiled validator asks the Python check.
    document = copy.deepcopy(sbom)
    _date_with_newline(document)
    assert fast._fast_valid(document) and _library_error(document) is None


def test_the_compiled_validator_fetches_nothing() -> None:
    import jsonschema_rs

    with pytest.raises(jsonschema_rs.ValidationError, match="nothing is fetched"):
        jsonschema_rs.Draft7Validator({"$ref": "http://127.0.0.1:9/x.json"},
                                      retriever=fast._refuse)


# Values a tampered SBOM may hold where the two validators could read them differently:
# line ends (Python's `$` and `.`), big integers, types standing in for others.
TRICKY = st.sampled_from([
    "", "a", "a\n", "\n", "\r", "x y", "library", "CycloneDX", "1.6", "MIT", "Apache-2.0",
    "http://example.com/a", "http://example.com/a\n", "not a uri \\ x", "pkg:pypi/x@1",
    "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z\n", "2024-13-01T00:00:00Z", "a@b.c",
    "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
    "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79\n", "0" * 64, "0" * 64 + "\n", "SHA-256",
    "en", "en-US", "en\n", "CRE:1-2", "text/plain", "text/plain\n",
]) | st.sampled_from([0, 1, -1, 2 ** 53 + 1, 10 ** 30, True, False, None, [], {}, ["a"],
                      {"name": "n"}])


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*at, index))
    return out


@functools.cache
def _small_sbom_paths(document_id: int, document_json: str) -> list[tuple[Any, ...]]:
    import json

    return _paths(json.loads(document_json))[1:]


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_mutated_sboms_the_compiled_validator_never_laxer(sbom: dict[str, Any],
                                                          data: st.DataObject) -> None:
    """Random edits (one to three values replaced or removed) of a real SBOM: whenever
    the compiled validator says valid, so does the library."""
    import json

    document = copy.deepcopy(sbom)
    paths = _small_sbom_paths(id(sbom), json.dumps(sbom, sort_keys=True))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent: Any = document
        try:
            for step in path[:-1]:
                parent = parent[step]
            if data.draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = data.draw(TRICKY)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced what this path went through
    if fast._fast_valid(document):  # publishing's validator: the library's verdicts, faster
        assert next(iter(fast.strict_validator().iter_errors(document)), None) is None


# -- the compiled validator without jsonschema: the same schemas, the same format answers ------
FORMAT_SAMPLES = [
    "", "a", "@", "a@b", "a@b.c", "no at sign", "ü@ü.de", "a\n@b",
    "2024-01-01T00:00:00Z", "2024-01-01t00:00:00z", "2024-01-01T00:00:00Z\n",
    "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z",
    "2024-01-01T00:00:00.123+05:30", "2024-01-01 00:00:00Z", "2024-01-01",
    "http://example.com/a", "http://example.com/a\n", "https://ex.com/ä", "not a uri \\ x",
    "mailto:a@b.c", "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79", "//example.com/x",
    "/relative/path", "#frag", "http://[::1]:80/", "http://ex.com/%zz", "pkg:pypi/x@1",
    "https://例え.jp/パス", "x\ud800y", "\u0000", "https://ex.com/a b",
    0, 1, 2.5, True, None, [], {}, ["a"], {"a": 1},
]


@pytest.mark.parametrize("name", sorted(fast._STANDALONE_FORMATS))
@pytest.mark.parametrize("value", FORMAT_SAMPLES, ids=repr)
def test_each_standalone_format_answers_as_the_library_checker(name: str, value: Any) -> None:
    """The compiled validator's format answers, made without importing jsonschema, are
    jsonschema's checker's (conforms), or raise where it raises."""
    checker = fast._format_checker()
    try:
        expected: bool | type[BaseException] = checker.conforms(value, name)
    except Exception as exc:  # noqa: BLE001 (the checker's exception, whatever it is)
        expected = type(exc)
    try:
        got: bool | type[BaseException] = fast._STANDALONE_FORMATS[name](value)
    except Exception as exc:  # noqa: BLE001
        got = type(exc)
    assert got == expected


def test_the_standalone_schemas_are_the_library_ones_and_need_no_other_format() -> None:
    """_schema_files reads what cyclonedx-python-lib's strict validator loads, under the
    same URIs; every format they name is answered standalone (else the compiled validator
    asks jsonschema's checker, correct but with jsonschema's import)."""
    library = fast._library()
    schema, resources = fast._schema_files()
    assert schema == library.schema
    assert dict(resources) == {uri: library._registry.contents(uri)
                               for uri in library._registry}
    formats: set[str] = set()
    for contents in [schema, *dict(resources).values()]:
        fast._formats_in(contents, formats)
    assert formats and formats <= fast._STANDALONE_FORMATS.keys()


def test_the_early_child_builds_the_compiled_validator_without_jsonschema() -> None:
    import subprocess
    import sys

    probe = ("import sys; from factory.verify import sbom; assert sbom._compiled() is not "
             "None; print('jsonschema' in sys.modules, 'referencing' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr[-2000:]
