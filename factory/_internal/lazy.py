"""Deferred imports: a package's names loaded on first use, and jsonschema's costly import.

``lazy_attributes`` makes a package's ``__getattr__`` that imports each listed
name from its module on first use, so that importing one light module of the
package does not load its heavy ones.

jsonschema imports ``rfc3987_syntax.is_valid_syntax`` when it loads, and that
module builds an Earley parser at import: 1.6 s, paid by every `factory`
process that validates an SBOM even when no IRI needs it (ASCII IRIs are
checked with the RFC 3986 grammar, see factory/verify/sbom.py). This
puts a stand-in module in its place whose ``is_valid_syntax`` imports the real
module on its first call. Call ``defer_rfc3987()`` before importing jsonschema, in the
function that needs it: a call between module-level imports is moved by import sorters.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

_NAME = "rfc3987_syntax"


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block of heavy imports, then as it was.
    Importing Sigstore, pydantic's models and in-toto allocates a few hundred thousand
    objects and next to no garbage, and the collections those allocations trigger walk
    them again and again: about a tenth of the imports' CPU (measured here: 0.64 s of
    `verify --all`'s start-up instead of 0.71 s, medians of 8)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def lazy_attributes(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``names`` maps each name to its module."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def _real() -> Any:
    module = sys.modules.get(_NAME)
    if module is not None and not getattr(module, "_factory_stand_in", False):
        return module
    stand_in = sys.modules.pop(_NAME, None)
    try:
        return importlib.import_module(_NAME)
    except ImportError:
        if stand_in is not None:
            sys.modules[_NAME] = stand_in
        raise


def _is_valid_syntax(rule: str, value: str) -> bool:
    return bool(_real().is_valid_syntax(rule, value))


def defer_rfc3987() -> None:
    if _NAME in sys.modules or "jsonschema" in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(_NAME)
    except ValueError:
        spec = None
    if spec is None:
        return  # not installed: jsonschema does without it, as it would anyway
    stand_in = types.ModuleType(_NAME)
    stand_in.is_valid_syntax = _is_valid_syntax  # type: ignore[attr-defined]
    stand_in._factory_stand_in = True  # type: ignore[attr-defined]
    sys.modules[_NAME] = stand_in
