"""The lock of the approved set's build tools, as the plan tests share it."""

from __future__ import annotations

from tests.factories import locked

# The real shape of the approved set's build tools (static requirements, 2026 sdists).
REAL = [
    locked("flit-core", "3.12.0", reason="build requirement of flask"),
    locked("flit-core", "4.2.0"),
    locked("setuptools", "84.2.1"),
    locked("setuptools", "84.0.0", reason="build requirement of charset-normalizer"),
    locked("packaging", "26.3", ("flit_core >=3.12",)),
    locked("pathspec", "1.1.1", ("flit_core >=3.2,<5",)),
    locked("calver", "2025.10.20", ("setuptools>=77.0.1",)),
    locked("trove-classifiers", "2026.9.21.13", ("setuptools", "calver")),
    locked("vcs-versioning", "2.6.0", ("setuptools>=45", "packaging>=26.2"), ("packaging>=26.2",)),
    locked("setuptools-scm", "10.3.4", ("setuptools>=45", "vcs-versioning>=2.5.0.dev0,<3"),
           ("vcs-versioning<3,>=2.5.0.dev0", "packaging>=20", "setuptools",
            'rich>=13; extra == "rich"')),
    locked("pluggy", "1.7.0", ("setuptools>=65.0", "setuptools-scm[toml]>=8.0")),
    locked("poetry-core", "2.5.0"),
    locked("tomlkit", "0.15.2", ("poetry-core>=2.2.0",)),
    locked("hatchling", "1.33.0", (), ("packaging>=24.2", "pathspec>=0.10.1", "pluggy>=1.0.0",
                                       "tomli>=1.2.2; python_version < '3.11'",
                                       "tomlkit>=0.11.1", "trove-classifiers")),
    locked("hatch-vcs", "0.5.0", ("hatchling>=1.1.0",),
           ("hatchling>=1.1.0", "setuptools-scm>=8.2.0")),
    locked("urllib3", "2.8.0", ("hatchling>=1.27.0,<2", "hatch-vcs>=0.4.0,<0.6.0",
                                "setuptools-scm>=8,<11"), kind="runtime"),
    locked("charset-normalizer", "3.5.2", ("setuptools>=68,<84.1",), kind="runtime"),
    locked("flask", "3.1.3", ("flit_core>=3.11,<4",), kind="runtime"),
    locked("markupsafe", "3.0.4", ("setuptools>=77",), kind="runtime"),
]
