"""in-toto verification of one wheel's layout and links, inside this process.

The stock ``in-toto-verify`` does the same steps, but runs the layout's
inspection as a subprocess in the current directory, which costs a process per
wheel and forbids threads. Here every step is in-toto's own ``verifylib``
function, in the same order as ``in_toto_verify``; only the inspection differs:
when it is the factory's known ``receive`` inspection (a zip CRC check of the
wheel), it runs in process, and its link records the files the auditor holds
(the wheel and its sidecars) with the digests the verifier already computed.
Any other inspection falls back to the stock CLI (factory.attest.intoto).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import threading
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from in_toto import verifylib
from in_toto.exceptions import LinkNotFoundError
from in_toto.models.common import ValidationMixin
from in_toto.models.link import FILENAME_FORMAT as LINK_FILENAME
from in_toto.models.link import Link
from in_toto.models.metadata import Metadata

from factory._internal.plainfile import open_plain
from factory.attest import intoto as factory_intoto
from factory.errors import VerificationError
from factory.verify import zipcheck
from factory.verify.intoto_inputs import LayoutFiles

LAYOUT_NAME = factory_intoto.LAYOUT_NAME
# Whether the wheel is an intact zip: known, found out when asked, or (None) read here.
ZipOk = bool | Callable[[], bool] | None


# -- in-toto's self-validation, without its inspection of every attribute ----------------------
# Every Link, Layout, Step and Inspection validates itself when made: ValidationMixin.validate
# asks inspect.getmembers(self, inspect.ismethod) for its members, which reads every
# attribute of the object (its properties evaluated) and then calls the ``_validate_*``
# methods by name. Which attributes those are is a property of the class, so here it is
# worked out once per class: the same properties are still read (a property that raises
# still fails validation as before: Signable.signable_bytes refuses a float) in the same
# order, then the same ``_validate_*`` methods are called in the same (sorted) order. A
# class this does not recognise (a ``_validate_`` name that is no plain function, an
# attribute of a kind not listed below, a __getattr__) and an instance that shadows a
# ``_validate_`` name are left to the library's own walk.
_LIBRARY_VALIDATE = ValidationMixin.validate
_INERT = (types.FunctionType, staticmethod, classmethod, types.GetSetDescriptorType,
          types.MemberDescriptorType, types.WrapperDescriptorType,
          types.MethodDescriptorType, types.BuiltinFunctionType,
          types.ClassMethodDescriptorType)


_Plan = tuple[tuple[str, ...], tuple[str, ...]] | None
_PLANS: dict[type, _Plan] = {}


def _validation_plan(cls: type) -> _Plan:
    if cls not in _PLANS:
        _PLANS[cls] = _plan_of(cls)
    return _PLANS[cls]


def _plan_of(cls: type) -> _Plan:
    """(properties getmembers would read, ``_validate_*`` methods) of ``cls``, in dir
    order, or None for a class left to the library."""
    if "__getattr__" in dir(cls):
        return None
    properties, methods = [], []
    for name in dir(cls):  # sorted, as getmembers walks them
        raw = inspect.getattr_static(cls, name)
        if name.startswith("_validate_"):
            if not isinstance(raw, types.FunctionType):
                return None
            methods.append(name)
        elif isinstance(raw, property):
            properties.append(name)
        elif hasattr(type(raw), "__get__") and not isinstance(raw, _INERT):
            return None  # another descriptor: reading it might do anything
    return tuple(properties), tuple(methods)


def _validate(self: ValidationMixin) -> None:
    plan = _validation_plan(type(self))
    if plan is None or any(k.startswith("_validate_") for k in getattr(self, "__dict__", ())):
        _LIBRARY_VALIDATE(self)
        return
    properties, methods = plan
    for name in properties:  # what getmembers reads before any method runs
        with contextlib.suppress(AttributeError):  # getmembers skips what it cannot read
            getattr(self, name)
    for name in methods:
        getattr(self, name)()


ValidationMixin.validate = _validate  # type: ignore[method-assign]


def _known_inspection(run: list[str], wheel: str) -> bool:
    # The command the factory writes into every layout (factory.attest.intoto).
    return run == ["python3", "-c", factory_intoto._ZIP_CHECK, wheel]


def _zip_ok(path: Path) -> bool:
    """The inspection, bounded (factory.verify.zipcheck), of the file at ``path``: opened
    without blocking (a FIFO swapped in), a regular file only."""
    try:
        handle = open_plain(path, follow_links=True)
    except OSError:
        return False
    with handle:
        return zipcheck.intact(handle)


def _inspection_links(layout: Any, wheel: Path, held: Mapping[str, str],
                      zip_ok: ZipOk = None) -> dict[str, Link]:
    artifacts = {name: {"sha256": digest} for name, digest in held.items()}
    links = {}
    for inspection in layout.inspect:
        if not _known_inspection(list(inspection.run), wheel.name):
            raise NeedsStock(inspection.name)
        intact = _zip_ok(wheel) if zip_ok is None else zip_ok if isinstance(zip_ok, bool) \
            else zip_ok()
        code = 0 if intact else 1
        if code != 0:
            raise VerificationError(f"inspection {inspection.name!r} failed: {wheel.name} "
                                    "is not an intact zip archive")
        links[inspection.name] = Link(
            name=inspection.name, materials=artifacts, products=artifacts,
            byproducts={"return-value": code}, command=list(inspection.run),
        )
    return links


# -- reading the layout and links as evidence is read ------------------------------------------
def _load(files: LayoutFiles, name: str) -> Metadata | None:
    """Metadata.load of ``name`` read by ``files`` (a regular file, never through a link,
    bounded); None when absent."""
    data = files.read(name)
    if data is None:
        return None
    return Metadata.from_dict(json.loads(data.decode("utf-8")))


def _load_links(layout: Any, files: LayoutFiles) -> dict[str, dict[str, Metadata]]:
    """verifylib.load_links_for_layout with each file read by _load: the same file names,
    an absent one skipped, the same preliminary threshold check and message."""
    steps: dict[str, dict[str, Metadata]] = {}
    for step in layout.steps:
        found: dict[str, Metadata] = {}
        for authorized in step.pubkeys:
            subkeys = layout.keys.get(authorized, {}).get("subkeys", {})
            for keyid in [authorized, *subkeys.keys()]:
                metadata = _load(files, LINK_FILENAME.format(step_name=step.name, keyid=keyid))
                if metadata is not None:
                    found[keyid] = metadata
        if len(found) < step.threshold:
            raise LinkNotFoundError(f"Step '{step.name}' requires '{step.threshold}' link "
                                    f"metadata file(s), found '{len(found)}'.")
        steps[step.name] = found
    return steps


class NeedsStock(Exception):
    """The layout asks for an inspection this module does not run in process."""


def verify(layout_dir: Path, wheel: Path, owner_key: dict[str, Any],
           owner_key_path: Path, held: Mapping[str, str], *, zip_ok: ZipOk = None,
           files: LayoutFiles | None = None) -> str:
    """Verify ``layout_dir`` for ``wheel``; ``held``: file name -> sha256 of the files at hand.
    ``zip_ok``: whether the wheel's bytes (those ``held`` names) are an intact zip, when
    already known (factory.verify.early), or what finds it out for those bytes, called
    when the inspection runs (Evidence.zip_intact); else the wheel is read and tested
    here.
    ``files``: the directory's files as already read (a file read there is not read
    again).

    Returns a one-line summary; raises VerificationError naming what failed.
    """
    try:
        return verify_in_process(files or LayoutFiles(layout_dir), wheel, owner_key, held,
                                 zip_ok)
    except NeedsStock:
        factory_intoto.verify_intoto(layout_dir, wheel, owner_key_path,
                                     [wheel.with_name(n) for n in held if n != wheel.name])
        return "layout and links verify (stock in-toto-verify, custom inspection)"


def verify_in_process(files: LayoutFiles, wheel: Path, owner_key: dict[str, Any],
                      held: Mapping[str, str], zip_ok: ZipOk = None) -> str:
    """``verify`` without the stock fallback: NeedsStock for a layout whose inspection is
    not the factory's; VerificationError naming what failed."""
    try:
        return _at_fixed_depth(_verify, files, wheel, owner_key, held, zip_ok)
    except (NeedsStock, VerificationError):
        raise
    except Exception as exc:  # in-toto and securesystemslib raise many unrelated types
        text = str(exc).strip().splitlines()
        raise VerificationError(
            f"{type(exc).__name__}: {text[0] if text else 'failed'}"[:400]) from None


def _at_fixed_depth(function: Callable[..., str], *args: Any) -> str:
    """``function(*args)`` in a thread of its own, joined: at the same stack depth whoever
    calls. json's parser, deepcopy and canonical JSON recurse once per level of nesting
    and give up at the recursion limit less the caller's stack: a link padded (outside
    what is signed) to nest just that deep verified in one caller and failed in another,
    so the early child's verdict on those bytes was not the worker's."""
    result: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            result.append((True, function(*args)))
        except BaseException as exc:  # (re-raised in the caller's thread)
            result.append((False, exc))

    thread = threading.Thread(target=run, name="in-toto verify", daemon=True)
    thread.start()
    thread.join()
    done, value = result[0]
    if not done:
        raise value
    return str(value)


def _verify(files: LayoutFiles, wheel: Path, owner_key: dict[str, Any],
            held: Mapping[str, str], zip_ok: ZipOk = None) -> str:
    layout_dir = files.directory
    if layout_dir.is_symlink():
        files.plain = False  # (a link now, whatever it was when ``files`` was made)
        raise VerificationError(f"{layout_dir.name} is a symbolic link, not the directory")
    metadata = _load(files, LAYOUT_NAME)
    if metadata is None:  # (the directory's name: its path is not among the verdict's inputs)
        raise VerificationError(f"no in-toto layout at {layout_dir.name}/{LAYOUT_NAME}")
    verifylib.verify_metadata_signatures(metadata, {owner_key["keyid"]: owner_key})
    layout = metadata.get_payload()
    verifylib.verify_layout_expiration(layout)
    files.expires = layout.expires  # valid now; a verdict kept for later is not after this
    steps = _load_links(layout, files)
    steps = verifylib.verify_link_signature_thresholds(layout, steps)
    if any(link.get_payload().type_ == "layout" for found in steps.values()
           for link in found.values()):
        files.beyond = True  # a sublayout: in-toto reads its links from a subdirectory
    chain = verifylib.verify_sublayouts(layout, steps, str(layout_dir), 60)
    verifylib.verify_all_steps_command_alignment(layout, chain)
    verifylib.verify_threshold_constraints(layout, chain)
    reduced = verifylib.reduce_chain_links(chain)
    verifylib.verify_all_item_rules(layout.steps, reduced)
    combined = dict(reduced)
    combined.update(_inspection_links(layout, wheel, held, zip_ok))
    verifylib.verify_all_item_rules(layout.inspect, combined)
    names = ", ".join(s.name for s in layout.steps)
    return f"layout signed by the owner key (expires {layout.expires}); links {names} verify"
