"""The names the index's TUF repository (factory.sign.tuf_repo) serves under /tuf/.

Apart from the repository's writer so that the index checks and the server can tell
its files without importing python-tuf and securesystemslib's signers (about 40 ms).
"""

from __future__ import annotations

import re

PREFIX = "tuf"  # the index's directory of the repository, served at /tuf/
TRUSTED_ROOT_TARGET = "trusted_root.json"  # the names sigstore-python's TrustUpdater asks for
SIGNING_CONFIG_TARGET = "signing_config.v0.2.json"
TARGET_NAMES = (TRUSTED_ROOT_TARGET, SIGNING_CONFIG_TARGET)
MAX_METADATA_BYTES = 512 * 1024  # what serve sends and refresh reads, per file

VERSIONED = re.compile(r"([1-9][0-9]{0,9})\.(root|snapshot|targets)\.json")
_TARGET = re.compile(r"targets/([0-9a-f]{64})\.(trusted_root\.json|signing_config\.v0\.2\.json)")


def is_repository_path(path: str) -> bool:
    """True for a path (relative to /tuf/) the repository can hold; nothing else is served."""
    return path == "timestamp.json" or bool(VERSIONED.fullmatch(path)) or is_target_path(path)


def is_target_path(path: str) -> bool:
    """True for a target named by its digest (its bytes never change under that name)."""
    return bool(_TARGET.fullmatch(path))
