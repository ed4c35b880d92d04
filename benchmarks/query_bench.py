"""Text -> image queries against the all-in-one server holding 100,000 images.

The server runs in this process (`imgsearch.app.serve.start`); the gRPC clients run in their own
processes, as backends would, so client and server do not share a GIL. The same query vectors go
straight to the store (`store.search_images`) in the same run: the difference of the p50s is what
gRPC, the servicer and the word lookup add. Recall@10 compares the store's HNSW answers with exact
numpy search over the 100,000 semantic vectors.

Vectors are synthetic but shaped like the real ones: a semantic vector is a weighted mix of one to
three GloVe words (as the ConSE head mixes class-name words) plus noise; a visual vector is a
non-negative 1280-d point near one of 1,000 cluster centres (pooled ReLU6 features are >= 0).

Building the store (upsert + HNSW on both vectors) takes minutes at 100,000 points on 2 cores, so the
built store is cached under benchmarks/results/cache/ and reused by later runs; the build time is
reported when it happens. Run: `.venv/bin/python -m benchmarks.query_bench [--quick]`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    GRPC_OPTIONS,
    RESULTS_DIR,
    Result,
    bench_main,
    bench_settings,
    percentiles,
)

log = logging.getLogger(__name__)

NAME = "query"
DATA_VERSION = 4  # bump when the generated data or the store layout changes (2: int8 quantization,
# 3: the sparse `classes` and `text` vectors, 4: the semantic graph at m=64, ef_construct=800)
VISUAL_DIM = 1280
CLUSTERS = 1000
MIX_VOCAB = 30_000  # image words come from the most frequent words
SEMANTIC_NOISE = 0.05
K = 10
VOCAB_SIZE = 1000  # words collection; text -> image search does not use it


@dataclass(frozen=True)
class Sizes:
    images: int = 100_000
    queries: int = 2000  # sequential queries for 1 client (and for the direct store calls)
    per_client: int = 500  # queries per client when several run at once
    clients: tuple[int, ...] = (1, 8)
    warmup: int = 50
    ef_sweep: tuple[int, ...] = (32, 64, 128, 256)


FULL = Sizes()
QUICK = Sizes(images=5000, queries=300, per_client=100, clients=(1, 4), warmup=20, ef_sweep=(64,))


# -- data -----------------------------------------------------------------------------------------


def image_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def image_index(id: str) -> int:
    return uuid.UUID(id).int - 1


def generate(words, n: int, seed: int, chunk: int = 5000):
    """Yields (start, semantic (c, 50) unit rows, visual (c, 1280), first words) chunk by chunk."""
    rng = np.random.default_rng(seed)
    dim = words.dim
    vocab = words.vectors[:MIX_VOCAB]
    centres = np.abs(rng.normal(0, 1, (CLUSTERS, VISUAL_DIM))) * (rng.random((CLUSTERS, VISUAL_DIM)) < 0.3)
    centres = centres.astype(np.float32)
    for start in range(0, n, chunk):
        c = min(chunk, n - start)
        idx = rng.integers(0, len(vocab), size=(c, 3))
        weights = rng.dirichlet([1.0, 1.0, 1.0], size=c).astype(np.float32)
        weights *= np.arange(3)[None, :] < rng.integers(1, 4, size=(c, 1))  # one to three words
        semantic = np.einsum("ck,ckd->cd", weights, vocab[idx]) + rng.normal(0, SEMANTIC_NOISE, (c, dim))
        semantic /= np.linalg.norm(semantic, axis=1, keepdims=True)
        visual = centres[rng.integers(0, CLUSTERS, size=c)] + np.abs(rng.normal(0, 0.3, (c, VISUAL_DIM)))
        labels = [words.words[i] for i in idx[:, 0]]
        yield start, semantic.astype(np.float32), visual.astype(np.float32), labels


def build_store(data_dir: Path, words, n: int, seed: int = 0) -> dict[str, float]:
    """Writes n images into the embedded store under data_dir (as the server lays it out), optimizes
    once, and saves the semantic matrix for exact search; returns the timings."""
    from imgsearch.vectorstore.edge import EdgeStore
    from imgsearch.vectorstore.types import ImagePoint

    semantic_all = np.zeros((n, words.dim), np.float32)
    store = EdgeStore(data_dir / "qdrant", auto_optimize_points=0)
    try:
        store.ensure_collections(VISUAL_DIM, words.dim, words.dim)
        upsert_s = 0.0
        for start, semantic, visual, labels in generate(words, n, seed):
            semantic_all[start : start + len(semantic)] = semantic
            for s in range(0, len(semantic), 1000):
                t0 = time.perf_counter()
                store.upsert_images(
                    [
                        ImagePoint(
                            image_id(start + j),
                            visual[j],
                            semantic[j],
                            {"uri": f"bench://image/{start + j}", "label": labels[j], "metadata": {}},
                        )
                        for j in range(s, min(s + 1000, len(semantic)))
                    ]
                )
                upsert_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        store.optimize()
        optimize_s = time.perf_counter() - t0
        indexed = store.indexed_vectors()
    finally:
        store.close()
    np.save(data_dir / "semantic.npy", semantic_all)
    timings = {"upsert_s": upsert_s, "upsert_points_per_s": n / upsert_s, "optimize_s": optimize_s}
    (data_dir / "built.json").write_text(json.dumps({"images": n, "indexed_vectors": indexed, **timings}))
    return timings


def cached_store(words, n: int, cache_root: Path | None) -> tuple[Path, dict[str, Any], bool]:
    """(data dir, build info, built now?): a store of n images, built unless a complete one is cached."""
    root = cache_root or RESULTS_DIR / "cache"
    data_dir = root / f"query-store-n{n}-v{DATA_VERSION}"
    marker = data_dir / "built.json"
    if marker.is_file():
        return data_dir, json.loads(marker.read_text()), False
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    log.info("building a store of %d images under %s (cached for later runs)", n, data_dir)
    build_store(data_dir, words, n)
    return data_dir, json.loads(marker.read_text()), True


def query_words(words, count: int, seed: int = 1) -> list[str]:
    """Real, plain words (ranks 100 to 20,000), sampled: what a user might type (not the words a
    query ignores, imgsearch.query.stopwords: a query of one is refused)."""
    from imgsearch.query.stopwords import STOP_WORDS

    plain = [w for w in words.words[100:20_000] if re.fullmatch(r"[a-z]{3,}", w) and w not in STOP_WORDS]
    rng = np.random.default_rng(seed)
    return [plain[i] for i in rng.integers(0, len(plain), size=count)]


def exact_top(semantic: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices of the exact k nearest rows by cosine (rows are unit length), per query."""
    out = np.zeros((len(queries), k), np.int64)
    for s in range(0, len(queries), 256):
        scores = queries[s : s + 256] @ semantic.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out[s : s + 256] = top
    return out


# -- clients --------------------------------------------------------------------------------------


def grpc_client(
    addr: str, texts: list[str], warmup: int, start_at: float, health: bool = False
) -> dict[str, Any]:
    """One client process: warms up, waits for the common start, then SearchText one at a time
    (or, with `health`, the empty Health/Check RPC: the floor of a gRPC round trip here)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from imgsearch.protogen.imagesearch.v1 import query_pb2, query_pb2_grpc

    with grpc.insecure_channel(addr, options=GRPC_OPTIONS) as channel:
        if health:
            check = health_pb2_grpc.HealthStub(channel).Check

            def call(text: str) -> list[str]:
                check(health_pb2.HealthCheckRequest(), timeout=30)
                return []
        else:
            search = query_pb2_grpc.QueryStub(channel).SearchText

            def call(text: str) -> list[str]:
                response = search(query_pb2.SearchTextRequest(text=text, k=K), timeout=30)
                return [h.id for h in response.results]

        for text in texts[:warmup]:
            call(text)
        time.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        cpu0 = time.process_time()
        latencies = []
        first_ids = []
        for text in texts:
            t0 = time.perf_counter()
            ids = call(text)
            latencies.append(time.perf_counter() - t0)
            first_ids.append(ids)
        cpu = time.process_time() - cpu0
        return {"began": began, "ended": time.time(), "latencies": latencies, "ids": first_ids, "cpu_s": cpu}


def run_grpc(
    addr: str, texts: list[str], clients: int, per_client: int, warmup: int, health: bool = False
) -> dict[str, Any]:
    """`clients` processes at once; latencies pooled, throughput over the common window."""
    ctx = get_context("spawn")
    server_cpu0 = time.process_time()  # this process's CPU, all threads: the server's when it runs here
    with ProcessPoolExecutor(max_workers=clients, mp_context=ctx) as pool:
        start_at = time.time() + 3.0 + 0.5 * clients  # after every process has started and warmed up
        jobs = [
            pool.submit(
                grpc_client, addr, _rotate(texts, i * per_client)[:per_client], warmup, start_at, health
            )
            for i in range(clients)
        ]
        outs = [j.result() for j in jobs]
    server_cpu = time.process_time() - server_cpu0  # includes the warm-up calls
    latencies = [x for o in outs for x in o["latencies"]]
    calls = len(latencies)
    window = max(o["ended"] for o in outs) - min(o["began"] for o in outs)
    late = max(o["began"] for o in outs) - start_at
    return {
        "latency_ms": percentiles(latencies),
        "qps": len(latencies) / window,
        "late_start_s": late,
        "ids": outs[0]["ids"],
        "client_cpu_ms_per_call": 1000 * sum(o["cpu_s"] for o in outs) / calls,
        "server_cpu_ms_per_call": 1000 * server_cpu / (calls + warmup * clients),
    }


def run_direct(store, vectors: np.ndarray, threads: int, per_thread: int) -> dict[str, Any]:
    """The same query vectors straight to store.search_images, from `threads` threads."""
    from imgsearch.vectorstore.schema import SEMANTIC

    def worker(offset: int) -> tuple[list[float], list[list[str]]]:
        lat, ids = [], []
        for v in _rotate(list(vectors), offset)[:per_thread]:
            t0 = time.perf_counter()
            hits = store.search_images(v, SEMANTIC, K)
            lat.append(time.perf_counter() - t0)
            ids.append([h.id for h in hits])
        return lat, ids

    barrier_start = time.perf_counter()
    cpu0 = time.process_time()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        outs = list(pool.map(worker, [i * per_thread for i in range(threads)]))
    cpu = time.process_time() - cpu0
    window = time.perf_counter() - barrier_start
    latencies = [x for lat, _ in outs for x in lat]
    return {
        "latency_ms": percentiles(latencies),
        "qps": len(latencies) / window,
        "ids": outs[0][1],
        "cpu_ms_per_query": 1000 * cpu / len(latencies),
    }


def run_servicer(servicer, texts: list[str], count: int) -> dict[str, Any]:
    """QueryServicer.SearchText called in-process (word lookup, search, protobuf; no transport)."""
    from imgsearch.protogen.imagesearch.v1 import query_pb2

    latencies = []
    for text in texts[:count]:
        request = query_pb2.SearchTextRequest(text=text, k=K)
        t0 = time.perf_counter()
        servicer.SearchText(request, None)
        latencies.append(time.perf_counter() - t0)
    return {"latency_ms": percentiles(latencies)}


def ef_sweep(data_dir: Path, vectors: np.ndarray, exact: np.ndarray, efs: tuple[int, ...]) -> list[dict]:
    """Recall@10 and direct p50 at other HNSW search breadths, on the same store (server stopped)."""
    from imgsearch.vectorstore.edge import EdgeStore

    out = []
    for ef in efs:
        store = EdgeStore(data_dir / "qdrant", hnsw_ef=ef, auto_optimize_points=0)
        try:
            run_direct(store, vectors[:20], 1, 20)
            got = run_direct(store, vectors[: len(exact)], 1, len(exact))
        finally:
            store.close()
        out.append(
            {
                "hnsw_ef": ef,
                "recall_at_10": recall_at_k(got["ids"], exact),
                "p50_ms": got["latency_ms"]["p50"],
            }
        )
    return out


def _rotate(items: list, offset: int) -> list:
    offset %= max(1, len(items))
    return items[offset:] + items[:offset]


def recall_at_k(found: list[list[str]], exact: np.ndarray) -> float:
    hits = [
        len({image_index(i) for i in ids} & set(row.tolist())) / K
        for ids, row in zip(found, exact, strict=True)
    ]
    return float(np.mean(hits))


# -- the benchmark --------------------------------------------------------------------------------


def run(sizes: Sizes = FULL, *, quick: bool = False, cache_root: Path | None = None) -> Result:
    """Builds (or reuses) the store, serves it, measures gRPC and direct queries and recall."""
    from imgsearch.app.serve import start, stop
    from imgsearch.embedder.wordspace.wordvectors import load_word_vectors
    from imgsearch.query.service import QueryServicer

    began = time.perf_counter()
    result = Result(NAME, quick)
    settings0 = bench_settings(Path(tempfile.gettempdir()))
    words = load_word_vectors(settings0.glove, settings0.cache_dir)
    data_dir, build, built_now = cached_store(words, sizes.images, cache_root)
    result.details["store_build"] = {**build, "built_this_run": built_now, "data_dir": str(data_dir)}
    semantic = np.load(data_dir / "semantic.npy")

    texts = query_words(words, max(sizes.queries, sizes.per_client * max(sizes.clients)))
    vectors = np.stack([words.embed_text(t).vector for t in texts])
    exact = exact_top(semantic, vectors[: sizes.queries], K)

    settings = bench_settings(data_dir, vocab_size=VOCAB_SIZE)
    served, parts = start(settings, ["all"])
    addr = f"127.0.0.1:{served.port}"
    try:
        store = parts.store
        count = store.count_images()
        if count != sizes.images:
            raise RuntimeError(f"the store holds {count} images, expected {sizes.images}")
        run_direct(store, vectors[: sizes.warmup], 1, sizes.warmup)  # warm caches
        direct1 = run_direct(store, vectors, 1, sizes.queries)
        grpc_runs = {}
        for clients in sizes.clients:
            n = sizes.queries if clients == 1 else sizes.per_client
            grpc_runs[clients] = run_grpc(addr, texts, clients, n, sizes.warmup)
        direct1b = run_direct(store, vectors, 1, sizes.queries)  # again, after: noise check
        servicer = QueryServicer(parts.embedder, store, settings)
        run_servicer(servicer, texts, sizes.warmup)
        in_process = run_servicer(servicer, texts, sizes.queries)
        floor = run_grpc(addr, texts, 1, sizes.queries, sizes.warmup, health=True)
        many = max(sizes.clients)
        direct_many = run_direct(store, vectors, many, sizes.per_client)
    finally:
        stop(served, parts, 1.0)
    sweep = ef_sweep(data_dir, vectors, exact, sizes.ef_sweep)

    recall = recall_at_k(direct1["ids"], exact)
    grpc_recall = recall_at_k(grpc_runs[1]["ids"][: sizes.queries], exact)
    direct_p50 = min(direct1["latency_ms"]["p50"], direct1b["latency_ms"]["p50"])
    g1 = grpc_runs[1]["latency_ms"]
    overhead = g1["p50"] - direct_p50

    result.add("images in the store", sizes.images)
    result.add("gRPC SearchText p50, 1 client", g1["p50"], "ms", "<= 2 ms", g1["p50"] <= 2.0)
    result.add("gRPC SearchText p99, 1 client", g1["p99"], "ms")
    result.add("gRPC throughput, 1 client", grpc_runs[1]["qps"], "queries/s")
    for clients in sizes.clients[1:]:
        g = grpc_runs[clients]
        result.add(
            f"gRPC p50 / p99, {clients} clients",
            f"{g['latency_ms']['p50']:.2f} / {g['latency_ms']['p99']:.2f}",
            "ms",
        )
        result.add(f"gRPC throughput, {clients} clients", g["qps"], "queries/s")
    result.add(
        "direct store.search_images p50 / p99, 1 thread",
        f"{direct1['latency_ms']['p50']:.2f} / {direct1['latency_ms']['p99']:.2f}",
        "ms",
    )
    result.add("direct throughput, 1 thread", direct1["qps"], "queries/s")
    result.add(f"direct throughput, {many} threads", direct_many["qps"], "queries/s")
    result.add("gRPC overhead (p50 gRPC - p50 direct)", overhead, "ms", "<= 1 ms", overhead <= 1.0)
    servicer_p50 = in_process["latency_ms"]["p50"]
    result.add(
        "overhead part: servicer work besides the search (in-process)", servicer_p50 - direct_p50, "ms"
    )
    result.add(
        "overhead part: transport (gRPC p50 - in-process servicer p50)", g1["p50"] - servicer_p50, "ms"
    )
    result.add("empty gRPC round trip (Health/Check) p50, for scale", floor["latency_ms"]["p50"], "ms")
    result.add(
        "CPU per empty call: client / server process",
        f"{floor['client_cpu_ms_per_call']:.2f} / {floor['server_cpu_ms_per_call']:.2f}",
        "ms",
    )
    result.add(
        "CPU per SearchText call, 1 client: client / server process",
        f"{grpc_runs[1]['client_cpu_ms_per_call']:.2f} / {grpc_runs[1]['server_cpu_ms_per_call']:.2f}",
        "ms",
    )
    result.add("gRPC / direct throughput, 1 client", grpc_runs[1]["qps"] / direct1["qps"], "x")
    result.add(
        f"gRPC / direct throughput, {many} clients / threads",
        grpc_runs[many]["qps"] / direct_many["qps"],
        "x",
    )
    # Where the 8-client ratio is bounded: the clients run on the server's cores, so each call costs
    # the cores the server's CPU plus the client's, against the engine's CPU per query in process.
    g_many = grpc_runs[many]
    call_cpu = g_many["server_cpu_ms_per_call"] + g_many["client_cpu_ms_per_call"]
    result.add(
        f"CPU per SearchText call, {many} clients: client / server process",
        f"{g_many['client_cpu_ms_per_call']:.2f} / {g_many['server_cpu_ms_per_call']:.2f}",
        "ms",
    )
    result.add(f"CPU per direct query, {many} threads", direct_many["cpu_ms_per_query"], "ms")
    result.add(
        f"throughput ceiling on shared cores, {many} clients (direct CPU / call CPU)",
        direct_many["cpu_ms_per_query"] / call_cpu,
        "x",
    )
    result.add("recall@10 vs exact search", recall, "", ">= 0.95", recall >= 0.95)
    for row in sweep:
        result.add(
            f"direct p50 / recall@10 at hnsw_ef={row['hnsw_ef']}",
            f"{row['p50_ms']:.2f} ms / {row['recall_at_10']:.3f}",
        )
    if built_now:
        result.add("store build: upsert rate", build["upsert_points_per_s"], "points/s")
        result.add("store build: optimize (HNSW)", build["optimize_s"], "s")
    result.details.update(
        {
            "sizes": sizes.__dict__,
            "grpc": {c: {k: v for k, v in r.items() if k != "ids"} for c, r in grpc_runs.items()},
            "direct_1": {k: v for k, v in direct1.items() if k != "ids"},
            "direct_1_after": {k: v for k, v in direct1b.items() if k != "ids"},
            f"direct_{many}": {k: v for k, v in direct_many.items() if k != "ids"},
            "servicer_in_process": in_process,
            "health_check_grpc": {k: v for k, v in floor.items() if k != "ids"},
            "recall_at_10_direct": recall,
            "recall_at_10_grpc": grpc_recall,
            "hnsw_ef": "default",
            "ef_sweep": sweep,
        }
    )
    result.notes.append(
        "gRPC clients are separate processes on the same 2 cores as the server; direct calls run in the "
        "server's process. The direct p50 is the lower of two runs (before and after the gRPC runs)."
    )
    return result.finish(began)


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, lambda quick: run(QUICK if quick else FULL, quick=quick), argv)


if __name__ == "__main__":
    raise SystemExit(main())
