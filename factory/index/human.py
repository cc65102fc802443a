"""Human pages: the index home and one page per project, for people and auditors.

Rendered with Jinja2 (autoescaping on) from the same records as the Simple API.
Self-contained HTML: inline CSS, no script, no external resource, so a page
renders the same offline, behind any web server, and under a strict CSP.
"""

from __future__ import annotations

import shlex
from typing import Any

import jinja2
import markupsafe

from factory.errors import printable
from factory.index.about import About, Equivalence, is_pure
from factory.index.records import FileEntry, ProjectRecord, Sidecars, version_key

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f8fa}
header{background:#0b3d5c;color:#fff;padding:1rem 2rem}
header a{color:#fff}
main{padding:1rem 2rem;max-width:72rem}
h1{margin:.2rem 0;font-size:1.6rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #d0d7de;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#eaeef2}
code,.digest{font-family:ui-monospace,monospace;font-size:.85rem;word-break:break-all}
.file{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1rem;margin:1rem 0}
.file.yanked{border-color:#cf222e;background:#fff5f5}
.badge{display:inline-block;border-radius:1rem;padding:.1rem .6rem;font-size:.8rem}
.ok{background:#dafbe1;color:#116329}.warn{background:#fff8c5;color:#7d4e00}
.bad{background:#ffebe9;color:#a40e26}.muted{color:#57606a}
dl{display:grid;grid-template-columns:12rem 1fr;gap:.3rem 1rem;margin:.5rem 0}
dt{font-weight:600}dd{margin:0}
pre{background:#0d1117;color:#e6edf3;padding:.8rem;border-radius:6px;overflow-x:auto}
"""

_BASE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{% endblock %}</title><style>{{ style }}</style></head>
<body><header><a href="{{ root }}">Artifact factory</a> · internal package index</header>
<main>{% block main %}{% endblock %}</main></body></html>
"""

_HOME = """{% extends "base" %}
{% block title %}Artifact factory index{% endblock %}
{% block main %}
<h1>Approved components</h1>
<p>Every file here was built from verified upstream source in an isolated,
network-less builder, and carries signed provenance and an SBOM.
Install with <code>pip install --index-url {{ base_url }}/simple/ NAME</code>.
Trust material: <a href=".well-known/factory/">/.well-known/factory/</a>.</p>
<p>Verify with the stock Sigstore client: <code>sigstore --trust-config trust_config.json
verify identity ...</code> with <a href=".well-known/factory/trust_config.json">this
trust config</a>, or through the index's TUF repository: once <code>sigstore --instance
{{ base_url }}/{{ tuf }} trust-instance root.json</code> (root.json from the operator, out of
band; <a href="{{ tuf }}/1.root.json">/{{ tuf }}/1.root.json</a> is trust on first use), then
<code>sigstore --instance {{ base_url }}/{{ tuf }} verify identity ...</code>. Each project
page prints the commands for each file.</p>
<p class="muted">{{ count }} project(s); page generated {{ generated }}.</p>
<table id="projects"><thead><tr><th>Project</th><th>Latest</th><th>Files</th>
<th>Status</th><th>Advisories</th><th>Last published</th></tr></thead><tbody>
{{ rows }}
</tbody></table>
{% if status %}
<h2>Upstream and policy</h2>
<p class="muted">As of the last watch cycle: what each recipe allows, the newest release
upstream, what is locked and published, and how long an allowed release has waited.</p>
<table id="status"><thead><tr><th>Component</th><th>Kind</th><th>Allowed</th>
<th>Upstream</th><th>Locked</th><th>Published</th><th>Advisories</th><th>Waiting</th>
</tr></thead><tbody>
{% for s in status %}<tr>
<td>{{ s.name }}{% if s.get("alarm") %}
<span class="badge bad" title="{{ s.get('alarm') }}">upstream alarm: pin kept</span>{% endif %}
{%- if s.get("refused") %}
<span class="badge bad" title="{{ s.get('refused') }}">refused at signing</span>{% endif %}</td>
<td>{{ s.kind }}</td><td><code>{{ s.allowed }}</code></td>
<td>{{ s.newest_upstream or "?" }}</td><td>{{ s.locked or "—" }}</td>
<td>{% if s.published != s.locked %}<span class="badge warn">{{ s.published or "—" }}</span>
{% else %}{{ s.published or "—" }}{% endif %}</td>
<td>{% for a in s.advisories %}<span class="badge bad">{{ a }}</span>
{% else %}{% if not s.get("advisories_problem") %}none{% endif %}{% endfor %}
{%- if s.get("advisories_problem") %}
<span class="badge warn" title="{{ s.get('advisories_problem') }}">{{ "stale copy" if
s.get("advisories_problem").startswith("stale") else "NOT CHECKED" }}</span>{% endif %}</td>
<td>{{ "%g d"|format(s.waiting_days) if s.waiting_days is not none else "" }}</td></tr>
{% endfor %}</tbody></table>
{% endif %}
{% endblock %}
"""

# One row per project, in name order: the static home page is updated by replacing
# one row (factory.index.splice), so a row never spans another's text.
_HOME_ROWS = """{% for p in projects %}<tr>
<td><a href="project/{{ p.name }}/">{{ p.display_name }}</a></td>
<td>{{ p.latest or "—" }}</td>
<td>{{ p.files }}{% if p.yanked %} ({{ p.yanked }} yanked){% endif %}</td>
<td><span class="badge {{ 'ok' if p.status == 'active' else 'bad' }}">{{ p.status }}</span></td>
<td>{% if p.advisories is none %}<span class="badge warn">not checked</span>
{% elif p.advisories %}<span class="badge bad">{{ p.advisories }} affected file(s)</span>
{% else %}<span class="badge ok">none known</span>{% endif %}</td>
<td>{{ p.updated or "—" }}</td></tr>
{% endfor %}"""

_PROJECT = """{% extends "base" %}
{% block title %}{{ r.display_name }} · Artifact factory{% endblock %}
{% block main %}
<h1 id="project-name">{{ r.display_name }}</h1>
<p>Status: <span class="badge {{ 'ok' if r.status == 'active' else 'bad' }}">{{ r.status }}</span>
{% if r.status_reason %} — {{ r.status_reason }}{% endif %}</p>
<p>Install: <code>pip install --index-url {{ base_url }}/simple/ {{ r.name }}</code>
· Simple API: <a href="../../simple/{{ r.name }}/">HTML</a>,
<a href="../../simple/{{ r.name }}/?format=application/vnd.pypi.simple.v1%2Bjson">JSON</a></p>
<section id="about">
{% if a.version %}<p id="summary">{{ a.summary or "No summary given." }}</p>{% endif %}
<dl>
<dt>Licence</dt><dd id="license">{% if a.license %}<code>{{ a.license }}</code>{% endif %}
{% for c in a.license_classifiers %}<br><span class="classifier">{{ c }}</span>{% endfor %}
{% if not a.license and not a.license_classifiers %}<span class="badge warn">none
declared</span>{% endif %}</dd>
<dt>Described</dt><dd>{% if a.version %}from the core metadata (PEP 658) of
{{ r.display_name }} {{ a.version }}, as its author wrote it{% else %}no files{% endif %}
{% if a.metadata_problem %}<span class="badge bad">{{ a.metadata_problem }}</span>{% endif %}</dd>
</dl>
<h2>Dependencies</h2>
{% if a.dependencies %}
<table id="dependencies"><thead><tr><th>Requirement</th><th>Extras</th><th>Versions</th>
<th>When (marker)</th><th>On this index</th></tr></thead><tbody>
{% for d in a.dependencies %}<tr>
<td>{% if d.name %}<a href="../../project/{{ d.name }}/">{{ d.name }}</a>{% else %}
<code>{{ d.text }}</code>{% endif %}</td>
<td>{{ d.extras }}</td><td><code>{{ d.specifier or "any" }}</code></td>
<td><code>{{ d.marker }}</code></td>
<td>{% if d.served %}<span class="badge ok">served</span>
{% elif d.name %}<span class="badge bad">not on this index</span>
(<a href="../../api/v1/why?requirement={{ d.name }}">why</a>)
{% else %}<span class="badge warn">not a valid requirement</span>{% endif %}</td></tr>
{% endfor %}</tbody></table>
{% if a.dependencies_more %}<p class="muted">and {{ a.dependencies_more }} more not
shown</p>{% endif %}
{% elif a.version %}<p>None declared (Requires-Dist of {{ a.version }}).</p>{% endif %}
<h2>Advisory history</h2>
{% if a.advisories is none %}<p><span class="badge warn">not checked</span>: no served version
has been checked against an advisory database.</p>
{% elif a.advisories %}
<table id="advisories"><thead><tr><th>Advisory</th><th>Summary</th><th>Fixed in</th>
<th>Served versions (VEX status)</th></tr></thead><tbody>
{% for adv in a.advisories %}<tr>
<td>{{ adv.id }}{% if adv.aliases %}<br><span class="muted">{{ adv.aliases }}</span>{% endif %}</td>
<td>{{ adv.summary }}</td><td>{{ adv.fixed or "no fix known" }}</td>
<td>{% for status, versions, more in adv.statuses %}
<span class="badge {{ 'bad' if status == 'affected' else 'ok' }}">{{ status }}</span>
{{ versions|join(", ") }}{% if more %} and {{ more }} older{% endif %}<br>
{% endfor %}</td></tr>
{% endfor %}</tbody></table>
{% if a.advisories_more %}<p class="muted">and {{ a.advisories_more }} more
advisories</p>{% endif %}
<p class="muted">The same statements, signed, for every project:
<a href="../../.well-known/factory/vex.json">OpenVEX feed</a>.</p>
{% else %}<p><span class="badge ok">none affects</span> a served version (each was checked).
Advisories fixed before the served versions are stated, signed, in the
<a href="../../.well-known/factory/vex.json">OpenVEX feed</a>.</p>{% endif %}
</section>
<h2>Files</h2>
{% for f in files %}
<section class="file{{ ' yanked' if f.yanked }}" id="{{ f.filename }}">
<h2>{{ r.display_name }} {{ f.version }}
{% if f.yanked %}<span class="badge bad">yanked
{%- if f.yanked_reason %}: {{ f.yanked_reason }}{% endif %}</span>{% endif %}</h2>
<dl>
<dt>File</dt><dd><a href="{{ files_url }}/{{ f.filename }}">{{ f.filename }}</a>
 ({{ f.size }} bytes)</dd>
<dt>SHA-256</dt><dd class="digest">{{ f.sha256 }}</dd>
<dt>Requires Python</dt><dd>{{ f.requires_python or "any" }}</dd>
<dt>Published</dt><dd>{{ f.upload_time }}</dd>
<dt>Built</dt><dd>{{ f.built_from.get("finished_on") or "unknown" }}
{% if f.built_from.get("builder_image") %} in
<code>{{ f.built_from.get("builder_image") }}</code>{% endif %}
{% if f.built_from.get("builder_image_id") %}
<span class="digest">({{ f.built_from.get("builder_image_id") }})</span>{% endif %}</dd>
<dt>Built from</dt><dd>{% if f.source %}
{% if f.source_stored %}<a href="../../{{ f.source_stored }}">{{ f.source.filename }}</a>
{%- else %}{{ f.source.filename }}{% endif %}
<br>upstream SHA-256 <span class="digest">{{ f.source.sha256 }}</span>
{% if f.source.url %}<br>from <code>{{ f.source.url }}</code>{% endif %}
{% else %}unknown{% endif %}</dd>
<dt>Signed by</dt><dd>{% if f.signer %}<code>{{ f.signer.get("identity", "?") }}</code>
{% if f.signer.get("issuer") %}, issuer <code>{{ f.signer.get("issuer") }}</code>{% endif %}
{% else %}<span class="badge warn">no signer identity recorded</span>{% endif %}</dd>
<dt>Advisories</dt><dd>{% if f.advisories is none %}<span class="badge warn">not checked</span>
{% elif f.advisories %}{% for a in f.advisories %}<span class="badge bad">{{ a.get("id") }}</span>
{{ a.get("summary", "") }}
{%- if a.get("fixed") %} (fixed in {{ a.get("fixed") }}){% endif %}<br>{% endfor %}
{% else %}<span class="badge ok">none known</span>{% endif %}
{% if f.advisories_checked %}
<span class="muted"> checked {{ f.advisories_checked }}</span>{% endif %}</dd>
{% if f.filename in a.equivalence or is_pure(f.filename) %}
{% set e = a.equivalence.get(f.filename, not_compared) %}
<dt>Upstream equivalence</dt><dd class="equivalence">
<span class="badge {{ 'ok' if e.verdict == 'equivalent' else 'warn' }}">{{ e.verdict }}</span>
{% if e.upstream %} with upstream's <code>{{ e.upstream }}</code>{% endif %}
{% if e.note %}<br>{{ e.note }}{% endif %}
{% if e.reasons %}<ul>{% for why in e.reasons %}<li><code>{{ why }}</code></li>{% endfor %}
{% if e.more %}<li>and {{ e.more }} more</li>{% endif %}</ul>{% endif %}
{% if e.verdict != "not compared" %}<a
 href="{{ files_url }}/{{ f.filename }}.equivalence.json">signed statement</a>{% endif %}
</dd>{% endif %}
<dt>Attestations</dt><dd>{% for kind, label in links %}{% if kind in f.sidecars %}
<a class="sidecar"
 href="{{ files_url }}/{{ f.filename }}{{ suffix(kind) }}{{ '/' if kind == 'in-toto' }}">
{{- label }}</a> ·
{% endif %}{% endfor %}<a href="{{ files_url }}/{{ f.filename }}{#
#}{{ suffix("metadata") }}">core metadata</a></dd>
</dl>
<details><summary>How to verify this file</summary>
<p>With stock tools (curl, <code>sigstore</code>, <code>in-toto-verify</code>) and only
what this index serves, in an empty directory:</p>
<pre class="stock-verify">{{ stock_commands(r, f) }}</pre>
{% set instance = instance_commands(r, f) %}{% if instance %}
<p>Or through the index's TUF repository (<code>sigstore --instance</code>): trust its root
once, and every verify then takes the trusted root from the index, signed under the root you
pinned. Get <code>root.json</code> from the index's operator, out of band; the copy this
index serves at <a href="../../tuf/1.root.json">/tuf/1.root.json</a> is trust on first use
(the first fetch proves nothing; later changes must be signed by that root):</p>
<pre class="stock-instance">{{ instance }}</pre>{% endif %}
<p>Or everything at once (signature, SLSA provenance, SBOM, PEP 740, in-toto, advisories):</p>
<pre>factory verify --index {{ base_url }} "{{ r.name }}=={{ f.version }}"</pre>
<p>The trust config, trusted root and public keys are at
<a href="../../.well-known/factory/">/.well-known/factory/</a>; fetched from this index
they only show that the files are what it signed: pin them (the deployment's
<code>keys/</code>) to trust the index itself. The provenance object (PEP 740) is also at
<code>{{ base_url }}/integrity/{{ r.name }}/{{ f.version }}/{{ f.filename }}/provenance</code>.</p>
</details>
</section>
{% else %}<p>No files published.</p>{% endfor %}
{% if older %}
<h2>Older versions</h2>
<p class="muted">{{ older|length }} older file(s): the newest {{ shown }} versions are shown in
full above; each file here has the same sidecars and the same verify commands.</p>
<table id="older"><thead><tr><th>Version</th><th>File</th><th>SHA-256</th></tr></thead><tbody>
{% for f in older %}<tr><td>{{ f.version }}{% if f.yanked %}
<span class="badge bad">yanked</span>{% endif %}</td>
<td><a href="{{ files_url }}/{{ f.filename }}">{{ f.filename }}</a></td>
<td class="digest">{{ f.sha256 }}</td></tr>
{% endfor %}</tbody></table>
{% if older_more %}<p class="muted">and {{ older_more }} older file(s): the
<a href="../../simple/{{ r.name }}/">Simple API page</a> lists every file.</p>{% endif %}
{% endif %}
{% endblock %}
"""

_LINKS = [
    ("provenance", "provenance (PEP 740)"),
    ("intoto", "SLSA provenance (in-toto)"),
    ("sbom", "SBOM (CycloneDX)"),
    ("sigstore", "Sigstore bundle"),
    ("build", "build record"),
    ("in-toto", "in-toto layout and links"),
]

# No bytecode cache (Jinja's FileSystemBytecodeCache): it runs marshalled code, and
# unpickles a header, from files in a temporary directory it checks once by path, which
# another user could swap or plant (tests/test_attack_page_template_cache.py). Compiling
# the four templates costs a process about 30 ms, once.
_ENV = jinja2.Environment(
    loader=jinja2.DictLoader({"base": _BASE, "home": _HOME, "home_rows": _HOME_ROWS,
                               "project": _PROJECT}),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    # Values come from records on disk: no raw control or bidi character reaches a page
    # (a terminal that shows it, or a name displayed reversed).
    # (Markup is text rendered here already, the home page's rows.)
    finalize=lambda value: (printable(value) if isinstance(value, str)
                            and not isinstance(value, markupsafe.Markup) else value),
)


def render_home(projects: list[dict[str, Any]], base_url: str, generated: str,
                status: list[dict[str, Any]] | None = None) -> str:
    return render_home_page(len(projects), home_rows(projects), base_url, generated, status)


EMPTY_ROWS = '<tr><td colspan="6">Nothing published yet.</td></tr>'


def home_rows(projects: list[dict[str, Any]]) -> str:
    """The rows of the home page's project table (catalog lines, in name order)."""
    return _ENV.get_template("home_rows").render(projects=projects)


def render_home_page(count: int, rows: str, base_url: str, generated: str,
                     status: list[dict[str, Any]] | None = None) -> str:
    """The home page around ``rows`` (``home_rows``; "" for none) of ``count`` projects."""
    return _ENV.get_template("home").render(
        style=_STYLE,
        root="./",
        count=count,
        rows=markupsafe.Markup(rows or EMPTY_ROWS),  # rendered (and escaped) already
        base_url=base_url.rstrip("/"),
        tuf=TUF_PATH,
        generated=generated,
        status=status or [],
    )


TRUST_PATH = ".well-known/factory"
STOCK_TRUST_CONFIG = "factory-trust-config.json"  # what the commands save the trust config as
STOCK_OWNER_KEY = "factory-owner.pub.pem"
TUF_PATH = "tuf"  # the TUF repository's path under the index (factory.sign.tuf_repo.PREFIX)
STOCK_TUF_ROOT = "factory-tuf-root.json"  # what the commands save the TUF root as


def stock_commands(record: ProjectRecord, entry: FileEntry, base_url: str) -> str:
    """The shell commands that verify ``entry`` with stock tools and only what the index at
    ``base_url`` serves: curl the file, its sidecars and the trust material, then
    ``sigstore --trust-config ... verify identity`` and (with a layout) ``in-toto-verify``.
    One command per line (a long one continued with a backslash); values shell-quoted."""
    base = base_url.rstrip("/")
    files = f"{base}/files/{record.name}"
    wheel = entry.filename
    q = shlex.quote
    lines = [f"curl -fsSO {q(f'{files}/{wheel}')}"]
    for kind in sorted(entry.sidecars):
        if not Sidecars.is_directory(kind):
            lines.append(f"curl -fsSO {q(files + '/' + Sidecars.name(wheel, kind))}")
    lines.append(f"curl -fsS -o {STOCK_TRUST_CONFIG} {q(f'{base}/{TRUST_PATH}/trust_config.json')}")
    signer = entry.signer or {}
    if "sigstore" in entry.sidecars and signer.get("identity") and signer.get("issuer"):
        lines += [
            f"sigstore --trust-config {STOCK_TRUST_CONFIG} verify identity --offline \\",
            f"  --bundle {q(Sidecars.name(wheel, 'sigstore'))} \\",
            f"  --cert-identity {q(signer['identity'])} \\",
            f"  --cert-oidc-issuer {q(signer['issuer'])} {q(wheel)}",
        ]
    else:
        lines.append("# no Sigstore bundle or signer identity recorded: nothing to verify")
    layout = entry.sidecars.get("in-toto") or []
    prefix = f"files/{record.name}/{Sidecars.name(wheel, 'in-toto')}/"
    names = sorted(s.path[len(prefix):] for s in layout if s.path.startswith(prefix))
    if names:
        folder = Sidecars.name(wheel, "in-toto")
        lines.append(f"mkdir -p {q(folder)}")
        lines += [f"curl -fsS -o {q(folder + '/' + n)} {q(f'{files}/{folder}/{n}')}"
                  for n in names]
        lines += [
            f"curl -fsS -o {STOCK_OWNER_KEY} {q(f'{base}/{TRUST_PATH}/owner.pub.pem')}",
            f"in-toto-verify --layout {q(folder + '/root.layout')} --link-dir {q(folder)} \\",
            f"  --verification-keys {STOCK_OWNER_KEY}",
        ]
    return "\n".join(lines)


FULL_VERSIONS = 20  # versions shown in full on a project page; older ones as a list
MAX_OLDER = 500  # older files listed (one line each); the Simple API page lists them all


def instance_commands(record: ProjectRecord, entry: FileEntry, base_url: str) -> str:
    """The stock commands that verify ``entry`` through the index's TUF repository: trust
    its root once (``sigstore --instance URL trust-instance``), then ``sigstore --instance
    URL verify identity``, which refreshes the trusted root from URL. "" when the file has
    no bundle or signer identity to verify. Values shell-quoted, as ``stock_commands``."""
    signer = entry.signer or {}
    if "sigstore" not in entry.sidecars or not signer.get("identity") or not signer.get("issuer"):
        return ""
    base = base_url.rstrip("/")
    instance = f"{base}/{TUF_PATH}"
    files = f"{base}/files/{record.name}"
    wheel, bundle = entry.filename, Sidecars.name(entry.filename, "sigstore")
    q = shlex.quote
    return "\n".join([
        "# once per machine: root.json from the operator; from the index it is trust on first use",
        f"curl -fsS -o {STOCK_TUF_ROOT} {q(instance + '/1.root.json')}",
        f"sigstore --instance {q(instance)} trust-instance {STOCK_TUF_ROOT}",
        f"curl -fsSO {q(f'{files}/{wheel}')}",
        f"curl -fsSO {q(f'{files}/{bundle}')}",
        f"sigstore --instance {q(instance)} verify identity \\",
        f"  --bundle {q(bundle)} \\",
        f"  --cert-identity {q(signer['identity'])} \\",
        f"  --cert-oidc-issuer {q(signer['issuer'])} {q(wheel)}",
    ])


def render_project(record: ProjectRecord, base_url: str, about: About) -> str:
    """The project's page: ``about`` (factory.index.about.gather) and its files, the
    newest FULL_VERSIONS versions in full, the next MAX_OLDER files one line each (a
    project with thousands of versions keeps a bounded page)."""
    keys = {v: version_key(v) for v in {f.version for f in record.files}}  # parsed once
    by_name = sorted(record.files, key=lambda f: f.filename)
    files = sorted(by_name, key=lambda f: keys[f.version], reverse=True)
    newest: set[str] = set()  # the newest FULL_VERSIONS versions (the first in ``files``)
    for f in files:
        if len(newest) == FULL_VERSIONS and f.version not in newest:
            break
        newest.add(f.version)
    full = [f for f in files if f.version in newest]
    older = [f for f in files if f.version not in newest]
    return _ENV.get_template("project").render(
        style=_STYLE,
        root="../../",
        r=record,
        a=about,
        files=full,
        older=older[:MAX_OLDER],
        older_more=max(0, len(older) - MAX_OLDER),
        shown=FULL_VERSIONS,
        files_url=f"../../files/{record.name}",
        base_url=base_url.rstrip("/"),
        links=_LINKS,
        suffix=Sidecars.suffix,
        stock_commands=lambda r, f: stock_commands(r, f, base_url),
        is_pure=is_pure,
        not_compared=Equivalence("not compared"),
        instance_commands=lambda r, f: instance_commands(r, f, base_url),
    )
