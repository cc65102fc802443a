"""Git tags as an upstream: versions from tags, sources as deterministic archives.

A recipe may take its source from a git URL with a tag pattern (``v{version}``).
The lock pins the tag's commit; the source is the ``git archive`` (tar, with a
``name-version/`` prefix) of that commit, and its sha256 and size are pinned
too. Fetching clones the tag again, checks that it still names the locked
commit, and checks the archive's digest, so a moved tag is refused.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from packaging.version import InvalidVersion, Version

from factory._internal.atomic import TMP_PREFIX, sha256_file
from factory.errors import AlarmError, UpstreamError

PREFIX = "git+"
SCHEMES = ("https", "http", "ssh", "git", "file")


def url_problem(url: str) -> str | None:
    """Why a locked ``git+<repo>@<commit>#tag=<tag>`` URL is not one we will use, or None."""
    if len(url) > 4096 or any(not c.isprintable() or c.isspace() for c in url):
        return "the URL is too long or has spaces or control characters"
    repo, commit, tag = parse_url(url)
    scheme = repo.partition("://")[0]
    if "://" not in repo or scheme not in SCHEMES:
        return f"the repository URL's scheme is not one of {', '.join(SCHEMES)}"
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        return "the commit is not a full hex object id"
    if not tag or tag.startswith("-"):
        return "the tag is empty or starts with '-'"
    return None


@dataclass(frozen=True)
class Tag:
    version: Version
    name: str
    commit: str


def _git(*args: str, cwd: Path | None = None, timeout: float = 300) -> str:
    env = {"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
           # no ext:: or fd:: transports (they run commands), whatever a URL says
           "GIT_ALLOW_PROTOCOL": ":".join(SCHEMES)}
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                timeout=timeout, env=env)
    except FileNotFoundError:
        raise UpstreamError("git is not installed", "install git (apt-get install git)") from None
    except subprocess.TimeoutExpired:
        raise UpstreamError(f"git {args[0]} timed out after {timeout:.0f} s") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UpstreamError(f"git {args[0]} failed: {last}",
                            "check the recipe's git URL and that the repository is reachable")
    return result.stdout


def pattern_regex(pattern: str) -> re.Pattern[str]:
    head, _, tail = pattern.partition("{version}")
    return re.compile(re.escape(head) + r"(?P<version>.+)" + re.escape(tail) + r"\Z")


def list_tags(url: str, pattern: str) -> list[Tag]:
    """The tags matching ``pattern`` whose version part is a PEP 440 version."""
    regex = pattern_regex(pattern)
    commits: dict[str, str] = {}
    for line in _git("ls-remote", "--tags", url).splitlines():
        commit, _, ref = line.partition("\t")
        name = ref.removeprefix("refs/tags/")
        peeled = name.endswith("^{}")
        name = name.removesuffix("^{}")
        if peeled or name not in commits:  # an annotated tag's ^{} is its commit
            commits[name] = commit
    tags = []
    for name, commit in commits.items():
        match = regex.match(name)
        if match:
            try:
                tags.append(Tag(Version(match["version"]), name, commit))
            except InvalidVersion:
                continue
    return sorted(tags, key=lambda t: t.version, reverse=True)


def source_url(repo: str, tag: Tag) -> str:
    return f"{PREFIX}{repo}@{tag.commit}#tag={quote(tag.name)}"


def parse_url(url: str) -> tuple[str, str, str]:
    """``git+<repo>@<commit>#tag=<tag>`` -> (repo, commit, tag)."""
    body, _, fragment = url.removeprefix(PREFIX).partition("#tag=")
    repo, _, commit = body.rpartition("@")
    return repo, commit, unquote(fragment)


def archive_name(name: str, version: str) -> str:
    return f"{name}-{version}.tar"


def make_archive(url: str, name: str, version: str, dest: Path) -> Path:
    """Clone the tag, check its commit, and write the archive to ``dest`` atomically."""
    repo, commit, tag = parse_url(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=dest.parent))
    try:
        _git("clone", "--quiet", "--depth", "1", "--branch", tag, "--", repo, str(work / "repo"))
        head = _git("rev-parse", "HEAD", cwd=work / "repo").strip()
        if head != commit:
            raise AlarmError(f"tag {tag} of {repo} now names commit {head}, the lock has "
                             f"{commit}", f"a moved tag is refused and the old pin kept; accept "
                             f"it with `factory lock --accept-change {name}` if it is expected")
        out = work / "archive.tar"
        _git("archive", "--format=tar", f"--prefix={name}-{version}/", "-o", str(out), "HEAD",
             cwd=work / "repo")
        out.replace(dest)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fetch(url: str, name: str, version: str, dest: Path, sha256: str, size: int) -> Path:
    """The locked archive, re-made from git and verified against the lock."""
    tmp = dest.with_name(TMP_PREFIX + dest.name)
    try:
        make_archive(url, name, version, tmp)
        actual = sha256_file(tmp)
        if actual != sha256 or tmp.stat().st_size != size:
            raise AlarmError(f"{dest.name}: sha256 mismatch: expected {sha256}, got {actual}",
                             "the archive of the locked commit changed; the old pin is kept")
        tmp.replace(dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)
