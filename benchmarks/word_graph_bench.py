"""The images' semantic graph alone: text-query recall@10 against search beam, for graph shapes.

Text queries search the images' semantic vectors, where a million ConSE-like mixtures crowd around
the class words (a query's 10th and 11th nearest differ by 1.6e-4 in cosine at the median), so the
graph's shape decides how much beam a recall costs. This builds that graph alone, in a scratch
Qdrant Edge shard (one vector, the store's word-space settings but for m and ef_construct), from the
scale benchmark's generated images (run `python -m benchmarks.run scale [--images N]` once first),
for each `--graph M:EF_CONSTRUCT`: build time (wall and CPU), resident memory grown by the build and
the graph's files; then for each `--beams` value the recall@10 of the scale benchmark's 40 query
words against exact search, and the in-process search latency (three passes). The served search
adds the RPC, the taxonomic channel and one graph walk per segment (the scale benchmark's figures).
Not part of `benchmarks.run`: `.venv/bin/python -m benchmarks.word_graph_bench [--images N]`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, Result, percentiles, report

NAME = "word_graph"
K = 10
DEFAULT_GRAPHS = ("32:400", "64:800")
DEFAULT_BEAMS = (1000, 2000, 4000)
UPSERT_BATCH = 2000


def source_rows(images: int) -> np.ndarray:
    """The first `images` semantic rows of the smallest cached scale dataset that has them."""
    from benchmarks.scale_bench import open_dataset

    cache = RESULTS_DIR / "cache"
    sizes = sorted(
        (int(p.name.split("-n")[1].split("-")[0]), p)
        for p in cache.glob("scale-v*-n*-s0")
        if (p / "meta.json").is_file()
    )
    for n, folder in sizes:
        if n >= images:
            return open_dataset(folder).semantic[:images]
    raise SystemExit(
        f"no generated scale dataset of {images} images under {cache}: "
        f"run `python -m benchmarks.run scale --images {images}` first"
    )


def query_vectors() -> np.ndarray:
    """The scale benchmark's query words as the embedder embeds them (unit rows)."""
    from benchmarks.scale_bench import QUERY_WORDS, unit_rows
    from imgsearch.config.settings import Settings
    from imgsearch.embedder.runtime import EmbedderRuntime

    runtime = EmbedderRuntime.load(Settings.from_env())
    try:
        return unit_rows(np.array([runtime.embed_text(w).vector for w in QUERY_WORDS]))
    finally:
        runtime.close()


def build(rows: np.ndarray, m: int, ef_construct: int, folder: Path) -> tuple[Any, dict[str, float]]:
    """A one-vector shard of `rows`, optimized: (shard, build figures)."""
    import qdrant_edge as qe

    from benchmarks.scale_bench import disk_usage, memory_of

    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(
            size=rows.shape[1],
            distance=qe.Distance.Cosine,
            on_disk=False,
            hnsw_config=qe.HnswIndexConfig(m=m, ef_construct=ef_construct, full_scan_threshold=10_000),
        ),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1000),
        max_search_threads=1,
    )
    shard = qe.EdgeShard.create(str(folder), config)
    for start in range(0, len(rows), UPSERT_BATCH):
        block = np.asarray(rows[start : start + UPSERT_BATCH], np.float32)
        points = [qe.Point(start + i + 1, v.tolist(), {}) for i, v in enumerate(block)]
        shard.update(qe.UpdateOperation.upsert_points(points))
    before = memory_of(os.getpid())["VmRSS"]
    wall, cpu = time.perf_counter(), time.process_time()
    shard.optimize()
    shard.flush()
    figures = {
        "build_s": time.perf_counter() - wall,
        "build_cpu_s": time.process_time() - cpu,
        "rss_growth_gb": (memory_of(os.getpid())["VmRSS"] - before) / 1024,
        "files_gb": disk_usage(folder)[0] / 1e9,
        "indexed": int(shard.info().indexed_vectors_count),
    }
    return shard, figures


def search(shard: Any, queries: np.ndarray, exact: np.ndarray, beam: int, passes: int = 3) -> dict[str, Any]:
    import qdrant_edge as qe

    params = qe.SearchParams(hnsw_ef=beam, quantization=qe.QuantizationSearchParams(ignore=True))
    hits, latencies = [], []
    for p in range(passes):
        for q, truth in zip(queries, exact, strict=True):
            request = qe.QueryRequest(
                limit=K, query=qe.Query.Nearest(q.tolist()), params=params, with_payload=False
            )
            t0 = time.perf_counter()
            found = shard.query(request)
            latencies.append(time.perf_counter() - t0)
            if p == 0:
                hits.append(len({int(h.id) - 1 for h in found} & {int(x) for x in truth}) / K)
    return {"recall": float(np.mean(hits)), "latency_ms": percentiles(latencies)}


def run(images: int, graphs: list[tuple[int, int]], beams: list[int], quick: bool = False) -> Result:
    from benchmarks.scale_bench import exact_top

    began = time.perf_counter()
    result = Result(NAME, quick)
    rows = source_rows(images)
    queries = query_vectors()
    exact = exact_top(rows, queries, K)
    for m, ef_construct in graphs:
        scratch = Path(tempfile.mkdtemp(prefix="word-graph-"))
        try:
            shard, built = build(rows, m, ef_construct, scratch / "shard")
            label = f"m={m}, ef_construct={ef_construct}"
            result.add(
                f"{label}: build (wall / CPU)", f"{built['build_s']:.0f} / {built['build_cpu_s']:.0f}", "s"
            )
            result.add(f"{label}: resident memory grown by the build", built["rss_growth_gb"], "GB")
            result.add(f"{label}: shard on disk", built["files_gb"], "GB")
            for beam in beams:
                found = search(shard, queries, exact, beam)
                lat = found["latency_ms"]
                result.add(
                    f"{label}, beam {beam}: recall@10",
                    found["recall"],
                    "",
                    ">= 0.95",
                    found["recall"] >= 0.95,
                )
                result.add(
                    f"{label}, beam {beam}: search p50 / p90", f"{lat['p50']:.2f} / {lat['p90']:.2f}", "ms"
                )
                result.details[f"{m}:{ef_construct}:{beam}"] = found
            result.details[f"{m}:{ef_construct}"] = built
            shard.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    result.notes.append(
        f"{len(rows):,} semantic vectors of the scale benchmark's generated images, "
        f"{len(queries)} query words; one graph in one segment, searched in process by one thread"
    )
    return result.finish(began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000, help="semantic vectors in the graph")
    parser.add_argument(
        "--graph", action="append", help=f"M:EF_CONSTRUCT, repeatable (default {' '.join(DEFAULT_GRAPHS)})"
    )
    parser.add_argument(
        "--beams", default=",".join(map(str, DEFAULT_BEAMS)), help="search beams, comma-separated"
    )
    parser.add_argument("--quick", action="store_true", help="100,000 images, one graph")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    specs = args.graph or (DEFAULT_GRAPHS[-1:] if args.quick else DEFAULT_GRAPHS)
    graphs = [(int(m), int(e)) for m, e in (spec.split(":") for spec in specs)]
    images = 100_000 if args.quick else args.images
    report(run(images, graphs, [int(b) for b in args.beams.split(",")], quick=args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
