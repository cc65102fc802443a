"""Reports for people and machines: a Rich table, JSON, and a standalone HTML page.

The HTML report is what a compliance reviewer files: the verdict first, then
what was trusted (trusted root and owner key fingerprints, identity policy),
when, and every check of every artifact with its explanation. It is one file
with inline CSS and no scripts, so it can be archived and opened anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from factory._internal.atomic import write_shared
from factory.errors import printable
from factory.verify.model import FAIL, PASS, Report

if TYPE_CHECKING:  # Rich is imported by what prints a table: not by a JSON report
    from rich.console import Console
    from rich.table import Table

_MARKS = {PASS: ("✓", "green"), FAIL: ("✗", "bold red"), "skip": ("–", "dim")}


def _columns(report: Report) -> list[str]:
    present = {c.name for a in report.artifacts for c in a.checks}
    return [name for name in report.titles if name in present]


def table(report: Report) -> Table:
    from rich.table import Table
    from rich.text import Text

    columns = _columns(report)
    result = Table(title=Text(f"factory verify {printable(report.target)}"),
                   title_justify="left")
    result.add_column("artifact", overflow="fold")
    for name in columns:
        result.add_column(name, justify="center")
    for artifact in report.artifacts:
        cells = []
        for name in columns:
            check = artifact.check(name)
            mark, style = _MARKS[check.status] if check else ("", "")
            cells.append(Text(mark, style=style))
        result.add_row(Text(printable(artifact.label), style="" if artifact.ok else "red"),
                       *cells)
    return result


def print_report(report: Report, console: Console | None = None, verbose: bool = False) -> None:
    """The table, every failure with its reason, and the verdict."""
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    console.print(table(report))
    for artifact in report.artifacts:
        shown = artifact.checks if verbose else artifact.failures()
        for check in shown:
            style = "red" if check.failed else "dim"
            console.print(Text(printable(f"{artifact.label}: {check.name}: {check.message}"),
                               style=style))
        for note in artifact.notes:
            console.print(Text(printable(f"{artifact.label}: note: {note}"), style="yellow"))
    for check in report.index if verbose else report.index_failures():
        console.print(Text(printable(f"index: {check.name}: {check.message}"),
                           style="red" if check.failed else "dim"))
    summary = report.summary
    rate = summary["artifacts_per_second"]
    word, style = verdict(report)
    console.print(Text(word, style=style), Text(printable(
        f" {summary['passed']}/{summary['verified']} artifacts passed"
        + (f", {len(summary['ignored'])} ignored on request" if summary["ignored"] else "")
        + _index_phrase(report)
        + " in "
        f"{report.seconds:.2f} s" + (f" ({rate}/s)" if rate else "")
        + f"; trusted root {report.trust.trusted_root} "
          f"(sha256 {report.trust.trusted_root_sha256[:16]}…)"
        + _served_phrase(report)
        + skips_line(report))))


_PIN = {"trusted root": "--trusted-root", "owner key": "--owner-key", "answers key": "--key"}


def _served_phrase(report: Report) -> str:
    """Which trust files came from the verified index itself, and the option that pins
    each (a run that pinned the root but not the owner key is told about the key)."""
    if not report.trust.from_index:
        return ""
    served = report.trust.served or list(_PIN)
    return (f"; trust SERVED BY THE INDEX ITSELF, not pinned: the {' and the '.join(served)}"
            " (it shows the files are what this index signed; pin keys/ or "
            f"{' and '.join(_PIN.get(s, s) for s in served)} to know it is the index meant)")


def _index_phrase(report: Report) -> str:
    """The index checks in the summary: sound only when every one ran and passed."""
    if report.index_failures():
        return f", {len(report.index_failures())} index problem(s)"
    if report.index_sound:
        return ", index sound"
    return ", index not checked" if report.index else ""


def verdict(report: Report) -> tuple[str, str]:
    """PASS only when every check ran and passed; INCOMPLETE when none failed but one did
    not run although nobody asked to leave it out (the summary names it); else FAIL."""
    if not report.ok:
        return "FAIL", "bold red"
    return ("INCOMPLETE", "bold yellow") if report.skipped else ("PASS", "bold green")


def skips_line(report: Report) -> str:
    """What did not run, and why: "; NOT RUN: advisories (NOT CHECKED: ...)"."""
    out = ""
    if report.skipped:
        out += "; NOT RUN: " + "; ".join(f"{name} ({why})"
                                         for name, why in report.skipped.items())
    if report.requested:
        out += "; skipped on request: " + ", ".join(report.requested)
    return out


def report_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n"


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Verification report: {{ r.target }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:75em;color:#1b1f24;padding:0 1em}
h1{font-size:1.5em} h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.5em 0}
td,th{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f6f8fa} code{font-size:.92em;word-break:break-all}
.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:600}.skip{color:#6e7781}
.verdict{font-size:1.3em;padding:.6em 1em;border-radius:6px;display:inline-block}
.ok{background:#dafbe1}.bad{background:#ffebe9}
.artifact{margin:1.2em 0;padding:.2em 1em;border:1px solid #d0d7de;border-radius:6px}
.artifact.failed{border-color:#cf222e}
</style></head><body>
<h1>Verification report</h1>
<p class="verdict {{ 'ok' if r.ok and not r.skipped else 'bad' }}">{{ word }}:
{{ s.passed }} of {{ s.verified }} artifacts passed every check that ran
{%- if s.ignored %}, {{ s.ignored|length }} ignored on request{% endif %}
{%- if s.index_failed %}; {{ s.index_failed }} index problem(s)
{%- elif s.index_sound %}; index sound{% elif r.index %}; index not checked{% endif %}
{{- skips }}</p>
<table>
<tr><th>target</th><td><code>{{ r.target }}</code></td></tr>
<tr><th>verified</th><td>{{ r.started }} to {{ r.finished }} (UTC),
{{ '%.2f'|format(r.seconds) }} s{% if s.artifacts_per_second %},
{{ s.artifacts_per_second }} artifacts/s{% endif %}</td></tr>
<tr><th>index</th><td><code>{{ t.index }}</code></td></tr>
<tr><th>tool</th><td>{{ r.tool }}, offline</td></tr>
</table>

<h2>What was trusted</h2>
<table>
<tr><th>trusted root</th><td><code>{{ t.trusted_root }}</code><br>
sha256 <code>{{ t.trusted_root_sha256 }}</code></td></tr>
{% for ca in t.certificate_authorities %}
<tr><th>certificate authority</th>
<td>{{ ca.subject }}<br>sha256 <code>{{ ca.sha256 }}</code></td></tr>
{% endfor %}
<tr><th>transparency log IDs</th>
<td>{% for l in t.transparency_logs %}<code>{{ l }}</code><br>{% endfor %}</td></tr>
<tr><th>CT log IDs</th><td>{% for l in t.ct_logs %}<code>{{ l }}</code><br>{% endfor %}</td></tr>
<tr><th>in-toto owner key</th><td><code>{{ t.owner_key }}</code><br>
SPKI sha256 <code>{{ t.owner_key_spki_sha256 }}</code></td></tr>
<tr><th>signing identity</th>
<td><code>{{ t.identity }}</code> issued by <code>{{ t.issuer }}</code></td></tr>
<tr><th>allowed builder ids</th>
<td>{% for b in t.builder_ids %}<code>{{ b }}</code><br>{% endfor %}</td></tr>
<tr><th>advisory database</th>
<td>{{ t.advisories or 'none configured (advisories not checked)' }}</td></tr>
</table>

<h2>Checks</h2>
<table>{% for name in columns %}
<tr><th>{{ name }}</th><td>{{ titles[name] }}</td></tr>{% endfor %}</table>

<h2>Summary</h2>
<table><tr><th>artifact</th>{% for name in columns %}<th>{{ name }}</th>{% endfor %}</tr>
{% for a in r.artifacts %}<tr><td><a href="#a{{ loop.index }}">{{ a.label }}</a></td>
{% for name in columns %}{% set c = a.check(name) %}<td class="{{ c.status if c else '' }}">
{{ marks[c.status] if c else '' }}</td>{% endfor %}</tr>{% endfor %}
</table>

{% if r.index %}
<h2>Index</h2>
<table>{% for c in r.index %}
<tr><th>{{ c.name }}</th><td class="{{ c.status }}">{{ c.status }}</td>
<td>{{ c.message }}</td></tr>{% endfor %}</table>
{% endif %}

<h2>Artifacts</h2>
{% for a in r.artifacts %}
<div class="artifact {{ '' if a.ok else 'failed' }}" id="a{{ loop.index }}">
<h3>{{ a.label }}
<span class="{{ 'pass' if a.ok else 'fail' }}">{{ 'pass' if a.ok else 'FAIL' }}</span></h3>
<p>{% if a.filename %}file <code>{{ a.filename }}</code>{% endif %}
{% if a.sha256 %}<br>sha256 <code>{{ a.sha256 }}</code>{% endif %}</p>
<table>{% for c in a.checks %}
<tr><th>{{ c.name }}</th><td class="{{ c.status }}">{{ c.status }}</td>
<td>{{ c.message }}</td></tr>{% endfor %}</table>
{% for n in a.notes %}<p>note: {{ n }}</p>{% endfor %}
</div>
{% endfor %}
</body></html>
"""

def html(report: Report) -> str:
    import jinja2  # only for --html: the table and --json print without it (about 20 ms)

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_HTML).render(
        r=report, s=report.summary, t=report.trust, columns=_columns(report),
        titles=report.titles, marks={PASS: "✓", FAIL: "✗", "skip": "–"},
        word=verdict(report)[0], skips=skips_line(report),
    )


def write_html(report: Report, path: Path) -> Path:
    write_shared(path, html(report).encode("utf-8"))  # to share: the umask's mode
    return path
