"""`python -m bench.run`: run the comparisons, write bench/results/<timestamp>.{json,md,png},
print the table.

    python -m bench.run                              # everything (about 15 min on 2 cores)
    python -m bench.run --quick                      # a smoke run (a few minutes)
    python -m bench.run --only cold_build,install --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import harness, machine, peers, report
from factory.config import load_settings

RESULTS = Path(__file__).with_name("results")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated names or numbers (see --list)")
    parser.add_argument("--repeats", type=int, help="runs per contender (default: per "
                        "comparison, 3 for most; 1-2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and shorter load windows: a smoke run")
    parser.add_argument("--duration", type=float,
                        help="load tests: seconds of load per target and server (default 30, "
                        "6 with --quick)")
    parser.add_argument("--connections", type=int, default=50, help="load tests: connections")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where reports go")
    parser.add_argument("--list", action="store_true", help="list the comparisons and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    comparisons = harness.discover()
    if args.list:
        for c in comparisons:
            print(f"{c.number}. {c.name:14} {c.title}")
        return 0
    try:
        chosen = harness.select(comparisons, args.only.split(",") if args.only else None)
    except harness.BenchSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = harness.Options(repeats=args.repeats, quick=args.quick, duration=args.duration,
                              connections=args.connections)
    settings = load_settings()
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    outcomes = harness.run_all(chosen, settings, options, peers.cache_dir(),
                               log=lambda m: print(m, file=sys.stderr, flush=True))
    doc = report.document(outcomes, machine.describe(), options, stamp,
                          time.perf_counter() - started)
    paths = report.write(doc, args.results)
    print(report.markdown(doc))
    print("written: " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
