"""The internal index: atomic publish, Simple API pages, human pages, serving, upload.

The index directory is a static tree (see ``records``) that any web server can
serve; ``serve`` adds content negotiation, the Integrity API and digest checks.
"""

from factory.index.changes import (
    PublishedFile,
    UnknownProjectError,
    publish,
    publish_trust,
    read_core_metadata,
    record_advisories,
    set_status,
    unyank,
    yank,
)
from factory.index.regen import check_index, rebuild_all
from factory.index.serve import create_app, serve
from factory.index.upload import upload

__all__ = [
    "PublishedFile",
    "UnknownProjectError",
    "check_index",
    "create_app",
    "publish",
    "publish_trust",
    "read_core_metadata",
    "rebuild_all",
    "record_advisories",
    "serve",
    "set_status",
    "unyank",
    "upload",
    "yank",
]
