"""Reports: one JSON document per run, and the markdown table and PNG chart made from it.

Everything is rendered from the JSON document, so an old result can be
re-rendered, and the markdown never says anything the data does not hold.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.harness import Options, Outcome
from bench.machine import one_line
from factory._internal.atomic import write_bytes, write_json, write_text

SCHEMA = 1
HEADLINE = ("Ratios are the headline: both sides ran in the same run on the same machine. "
            "Absolute figures are specific to the machine below; compare them only with "
            "figures from the same machine.")


def document(outcomes: list[Outcome], machine: dict[str, Any], options: Options,
             timestamp: str, seconds: float) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "timestamp": timestamp,
        "seconds": round(seconds, 1),
        "machine": machine,
        "options": asdict(options),
        "comparisons": [_comparison(o) for o in outcomes],
    }


def _comparison(outcome: Outcome) -> dict[str, Any]:
    c = outcome.comparison
    return {
        "number": c.number,
        "name": c.name,
        "title": c.title,
        "method": c.method,
        "chart_metrics": list(c.chart_metrics),
        "seconds": round(outcome.seconds, 1),
        "error": outcome.error,
        "notes": outcome.notes,
        "info": outcome.info,
        "series": [
            {"case": s.case, "contender": s.contender, "metric": s.metric, "unit": s.unit,
             "better": s.better, "samples": s.samples, "failures": s.failures,
             "stats": asdict(st) if (st := s.stats) else None}
            for s in outcome.series
        ],
        "ratios": [asdict(r) for r in outcome.ratios],
    }


# -- formatting -------------------------------------------------------------------

def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "B":
        for size, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(value) >= size:
                return f"{value / size:.2f} {name}"
        return f"{value:.0f} B"
    if unit == "count":
        return f"{value:.0f}"
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    if unit in ("s", "ms"):
        return f"{value:.3g} {unit}" if abs(value) < 10 else f"{value:.1f} {unit}"
    return f"{value:.3g} {unit}"


def fmt_ratio(ratio: dict[str, Any]) -> tuple[str, str, str]:
    value = "–" if ratio["value"] is None else f"{ratio['value']:.2f}"
    goal = "–" if ratio["goal"] is None else f"{ratio['op']} {ratio['goal']:g}"
    met = {True: "yes", False: "**no**", None: "–"}[ratio["met"]]
    if ratio["value"] is None:
        met = ratio.get("why") or "–"
    return value, goal, met


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# Benchmarks, {doc['timestamp']}", "", HEADLINE, "",
             f"Machine: {one_line(doc['machine'])}.", "",
             f"Whole run: {doc['seconds']:.0f} s. Options: " + ", ".join(
                 f"{k}={v}" for k, v in sorted(doc["options"].items())
                 if v not in (None, False)) + ".",
             "", "## Ratios (of medians)", "",
             _row(["#", "comparison", "case", "metric", "ratio", "value", "goal", "met"]),
             _row(["---"] * 8)]
    for comp in doc["comparisons"]:
        for r in comp["ratios"]:
            value, goal, met = fmt_ratio(r)
            lines.append(_row([str(comp["number"]), comp["title"], r["case"], r["metric"],
                               f"{r['numerator']} / {r['denominator']}", value, goal, met]))
    lines += ["", "## Measurements (machine-specific)", "",
              _row(["#", "case", "contender", "metric", "median", "min", "max", "n",
                    "failures"]),
              _row(["---"] * 9)]
    for comp in doc["comparisons"]:
        for s in comp["series"]:
            st = s["stats"] or {}
            lines.append(_row([str(comp["number"]), s["case"], s["contender"], s["metric"],
                               fmt(st.get("median"), s["unit"]), fmt(st.get("min"), s["unit"]),
                               fmt(st.get("max"), s["unit"]), str(st.get("n", 0)),
                               "; ".join(s["failures"]) or "–"]))
    lines += ["", *_details(doc)]
    return "\n".join(lines).rstrip() + "\n"


def _details(doc: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for comp in doc["comparisons"]:
        lines += [f"## {comp['number']}. {comp['title']}", ""]
        if comp["error"]:
            lines += [f"**Not measured:** {comp['error']}", ""]
        if comp["method"]:
            lines += [comp["method"].strip(), ""]
        for key, value in comp["info"].items():
            lines.append(f"- {key}: {value}")
        for note in comp["notes"]:
            lines.append(f"- {note}")
        lines += ["", f"({comp['seconds']:.0f} s)", ""]
    return lines


# -- chart ------------------------------------------------------------------------

def chart(doc: dict[str, Any], path: Path) -> bool:
    """A PNG: the ratios against their goals, then each comparison's medians (min-max bars).

    Returns False when matplotlib is not installed (the table and JSON still stand).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = _panels(doc)
    count = sum(1 for c in doc["comparisons"] for r in c["ratios"] if r["value"] is not None)
    heights = [1.0 + 0.28 * max(count, 1), *(0.9 + 0.3 * len(rows) for _, _, rows in panels)]
    fig, axes = plt.subplots(len(heights), 1, figsize=(11, 1.0 + sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    _ratio_panel(axes[0][0], doc)
    for ax, (title, unit, rows) in zip([a[0] for a in axes[1:]], panels, strict=True):
        _series_panel(ax, title, unit, rows)
    fig.suptitle(f"Benchmarks {doc['timestamp']} — {one_line(doc['machine'])}", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    from io import BytesIO

    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())
    return True


def _panels(doc: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    panels = []
    for comp in doc["comparisons"]:
        for metric in comp["chart_metrics"]:
            rows = [s for s in comp["series"] if s["metric"] == metric and s["stats"]]
            if rows:
                title = f"{comp['number']}. {comp['title']}: {metric} (machine-specific)"
                panels.append((title, rows[0]["unit"], rows))
    return panels


def _ratio_panel(ax: Any, doc: dict[str, Any]) -> None:
    labels, values, goals, colours = [], [], [], []
    for comp in doc["comparisons"]:
        for r in comp["ratios"]:
            if r["value"] is None:
                continue
            labels.append(f"{comp['number']}. {r['case']}: {r['numerator']} / "
                          f"{r['denominator']} ({r['metric']})")
            values.append(r["value"])
            goals.append(r["goal"])
            colours.append({True: "tab:green", False: "tab:red", None: "tab:gray"}[r["met"]])
    ax.set_title("Ratios of medians (the headline; black tick: goal; green: met, red: missed, "
                 "grey: no goal)", fontsize=9)
    if not values:
        ax.text(0.5, 0.5, "no ratios", ha="center", va="center")
        return
    positions = list(range(len(values)))
    ax.barh(positions, values, color=colours)
    for y, value in zip(positions, values, strict=True):
        ax.text(value, y, f" {value:.2f}", va="center", fontsize=7)
    for y, goal in zip(positions, goals, strict=True):
        if goal is not None:
            ax.plot([goal, goal], [y - 0.4, y + 0.4], color="black", linewidth=2)
    ax.axvline(1.0, color="gray", linestyle=":", linewidth=1)
    ax.set_yticks(positions, labels, fontsize=7)
    ax.invert_yaxis()
    ax.tick_params(axis="x", labelsize=7)


def _series_panel(ax: Any, title: str, unit: str, rows: list[dict[str, Any]]) -> None:
    scale, unit = (1 << 20, "MiB") if unit == "B" else (1, unit)
    labels = [f"{r['case']}: {r['contender']}" for r in rows]
    medians = [r["stats"]["median"] / scale for r in rows]
    lows = [(r["stats"]["median"] - r["stats"]["min"]) / scale for r in rows]
    highs = [(r["stats"]["max"] - r["stats"]["median"]) / scale for r in rows]
    positions = list(range(len(rows)))
    ax.barh(positions, medians, xerr=[lows, highs], color="tab:blue", capsize=3)
    ax.set_yticks(positions, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(unit, fontsize=7)
    ax.tick_params(axis="x", labelsize=7)


# -- writing it all -----------------------------------------------------------------

def write(doc: dict[str, Any], directory: Path) -> dict[str, Path]:
    """<timestamp>.json, .md and .png in ``directory`` (each written atomically)."""
    stem = directory / doc["timestamp"]
    paths = {"json": stem.with_suffix(".json"), "md": stem.with_suffix(".md")}
    write_json(paths["json"], doc)
    write_text(paths["md"], markdown(doc))
    png = stem.with_suffix(".png")
    if chart(doc, png):
        paths["png"] = png
    for path in paths.values():
        path.chmod(0o644)  # results are meant to be read (and committed), not private
    return paths
