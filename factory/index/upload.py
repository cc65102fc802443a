"""Mirror published wheels to an existing registry (devpi, pypiserver, Artifactory...).

Uses twine's library API in-process, so the password never appears in a
process list. Only intact files are sent: each wheel's digest is checked
against its published record first. Yanked files and quarantined projects are
not mirrored; files the registry already has are reported, so a rerun resumes.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from packaging.utils import parse_wheel_filename

from factory._internal.atomic import sha256_file
from factory.errors import FactoryError
from factory.index.records import normalize

if TYPE_CHECKING:
    from factory.index.changes import Index


class UploadError(FactoryError):
    default_hint = "check the registry URL and credentials (TWINE_USERNAME/TWINE_PASSWORD)"


@dataclass
class UploadPlan:
    wheels: list[Path] = field(default_factory=list)  # to mirror
    skipped: list[str] = field(default_factory=list)  # "<file>: why" (not mirrored)
    uploaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # the registry already had them


def plan_upload(
    index: Index, projects: list[str] | None = None, include_yanked: bool = False
) -> UploadPlan:
    wanted = [normalize(p) for p in projects] if projects else index.projects()
    plan = UploadPlan()
    for project in wanted:
        record = index.record(project)
        if record is None:
            raise UploadError(f"no project {project!r} is published", "see `factory status`")
        for entry in sorted(record.files, key=lambda f: f.filename):
            path = index.layout.files(project) / entry.filename
            if record.status == "quarantined":
                plan.skipped.append(f"{entry.filename}: project quarantined")
            elif entry.yanked and not include_yanked:
                plan.skipped.append(f"{entry.filename}: yanked")
            elif not path.is_file() or sha256_file(path) != entry.sha256:
                raise UploadError(
                    f"{path} does not match its published sha256 {entry.sha256}",
                    "the index is damaged; run `factory index check` and do not mirror it",
                )
            else:
                plan.wheels.append(path)
    return plan


def upload(
    index: Index,
    url: str,
    username: str | None = None,
    password: str | None = None,
    *,
    projects: list[str] | None = None,
    include_yanked: bool = False,
    cacert: str | None = None,
    simple_url: str | None = None,
) -> UploadPlan:
    """Upload the published wheels to ``url`` (a legacy upload endpoint) with twine.

    twine 7 refuses --skip-existing for registries other than PyPI, so what
    the registry already has is read from its Simple API first (``simple_url``,
    by default ``<url>/simple/`` as on pypiserver; devpi's is
    ``<url>/+simple/``): the same name with the same sha256 is skipped, with
    other bytes it is a conflict. Where that API cannot be read, an upload
    answered "already exists" (409, or 400 saying so) counts as present.
    """
    from requests.exceptions import HTTPError, RequestException
    from twine.commands.upload import upload as twine_upload
    from twine.exceptions import TwineException
    from twine.settings import Settings as TwineSettings

    plan = plan_upload(index, projects, include_yanked)
    twine_settings = TwineSettings(
        repository_url=url,
        username=username,
        password=password,
        non_interactive=True,
        disable_progress_bar=True,
        cacert=cacert,
        config_file=os.devnull,  # never pick up a developer's ~/.pypirc
    )
    existing = _Existing(simple_url or url.rstrip("/") + "/simple/", cacert)
    for wheel in plan.wheels:
        there = existing.sha256(wheel.name)
        if there is not None:
            if there and there != sha256_file(wheel):
                raise UploadError(
                    f"{url} already holds {wheel.name} with other bytes (sha256 {there})",
                    "the registry's copy differs from the published one; investigate it",
                )
            plan.present.append(wheel.name)
            continue
        try:
            twine_upload(twine_settings, [str(wheel)])
        except HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            text = exc.response.text if exc.response is not None else ""
            if status == 409 or (status == 400 and "exist" in text.lower()):
                plan.present.append(wheel.name)
                continue
            raise UploadError(f"{url} refused {wheel.name} (HTTP {status or '?'})") from None
        except (TwineException, RequestException) as exc:
            raise UploadError(f"upload of {wheel.name} to {url} failed: {exc}") from None
        plan.uploaded.append(wheel.name)
    return plan


class _Existing:
    """Which file names (and sha256, "" if not given) the target's Simple API lists."""

    def __init__(self, simple_url: str, cacert: str | None) -> None:
        self.simple_url = simple_url.rstrip("/") + "/"
        self.verify: str | bool = cacert or True
        self._seen: dict[str, dict[str, str] | None] = {}

    def sha256(self, filename: str) -> str | None:
        project = normalize(parse_wheel_filename(filename)[0])
        if project not in self._seen:
            self._seen[project] = self._files(project)
        files = self._seen[project]
        return None if files is None else files.get(filename)

    def _files(self, project: str) -> dict[str, str] | None:
        try:
            response = httpx.get(
                self.simple_url + project + "/",
                headers={"Accept": _ACCEPT},
                follow_redirects=True,
                verify=self.verify,
                timeout=30,
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return {} if response.status_code == 404 else None
        if response.headers.get("content-type", "").startswith(_JSON):
            return {
                f["filename"]: f.get("hashes", {}).get("sha256", "")
                for f in response.json().get("files", [])
            }
        out = {}
        for href in _HREF.findall(response.text):
            link, _, fragment = html.unescape(href).partition("#")
            name = link.rstrip("/").rsplit("/", 1)[-1]
            out[name] = fragment[7:] if fragment.startswith("sha256=") else ""
        return out


_JSON = "application/vnd.pypi.simple.v1+json"
_ACCEPT = f"{_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
_HREF = re.compile(r'href="([^"]+)"')
