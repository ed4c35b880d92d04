"""Runs the benchmarks (all, or those named) and writes benchmarks/results/summary.md.

The summary holds the latest result of every benchmark (from benchmarks/results/<name>.json), so
rerunning one benchmark updates its section and keeps the others, each with its own date and load.

`.venv/bin/python -m benchmarks.run [--quick] [embedder query ingest scaleout]` (`make bench`).
Each benchmark also runs on its own: `.venv/bin/python -m benchmarks.<name>_bench`.
The scale benchmark runs only when named: `.venv/bin/python -m benchmarks.run scale [--images N]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import traceback
from collections.abc import Callable

from benchmarks import (
    data_bench,
    embedder_bench,
    ingest_bench,
    litert_bench,
    quality_bench,
    query_bench,
    query_language_bench,
    scale_bench,
    scaleout_bench,
    web_bench,
)
from benchmarks.common import RESULTS_DIR, Result, fmt_load, load_average, load_result, report

BENCHMARKS: dict[str, tuple[Callable[..., Result], object, object]] = {
    "embedder": (embedder_bench.run, embedder_bench.FULL, embedder_bench.QUICK),
    "query": (query_bench.run, query_bench.FULL, query_bench.QUICK),
    "ingest": (ingest_bench.run, ingest_bench.FULL, ingest_bench.QUICK),
    "scaleout": (scaleout_bench.run, scaleout_bench.FULL, scaleout_bench.QUICK),
    "litert": (litert_bench.run, litert_bench.FULL, litert_bench.QUICK),
    "quality": (quality_bench.run, quality_bench.FULL, quality_bench.QUICK),
    "scale": (scale_bench.run, scale_bench.FULL, scale_bench.QUICK),
    "data": (data_bench.run, data_bench.FULL, data_bench.QUICK),
    "query-language": (query_language_bench.run, query_language_bench.FULL, query_language_bench.QUICK),
    "web": (web_bench.run, web_bench.FULL, web_bench.QUICK),
}
# Run only when named: a million images take most of an hour and 20 GB of disk on 2 CPUs.
ON_REQUEST = ("scale",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--images", type=int, help="images the scale benchmark loads (default 1,000,000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    names = args.names or [n for n in BENCHMARKS if n not in ON_REQUEST]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    load_start = load_average()
    failed = []
    for name in names:
        run, full, quick = BENCHMARKS[name]
        if name == "scale" and args.images:
            full, quick = (dataclasses.replace(s, images=args.images) for s in (full, quick))  # type: ignore[type-var]
        print(f"== {name} benchmark{' (quick)' if args.quick else ''} ==", file=sys.stderr, flush=True)
        try:
            report(run(quick if args.quick else full, quick=args.quick))
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
    sections = []
    for name in BENCHMARKS:
        path = RESULTS_DIR / f"{name}{'-quick' if args.quick else ''}.json"
        if name in failed:
            sections.append(f"### {name}\n\nFAILED in the latest run: see its log.\n")
        elif path.is_file():
            sections.append(load_result(path).markdown())
    summary = "\n".join(
        [
            "# Benchmark results" + (" (quick)" if args.quick else ""),
            "",
            f"Latest result of each benchmark. This run: load average (1/5/15 min) {fmt_load(load_start)} "
            f"at start and {fmt_load(load_average())} at end.",
            "",
            *sections,
        ]
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / ("summary-quick.md" if args.quick else "summary.md")
    path.write_text(summary)
    print(f"summary written to {path}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
