"""The harness: what a comparison is, how it records samples, and the run of them all.

A comparison is a module of this package that defines ``COMPARISON``. Its
``run(ctx)`` function measures every contender ``ctx.repeats`` times (it
interleaves them, so that drift on the machine hits all sides alike) and records
each sample with ``ctx.record`` or ``ctx.timed``. The harness turns the samples
into medians, minima and maxima, and the declared :class:`RatioSpec` into
ratios of medians checked against their goals.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from factory.config import Settings

T = TypeVar("T")
Better = Literal["lower", "higher"]


class BenchSetupError(Exception):
    """A comparison cannot run here (a peer, a tool or a published index is missing)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


# -- what a comparison declares ---------------------------------------------------

@dataclass(frozen=True)
class RatioSpec:
    """numerator / denominator of the medians of ``metric``, per case (or one case)."""

    metric: str
    numerator: str  # a contender
    denominator: str
    goal: float | None = None
    op: Literal["<=", ">="] = "<="
    case: str | None = None  # None: every case where both sides have samples


@dataclass(frozen=True)
class Options:
    """Knobs from the command line that comparisons may honour."""

    repeats: int | None = None  # None: each comparison's default
    quick: bool = False
    duration: float | None = None  # load tests: seconds per target and server
    connections: int = 50


@dataclass(frozen=True)
class Comparison:
    number: int  # the numbering, which orders the report
    name: str  # what --only takes
    title: str
    run: Callable[[Context], None]
    ratios: tuple[RatioSpec, ...] = ()
    method: str = ""  # how it is measured and why that is fair (markdown)
    repeats: int = 3  # default repeats of a full run
    quick_repeats: int = 1
    chart_metrics: tuple[str, ...] = ("seconds",)


def rotated(items: list[T], i: int) -> list[T]:
    """``items`` starting at the ``i``-th (cyclically): across repeats each contender
    takes each slot, so no side is always first (or always warmed by the one before)."""
    if not items:
        return []
    k = i % len(items)
    return items[k:] + items[:k]


# -- what a run records ---------------------------------------------------------------

@dataclass
class Stats:
    median: float
    min: float
    max: float
    n: int


def stats(samples: Iterable[float]) -> Stats | None:
    values = sorted(samples)
    if not values:
        return None
    return Stats(statistics.median(values), values[0], values[-1], len(values))


@dataclass
class Series:
    """The samples of one metric of one contender in one case."""

    case: str
    contender: str
    metric: str
    unit: str
    better: Better = "lower"
    samples: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.case, self.contender, self.metric)

    @property
    def stats(self) -> Stats | None:
        return stats(self.samples)


@dataclass
class Ratio:
    case: str
    metric: str
    numerator: str
    denominator: str
    value: float | None
    goal: float | None
    op: str
    met: bool | None  # None: no goal, or a side has no samples
    why: str = ""  # why there is no value


def goal_met(value: float, goal: float | None, op: str) -> bool | None:
    if goal is None:
        return None
    return value <= goal if op == "<=" else value >= goal


def ratios(series: list[Series], specs: Iterable[RatioSpec]) -> list[Ratio]:
    """The ratios of medians that ``specs`` ask for, over the cases that were recorded."""
    found = {s.key: s for s in series}
    out: list[Ratio] = []
    for spec in specs:
        cases = [spec.case] if spec.case else _cases(series, spec)
        for case in cases:
            num = found.get((case, spec.numerator, spec.metric))
            den = found.get((case, spec.denominator, spec.metric))
            if num is None or den is None:
                continue  # one side never attempted this case (e.g. a peer without JSON)
            a, b = num.stats, den.stats
            if a is None or b is None or b.median == 0:
                missing = spec.numerator if a is None else spec.denominator
                out.append(Ratio(case, spec.metric, spec.numerator, spec.denominator, None,
                                 spec.goal, spec.op, None, f"no samples of {missing}"))
                continue
            value = a.median / b.median
            out.append(Ratio(case, spec.metric, spec.numerator, spec.denominator, value,
                             spec.goal, spec.op, goal_met(value, spec.goal, spec.op)))
    return out


def _cases(series: list[Series], spec: RatioSpec) -> list[str]:
    cases: list[str] = []
    for s in series:
        if s.metric == spec.metric and s.contender in (spec.numerator, spec.denominator) \
                and s.case not in cases:
            cases.append(s.case)
    return cases


@dataclass
class Outcome:
    """Everything one comparison produced."""

    comparison: Comparison
    series: list[Series] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ratios(self) -> list[Ratio]:
        return ratios(self.series, self.comparison.ratios)

    def find(self, case: str, contender: str, metric: str) -> Series | None:
        return next((s for s in self.series if s.key == (case, contender, metric)), None)


# -- what a comparison is handed ------------------------------------------------------

@dataclass
class Context:
    settings: Settings  # the project's settings; its state dir is only read
    options: Options
    repeats: int
    work: Path  # scratch directory of this comparison, removed afterwards
    cache: Path  # kept between runs: peer venvs
    outcome: Outcome
    log: Callable[[str], None] = print

    @property
    def quick(self) -> bool:
        return self.options.quick

    def series(self, case: str, contender: str, metric: str, unit: str,
               better: Better = "lower") -> Series:
        found = self.outcome.find(case, contender, metric)
        if found is None:
            found = Series(case, contender, metric, unit, better)
            self.outcome.series.append(found)
        return found

    def record(self, case: str, contender: str, metric: str, value: float, unit: str,
               better: Better = "lower") -> None:
        self.series(case, contender, metric, unit, better).samples.append(float(value))

    def fail(self, case: str, contender: str, metric: str, unit: str, reason: str) -> None:
        self.series(case, contender, metric, unit).failures.append(reason)
        self.log(f"  {contender} ({case}) failed: {reason}")

    def timed(self, case: str, contender: str, action: Callable[[], T]) -> T | None:
        """Run ``action``; record its wall time, or its failure (then return None)."""
        started = time.perf_counter()
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 - one side failing must not end the run
            self.fail(case, contender, "seconds", "s", _one_line(exc))
            return None
        seconds = time.perf_counter() - started
        self.record(case, contender, "seconds", seconds, "s")
        self.log(f"  {case}: {contender} {seconds:.2f} s")
        return result

    def note(self, text: str) -> None:
        if text not in self.outcome.notes:
            self.outcome.notes.append(text)

    def describe(self, key: str, value: Any) -> None:
        """Versions, sizes and other facts a reader needs to judge the figures."""
        self.outcome.info[key] = value


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    head = text[-1] if text else ""
    return f"{type(exc).__name__}: {head}"[:400]


# -- discovering and running them ----------------------------------------------------

def discover(package: str = "bench") -> list[Comparison]:
    """Every ``COMPARISON`` defined by a module of ``package``, in issue order."""
    found: list[Comparison] = []
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        if info.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"{package}.{info.name}")
        comparison = getattr(loaded, "COMPARISON", None)
        if isinstance(comparison, Comparison):
            found.append(comparison)
    names = [c.name for c in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"two comparisons are named {', '.join(sorted(duplicates))}")
    return sorted(found, key=lambda c: (c.number, c.name))


def select(comparisons: list[Comparison], only: Iterable[str] | None) -> list[Comparison]:
    if not only:
        return comparisons
    wanted = [w.strip() for w in only if w.strip()]
    known = {c.name: c for c in comparisons} | {str(c.number): c for c in comparisons}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise BenchSetupError(f"unknown comparison(s): {', '.join(unknown)}",
                              "known: " + ", ".join(c.name for c in comparisons))
    chosen = {known[w].name for w in wanted}
    return [c for c in comparisons if c.name in chosen]


def repeats_for(comparison: Comparison, options: Options) -> int:
    if options.repeats is not None:
        return max(1, options.repeats)
    return comparison.quick_repeats if options.quick else comparison.repeats


def run_one(comparison: Comparison, settings: Settings, options: Options, cache: Path,
            log: Callable[[str], None] = print) -> Outcome:
    """Run one comparison in its own scratch directory; a failure becomes ``error``."""
    outcome = Outcome(comparison)
    work = Path(tempfile.mkdtemp(prefix=f"bench-{comparison.name}-"))
    ctx = Context(settings, options, repeats_for(comparison, options), work, cache, outcome, log)
    started = time.perf_counter()
    log(f"[{comparison.number}] {comparison.title} ({ctx.repeats} repeat(s))")
    before = _load()
    try:
        comparison.run(ctx)
    except BenchSetupError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - report it and go on with the next comparison
        outcome.error = _one_line(exc)
        log(traceback.format_exc())
    finally:
        outcome.seconds = time.perf_counter() - started
        shutil.rmtree(work, ignore_errors=True)
        _note_load(outcome, before, _load())
    if outcome.error:
        log(f"  not measured: {outcome.error}")
    return outcome


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _note_load(outcome: Outcome, before: float | None, after: float | None) -> None:
    """Other work on the machine skews every figure: say how busy it was."""
    if before is None or after is None:
        return
    outcome.info["load average (1 min) before / after"] = f"{before:.1f} / {after:.1f}"
    cores = os.cpu_count() or 1
    if before > 1.5 * cores:  # our own previous comparison alone can reach the core count
        outcome.notes.append(f"the machine was already busy when this comparison started "
                             f"(load {before:.1f} on {cores} cores): figures are noisier")


def run_all(comparisons: list[Comparison], settings: Settings, options: Options, cache: Path,
            log: Callable[[str], None] = print) -> list[Outcome]:
    cache.mkdir(parents=True, exist_ok=True)
    return [run_one(c, settings, options, cache, log) for c in comparisons]
