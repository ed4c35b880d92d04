"""Export and import rates at 100,000 images against the store's own upsert rate, and the cost of
the namespace filter on search latency with the images split over 100 namespaces.

One run: 100,000 synthetic images shaped like the real ones (benchmarks/query_bench.py makes them),
each in one of 100 namespaces (one of them the default namespace), are upserted straight into an
embedded store (the store's own upsert rate) and optimized. The same query vectors then search the
store directly: without a namespace filter, in one named namespace (about 1,000 images, the tenant
index) and in the default namespace (the images without a namespace key), p50 and p99 of each;
recall@10 of the namespace searches against exact search over that namespace's images. Then the
store is served (`imgsearch serve`, a child process), `imgsearch export FILE --all-namespaces`
writes every record to Parquet, a second, empty server is started and `imgsearch import FILE`
loads it; both commands are child processes, as a user runs them. The import's time includes the
server's own indexing (its AutoOptimizer builds HNSW as the points arrive, and the engine holds
writes while it optimizes), so it is compared with both the bare upsert and upsert + optimize.

Run: `.venv/bin/python -m benchmarks.data_bench [--quick]`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import CLI, Result, ServerProcess, bench_main, bench_settings, percentiles
from benchmarks.query_bench import generate, image_id, image_index, query_words

log = logging.getLogger(__name__)

NAME = "data"
NAMESPACES = 100
K = 10
VOCAB_SIZE = 1000


@dataclass(frozen=True)
class Sizes:
    images: int = 100_000
    queries: int = 1000


FULL = Sizes()
QUICK = Sizes(images=5000, queries=200)


def namespace_of(i: int) -> str:
    """Image i's namespace: ns00 is the default namespace (""), the others are named."""
    n = i % NAMESPACES
    return "" if n == 0 else f"ns{n:02d}"


def build(root: Path, words, n: int) -> tuple[dict[str, float], np.ndarray]:
    """Upserts n images into an embedded store under root and optimizes; (timings, semantic rows)."""
    from imgsearch.vectorstore.edge import EdgeStore
    from imgsearch.vectorstore.types import ImagePoint

    semantic_all = np.zeros((n, words.dim), np.float32)
    store = EdgeStore(root / "qdrant", auto_optimize_points=0)
    try:
        store.ensure_collections(1280, words.dim, words.dim)
        upsert_s = 0.0
        for start, semantic, visual, labels in generate(words, n, seed=0):
            semantic_all[start : start + len(semantic)] = semantic
            for s in range(0, len(semantic), 1000):
                points = [
                    ImagePoint(
                        image_id(start + j),
                        visual[j],
                        semantic[j],
                        {
                            "uri": f"bench://image/{start + j}",
                            "label": labels[j],
                            "metadata": {},
                            "namespace": namespace_of(start + j),
                        },
                    )
                    for j in range(s, min(s + 1000, len(semantic)))
                ]
                t0 = time.perf_counter()
                store.upsert_images(points)
                upsert_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        store.optimize()
        optimize_s = time.perf_counter() - t0
    finally:
        store.close()
    return {"upsert_s": upsert_s, "upsert_per_s": n / upsert_s, "optimize_s": optimize_s}, semantic_all


def search_latencies(root: Path, vectors: np.ndarray, semantic: np.ndarray, sizes: Sizes) -> dict:
    """p50/p99 (ms) of direct store searches: no filter, one named namespace, the default one; and
    the recall@10 of the namespace searches against exact search within the namespace."""
    from imgsearch.vectorstore.edge import EdgeStore

    n = len(semantic)
    members = {ns: np.array([i for i in range(n) if namespace_of(i) == ns]) for ns in ("", "ns37")}
    store = EdgeStore(root / "qdrant", auto_optimize_points=0)
    out: dict = {}
    try:
        cases = {"unfiltered": None, "named namespace": "ns37", "default namespace": ""}
        for v in vectors[: sizes.queries]:  # a full pass first: the store was just opened (cold pages)
            for ns in cases.values():
                store.search_images(v, "semantic", K, namespace=ns)
        times: dict[str, list[float]] = {c: [] for c in cases}
        found: dict[str, list[list[str]]] = {c: [] for c in cases}
        for v in vectors[: sizes.queries]:  # the cases interleaved, so load changes hit each alike
            for case, ns in cases.items():
                t0 = time.perf_counter()
                hits = store.search_images(v, "semantic", K, namespace=ns)
                times[case].append(time.perf_counter() - t0)
                found[case].append([h.id for h in hits])
        for case, ns in cases.items():
            out[case] = percentiles(times[case])
            if ns is not None:
                rows = members[ns]
                scores = vectors[: sizes.queries] @ semantic[rows].T
                exact = rows[np.argsort(-scores, axis=1)[:, :K]]
                hits = [
                    len({image_index(i) for i in ids} & set(row.tolist())) / K
                    for ids, row in zip(found[case], exact, strict=True)
                ]
                out[case]["recall_at_10"] = float(np.mean(hits))
    finally:
        store.close()
    return out


def cli(addr: str, *args: str) -> dict:
    env = {**os.environ, "IMGSEARCH_ADDR": addr}
    done = subprocess.run([CLI, *args, "--json", "--timeout", "600"], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"imgsearch {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    return json.loads(done.stdout)


def run(sizes: Sizes = FULL, *, quick: bool = False) -> Result:
    from imgsearch.embedder.wordspace.wordvectors import load_word_vectors

    began = time.perf_counter()
    result = Result(NAME, quick)
    settings = bench_settings(Path(tempfile.gettempdir()))
    words = load_word_vectors(settings.glove, settings.cache_dir)
    texts = query_words(words, sizes.queries)
    vectors = np.stack([words.embed_text(t).vector for t in texts]).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="imgsearch-data-bench-") as scratch:
        root = Path(scratch)
        timings, semantic = build(root / "a", words, sizes.images)
        result.details["build"] = timings
        latency = search_latencies(root / "a", vectors, semantic, sizes)
        result.details["search_ms"] = latency
        env = {**os.environ, "IMGSEARCH_VOCAB_SIZE": str(VOCAB_SIZE)}
        export_file = root / "all.parquet"
        with ServerProcess(root / "a", env=env) as a:
            a.wait_serving(timeout=900)
            exported = cli(a.addr, "export", str(export_file), "--all-namespaces")
        with ServerProcess(root / "b", env=env) as b:
            b.wait_serving(timeout=900)
            imported = cli(b.addr, "import", str(export_file))
            again = cli(b.addr, "import", str(export_file))
        result.details.update(export=exported, import_=imported, import_again=again)
        result.details["file_bytes"] = export_file.stat().st_size
    n = sizes.images
    upsert = timings["upsert_per_s"]
    export_rate = exported["exported"] / exported["seconds"]
    import_rate = imported["imported"] / imported["seconds"]
    indexed = n / (timings["upsert_s"] + timings["optimize_s"])
    result.add("store upsert (direct, 1,000 per call)", upsert, "records/s")
    result.add("store upsert + HNSW optimize (direct)", indexed, "records/s")
    result.add("export (imgsearch export, gRPC, Parquet)", export_rate, "records/s")
    result.add("import (imgsearch import, gRPC, Indexer)", import_rate, "records/s")
    result.add("export / store upsert", export_rate / upsert, "x")
    result.add("import / store upsert", import_rate / upsert, "x")
    result.add("import / store upsert + optimize", import_rate / indexed, "x")
    result.add(
        "records exported / imported",
        f"{exported['exported']} / {imported['imported']}",
        "",
        f"{n} / {n}",
        exported["exported"] == n == imported["imported"],
    )
    result.add("importing the file again: skipped", again["skipped"], "", f"{n}", again["skipped"] == n)
    base = latency["unfiltered"]["p50"]
    for case in ("named namespace", "default namespace"):
        ratio = latency[case]["p50"] / base
        result.add(f"search p50, {case} / unfiltered", ratio, "x", "<= 1.2", ratio <= 1.2)
        result.add(f"search recall@10, {case}", latency[case]["recall_at_10"])
    result.add("search p50 unfiltered", base, "ms")
    result.notes.append(
        f"{n:,} images over {NAMESPACES} namespaces (one the default); export file "
        f"{result.details['file_bytes'] / 1e6:.0f} MB; store optimize took {timings['optimize_s']:.0f} s"
    )
    return result.finish(began)


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, lambda quick: run(QUICK if quick else FULL, quick=quick), argv)


if __name__ == "__main__":
    raise SystemExit(main())
