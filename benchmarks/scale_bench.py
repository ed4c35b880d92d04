"""A million images on one machine: the all-in-one server loaded over gRPC and measured over gRPC.

`.venv/bin/python -m benchmarks.scale_bench [--images N] [--quick]` (default N = 1,000,000), or
`.venv/bin/python -m benchmarks.run scale`.

The vectors are made from real CNN features, so that their neighbourhoods look like a real
catalogue's, and the semantic vectors come from the served head:

1. Base images: a class-balanced subset of Fashion-MNIST (products, 10 classes; features cached by
   `embedder.training.features.cached_features`, as training caches them) and the sample photos
   the packages carry (animals, people, objects), all run through the served LiteRT CNN.
2. Each benchmark image mixes two base images' raw pooled features (a dominant one weighted 0.55
   to 0.95, a second one for the rest: a product photographed with something of another), then
   perturbs every channel by a log-normal factor (sigma 0.3: a new photo of a similar product,
   cosine about 0.9 to its source) and clips to ReLU6's range [0, 6]. The features keep the real
   sparsity, scale and channel correlations, and the images form clusters around real pictures as
   a catalogue of similar products does (a harder case for HNSW than uniform noise).
3. Its semantic vector is the served head's answer for those features (the CNN's final layer,
   then ConSE), so the text space has the real head's class structure. The head runs in the
   benchmark process with the server's settings and is checked equal to `EmbedFeatures` over
   gRPC on a sample: a million EmbedFeatures rows would take half an hour on 2 CPUs.
4. Its label is one of 100 departments ("dept-00" .. "dept-99", uniformly): a label filter keeps 1%.

The generated vectors are cached under benchmarks/results/cache/ (5.3 GB at a million) with the
exact-search ground truth they allow. Then: UpsertVectors from two client processes, the time
until the server's background optimize has built the index, the server's memory (VmRSS, PSS,
anonymous memory, from /proc) and the store's disk use sampled throughout, p50/p99 of SearchText,
SimilarImages by id and TagImage by id at 1 and 8 clients, recall@10 of both vector spaces
against exact numpy search (text search: semantic space; similar-by-id: visual space), the same
with a 1% label filter, and the restart time until health says SERVING.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    GRPC_OPTIONS,
    RESULTS_DIR,
    Result,
    ServerProcess,
    in_scratch,
    percentiles,
    report,
)

log = logging.getLogger(__name__)

NAME = "scale"
DATA_VERSION = 1  # bump when the generated vectors change
VISUAL_DIM = 1280
K = 10
DEPARTMENTS = 100  # labels; one of them keeps 1% of the images
FILTER_LABEL = "dept-07"
MIX_WEIGHT = (0.55, 0.95)  # the dominant base image's share
NOISE_SIGMA = 0.3  # log-normal perturbation per channel
RELU6 = 6.0
RETRIES = 3  # of an UpsertVectors call that failed as CANCELLED, UNAVAILABLE or DEADLINE_EXCEEDED
# Words a user might search a catalogue for: the Fashion-MNIST classes and common photo subjects.
QUERY_WORDS = (
    "shirt", "t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "sneaker", "bag", "boot",
    "shoe", "jacket", "skirt", "handbag", "sweater", "jeans", "hat", "dog", "cat", "bird", "horse",
    "car", "bicycle", "flower", "tree", "beach", "mountain", "city", "food", "coffee", "person",
    "woman", "child", "boat", "house", "computer", "phone", "chair", "table", "book",
)  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    images: int = 1_000_000
    fashion_images: int = 1000  # base images from Fashion-MNIST (plus every sample photo)
    batch: int = 256  # points per UpsertVectors call
    upsert_clients: int = 2
    queries: int = 600  # calls per kind for 1 client
    per_client: int = 150  # calls per kind per client with 8 clients
    clients: tuple[int, ...] = (1, 8)
    warmup: int = 20
    recall_queries: int = 200  # per space, unfiltered and filtered
    index_timeout_s: float = 3600.0


FULL = Sizes()
QUICK = Sizes(images=20_000, fashion_images=200, queries=200, per_client=50, recall_queries=100, warmup=10)


def image_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def image_index(id: str) -> int:
    return uuid.UUID(id).int - 1


# -- vectors ------------------------------------------------------------------------------------


def base_features(
    cnn: Any, cache_dir: Path, fashion_images: int, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """Raw pooled CNN features (B, 1280) of real images and their names: a class-balanced
    Fashion-MNIST subset (when the dataset is installed) and every sample photo, run through `cnn`."""
    from imgsearch.embedder.training.datasets import load_fashion_mnist
    from imgsearch.embedder.training.features import cached_features
    from imgsearch.embedder.vision.sample_photos import photo_paths, photo_pixels

    parts, names = [], []
    try:
        fashion = load_fashion_mnist()
    except (FileNotFoundError, OSError) as exc:
        log.warning("Fashion-MNIST not installed (%s): base images are the sample photos only", exc)
    else:
        rng = np.random.default_rng(seed)
        per_class = max(1, fashion_images // len(fashion.classes))
        picked = np.sort(
            np.concatenate(
                [
                    rng.choice(np.flatnonzero(fashion.labels == c), per_class, replace=False)
                    for c in range(len(fashion.classes))
                ]
            )
        )
        subset = fashion.subset(picked)
        parts.append(np.asarray(cached_features(subset, cache_dir, cnn).features, np.float32))
        names += [fashion.classes[label] for label in subset.labels]
    paths = photo_paths()
    if paths:
        features, _ = cnn.run(photo_pixels(paths))
        parts.append(np.asarray(features, np.float32))
        names += [p.stem for p in paths]
    if not parts:
        raise FileNotFoundError("no real images to start from: install Fashion-MNIST or the demo extra")
    return np.concatenate(parts), names


def mix(base: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` new feature vectors, each a perturbed mixture of two base rows, and the index of
    each one's dominant base row (module docstring, step 2)."""
    first = rng.integers(0, len(base), count)
    second = rng.integers(0, len(base), count)
    w = rng.uniform(*MIX_WEIGHT, size=(count, 1)).astype(np.float32)
    features = w * base[first] + (1 - w) * base[second]
    features *= rng.lognormal(0.0, NOISE_SIGMA, features.shape).astype(np.float32)
    return np.clip(features, 0.0, RELU6, out=features), first


def unit_rows(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


@dataclass
class Dataset:
    """The generated images: unit visual and semantic rows (memory-mapped), label numbers, sources."""

    folder: Path
    visual: np.ndarray
    semantic: np.ndarray
    departments: np.ndarray
    sources: list[str]

    def __len__(self) -> int:
        return len(self.departments)


def dataset_dir(cache_root: Path, n: int, seed: int) -> Path:
    return cache_root / f"scale-v{DATA_VERSION}-n{n}-s{seed}"


def open_dataset(folder: Path) -> Dataset:
    meta = json.loads((folder / "meta.json").read_text())
    return Dataset(
        folder,
        np.load(folder / "visual.npy", mmap_mode="r"),
        np.load(folder / "semantic.npy", mmap_mode="r"),
        np.load(folder / "departments.npy"),
        meta["sources"],
    )


def make_dataset(
    folder: Path, n: int, base: np.ndarray, names: list[str], embed_features: Any, seed: int = 0
) -> Dataset:
    """Generates n images into `folder` (unless complete there); `embed_features(features (c, 1280))
    -> semantic (c, dim)` is the served head."""
    if (folder / "meta.json").is_file():
        return open_dataset(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chunk = 4096
    visual = semantic = None
    sources = np.zeros(n, np.int32)
    for start in range(0, n, chunk):
        c = min(chunk, n - start)
        features, first = mix(base, c, rng)
        sem = np.asarray(embed_features(features), np.float32)
        if semantic is None:
            visual = np.lib.format.open_memmap(folder / "visual.npy", "w+", np.float32, (n, VISUAL_DIM))
            semantic = np.lib.format.open_memmap(folder / "semantic.npy", "w+", np.float32, (n, sem.shape[1]))
        visual[start : start + c] = unit_rows(features)
        semantic[start : start + c] = unit_rows(sem)
        sources[start : start + c] = first
        if start // chunk % 10 == 0:
            log.info("generated %d/%d images", start + c, n)
    assert visual is not None and semantic is not None
    visual.flush()
    semantic.flush()
    np.save(folder / "departments.npy", rng.integers(0, DEPARTMENTS, n).astype(np.int16))
    source_names = [names[i] for i in sources]
    (folder / "meta.json").write_text(json.dumps({"images": n, "seed": seed, "sources": source_names}))
    return open_dataset(folder)


def label_of(department: int) -> str:
    return f"dept-{department:02d}"


# -- the server process ---------------------------------------------------------------------------


def memory_of(pid: int) -> dict[str, float]:
    """The process's memory in MB: VmRSS, VmHWM, RssAnon, RssFile (from status) and Pss, Pss_Anon,
    Pss_File, Anonymous (from smaps_rollup); missing fields are left out."""
    out: dict[str, float] = {}
    for name, fields in (
        ("status", ("VmRSS", "VmHWM", "RssAnon", "RssFile")),
        ("smaps_rollup", ("Pss", "Pss_Anon", "Pss_File", "Anonymous")),
    ):
        try:
            text = Path(f"/proc/{pid}/{name}").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in fields:
                out[key] = int(value.split()[0]) / 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_usage(path: Path) -> tuple[int, int, int]:
    """(allocated bytes, apparent bytes, files) under `path`: preallocated files are sparse, so
    their apparent size overstates what the disk holds."""
    allocated = apparent = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:  # removed meanwhile (a segment the optimizer replaced)
                continue
            allocated += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return allocated, apparent, files


class Sampler:
    """Samples a process's memory and a folder's disk use every `interval` seconds, keeping the
    peak of each figure per phase ("upsert", "index", ...) and a time series (every `every`-th
    sample); `on_sample` is called after each background sample (e.g. to save the figures so far)."""

    def __init__(self, pid: int, folder: Path, interval: float = 2.0, every: int = 5, on_sample: Any = None):
        self.pid, self.folder, self.interval, self.every = pid, folder, interval, every
        self.on_sample = on_sample
        self.phase = "start"
        self.peaks: dict[str, dict[str, float]] = {}
        self.series: list[dict[str, Any]] = []
        self._started = time.monotonic()
        self._count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def sample(self) -> dict[str, float]:
        figures = memory_of(self.pid)
        allocated, apparent, files = disk_usage(self.folder)
        figures.update(disk_mb=allocated / 1e6, disk_apparent_mb=apparent / 1e6, files=files)
        peak = self.peaks.setdefault(self.phase, {})
        for key, value in figures.items():
            peak[key] = max(peak.get(key, 0.0), value)
        if self._count % self.every == 0:
            keep = ("VmRSS", "RssAnon", "Pss", "disk_mb")
            point = {"s": round(time.monotonic() - self._started, 1), "phase": self.phase}
            self.series.append(point | {k: round(figures[k], 1) for k in keep if k in figures})
        self._count += 1
        return figures

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, IndexError):  # the process ended: the bench notices
                self.sample()
                if self.on_sample is not None:
                    self.on_sample()


def wait_until_idle(pid: int, quiet_s: float = 4.0, busy_below: float = 0.1, timeout: float = 3600.0,
                    settle_s: float = 6.0) -> float:  # fmt: skip
    """Seconds until the process has used less than `busy_below` of a CPU for `quiet_s` in a row
    (its background optimize is done), waiting at least `settle_s` for the optimize to start
    (the store starts one 3 s after the last write)."""
    start = time.monotonic()
    time.sleep(settle_s)
    samples: list[tuple[float, float]] = []  # (time, CPU seconds)
    while time.monotonic() - start < timeout:
        now = (time.monotonic(), cpu_seconds(pid))
        samples.append(now)
        old = [w for w in samples if now[0] - w[0] >= quiet_s]
        if old:
            then = old[-1]
            if (now[1] - then[1]) / (now[0] - then[0]) < busy_below:
                return then[0] - start
            samples = samples[len(old) - 1 :]
        time.sleep(0.5)
    raise TimeoutError(f"the server was still busy after {timeout:.0f} s")


# -- gRPC clients (each in its own process) ---------------------------------------------------


def _upsert_worker(
    addr: str, folder: str, batches: list[tuple[int, int]], start_at: float, progress: str = ""
) -> dict[str, Any]:
    """Sends the given [start, end) slices of the dataset with UpsertVectors from `start_at` on
    (after this process has started and connected); returns its timings."""
    import grpc

    from imgsearch.protogen.imagesearch.v1 import indexer_pb2, indexer_pb2_grpc

    data = open_dataset(Path(folder))
    _RETRIED = {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    sent, call_s, retries = 0, [], []
    with grpc.insecure_channel(addr, options=GRPC_OPTIONS) as channel:
        upsert = indexer_pb2_grpc.IndexerStub(channel).UpsertVectors
        grpc.channel_ready_future(channel).result(timeout=60)
        time.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        for start, end in batches:
            visual = data.visual[start:end].tolist()
            semantic = data.semantic[start:end].tolist()
            points = [
                indexer_pb2.PointVectors(
                    id=image_id(i),
                    visual=visual[j],
                    semantic=semantic[j],
                    uri=f"bench://scale/{i}",
                    label=label_of(int(data.departments[i])),
                    metadata={"source": data.sources[i]},
                )
                for j, i in enumerate(range(start, end))
            ]
            request = indexer_pb2.UpsertVectorsRequest(points=points)
            t0 = time.perf_counter()
            for attempt in range(RETRIES + 1):  # an upsert by id can be sent again
                try:
                    sent += upsert(request, timeout=900).upserted
                    break
                except grpc.RpcError as exc:
                    if exc.code() not in _RETRIED or attempt == RETRIES:  # picklable, for the parent
                        raise RuntimeError(f"UpsertVectors failed: {exc.code()} {exc.details()}") from None
                    retries.append(f"{exc.code().name}: {exc.details()}")
                    time.sleep(1.0)
            call_s.append(time.perf_counter() - t0)
            if progress:  # how far this worker got, for a run stopped early
                Path(progress).write_text(json.dumps({"sent": sent, "seconds": time.time() - began}))
    return {"sent": sent, "call_s": call_s, "began": began, "ended": time.time(), "retries": retries}


def _query_worker(addr: str, kind: str, items: list[Any], warmup: int, start_at: float) -> dict[str, Any]:
    """Calls `kind` ("text", "semantic", "similar", "tags") once per item, after `warmup` untimed calls and a
    common start time; returns the latencies and the ids each call returned."""
    import grpc

    from imgsearch.protogen.imagesearch.v1 import common_pb2, query_pb2, query_pb2_grpc

    with grpc.insecure_channel(addr, options=GRPC_OPTIONS) as channel:
        stub = query_pb2_grpc.QueryStub(channel)

        def call(item: Any) -> list[str]:
            text_or_id, label = item if isinstance(item, tuple) else (item, "")
            flt = common_pb2.Filter(label=label) if label else None
            if kind in ("text", "semantic"):  # "semantic": the semantic space alone, no lexical channel
                request = query_pb2.SearchTextRequest(text=text_or_id, k=K, filter=flt)
                if kind == "semantic":
                    request.mode = query_pb2.SearchTextRequest.SEMANTIC
                return [h.id for h in stub.SearchText(request, timeout=60).results]
            if kind == "similar":
                r = stub.SimilarImages(
                    query_pb2.SimilarImagesRequest(id=text_or_id, k=K, filter=flt), timeout=60
                )
                return [h.id for h in r.results]
            r = stub.TagImage(query_pb2.TagImageRequest(id=text_or_id, k=K), timeout=60)
            return [h.word for h in r.results]

        for item in items[:warmup]:
            call(item)
        time.sleep(max(0.0, start_at - time.time()))
        latencies, answers = [], []
        began = time.time()
        for item in items:
            t0 = time.perf_counter()
            answers.append(call(item))
            latencies.append(time.perf_counter() - t0)
        return {"latencies": latencies, "answers": answers, "began": began, "ended": time.time()}


def run_clients(
    addr: str, kind: str, items: list[Any], clients: int, per_client: int, warmup: int
) -> dict[str, Any]:
    """`clients` processes calling `kind` at once; pooled latencies and the throughput."""
    with ProcessPoolExecutor(max_workers=clients, mp_context=get_context("spawn")) as pool:
        start_at = time.time() + 3.0 + 0.5 * clients
        jobs = [
            pool.submit(
                _query_worker, addr, kind, _rotate(items, c * per_client)[:per_client], warmup, start_at
            )
            for c in range(clients)
        ]
        outs = [j.result() for j in jobs]
    latencies = [x for o in outs for x in o["latencies"]]
    window = max(o["ended"] for o in outs) - min(o["began"] for o in outs)
    return {
        "latency_ms": percentiles(latencies),
        "qps": len(latencies) / window,
        "answers": outs[0]["answers"],
    }


def _rotate(items: list[Any], offset: int) -> list[Any]:
    if not items:
        return []
    offset %= len(items)
    return items[offset:] + items[:offset]


# -- exact search -------------------------------------------------------------------------------


def exact_top(matrix: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray | None = None,
              exclude: list[int] | None = None, chunk: int = 65536) -> np.ndarray:  # fmt: skip
    """Indices of the k rows of `matrix` (unit rows) nearest each unit query by cosine, over all
    rows or the given `rows`, leaving out `exclude[q]` for query q (the image itself)."""
    queries = np.asarray(queries, np.float32)
    candidates = np.arange(len(matrix)) if rows is None else np.asarray(rows)
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_ids = np.full((len(queries), k), -1, np.int64)
    for s in range(0, len(candidates), chunk):
        ids = candidates[s : s + chunk]
        block = np.asarray(matrix[ids] if rows is not None else matrix[s : s + len(ids)], np.float32)
        scores = queries @ block.T
        if exclude is not None:
            for q, own in enumerate(exclude):
                scores[q, ids == own] = -np.inf
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
        top = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(all_scores, top, axis=1)
        best_ids = np.take_along_axis(all_ids, top, axis=1)
    best_ids[~np.isfinite(best_scores)] = -1  # fewer than k rows (a narrow filter), or excluded
    return best_ids


def exact_lookalikes(data: Dataset, picks: list[int], rows: np.ndarray | None) -> np.ndarray:
    """What SimilarImages by id answers from an exact visual search: the exact visual candidates
    (imgsearch.query.lookalike.candidate_depth of them) reordered by the fused look-alike score,
    the k best (these images carry no class vector, so no face: the kind cosine is the semantic
    one); so the recall measures the index, not the fusion."""
    from imgsearch.query.lookalike import SEMANTIC_WEIGHT, candidate_depth

    queries = np.asarray(data.visual[picks], np.float32)
    pool = exact_top(data.visual, queries, candidate_depth(K, 1000), rows, exclude=picks)
    out = np.full((len(picks), K), -1, np.int64)
    for q, (pick, ids) in enumerate(zip(picks, pool, strict=True)):
        ids = ids[ids >= 0]
        visual = np.asarray(data.visual[ids], np.float32) @ queries[q]
        semantic = np.asarray(data.semantic[ids], np.float32) @ np.asarray(data.semantic[pick], np.float32)
        best = ids[np.argsort(-(visual + SEMANTIC_WEIGHT * semantic), kind="stable")][:K]
        out[q, : len(best)] = best
    return out


def recall_at_k(found: list[list[str]], exact: np.ndarray, k: int = K) -> float:
    """Mean share of the exact k nearest (indices; -1 where fewer exist) among the ids returned."""
    hits = [
        len({image_index(i) for i in ids[:k]} & set(valid)) / max(1, min(k, len(valid)))
        for ids, truth in zip(found, exact, strict=True)
        for valid in [[int(x) for x in truth if x >= 0]]
    ]
    return float(np.mean(hits)) if hits else float("nan")


def recall_with_ties(found: list[list[str]], matrix: np.ndarray, queries: np.ndarray, exact: np.ndarray,
                     k: int = K, eps: float = 1e-6) -> float:  # fmt: skip
    """Recall@k that counts a returned image as right when it scores as high as the exact k-th
    (within `eps`): among images tied with the k-th, which ones make the top k is arbitrary."""
    hits = []
    for ids, truth, q in zip(found, exact, np.asarray(queries, np.float32), strict=True):
        if not np.any(truth >= 0):
            continue
        kth = float(np.min(np.asarray(matrix[np.sort(truth[truth >= 0])], np.float32) @ q))
        rows = np.sort([image_index(i) for i in ids[:k]])
        scores = np.asarray(matrix[rows], np.float32) @ q if len(rows) else np.zeros(0)
        hits.append(min(k, int(np.sum(scores >= kth - eps))) / max(1, min(k, int(np.sum(truth >= 0)))))
    return float(np.mean(hits)) if hits else float("nan")


# -- the run ------------------------------------------------------------------------------------


def run(sizes: Sizes = FULL, quick: bool = False, cache_root: Path | None = None,
        work_dir: Path | None = None, env: dict[str, str] | None = None) -> Result:  # fmt: skip
    started_at = time.perf_counter()
    result = Result(NAME, quick)
    cache_root = cache_root or RESULTS_DIR / "cache"

    def body(scratch: Path) -> Result:
        _measure(sizes, result, cache_root, scratch, env)
        return result

    in_scratch("imgsearch-scale-", work_dir, body)
    return result.finish(started_at)


def _measure(
    sizes: Sizes, result: Result, cache_root: Path, scratch: Path, env: dict[str, str] | None
) -> None:
    from imgsearch.config import Settings

    n = sizes.images
    data_dir = scratch / "data"
    server_env = dict(env if env is not None else os.environ)
    settings = Settings.from_env(server_env)
    server = ServerProcess(data_dir, env=server_env).wait_serving(timeout=600)
    last_saved = [0.0]
    saving = threading.Lock()

    def checkpoint(phase: str = "") -> None:
        """The figures so far, in `<scratch>/partial.json`: a run stopped early keeps them."""
        if not phase and time.monotonic() - last_saved[0] < 30:
            return
        last_saved[0] = time.monotonic()
        with saving, contextlib.suppress(OSError, RuntimeError, ValueError):  # best effort
            progress = {p.stem: json.loads(p.read_text() or "{}") for p in scratch.glob("upsert-*.json")}
            partial = dict(
                result.as_dict(),
                phase_done=phase,
                phase_now=sampler.phase,
                peaks=sampler.peaks,
                series=list(sampler.series),
                upsert_progress=progress,
                load_now=os.getloadavg(),
            )
            (scratch / "partial.json").write_text(json.dumps(partial, indent=1, default=str))

    sampler = Sampler(server.proc.pid, data_dir / "qdrant", on_sample=checkpoint)

    try:
        result.details["settings"] = {
            k: getattr(settings, k)
            for k in (
                "quantization",
                "vectors_on_disk",
                "payload_on_disk",
                "hnsw_m",
                "hnsw_ef_construct",
                "max_segment_mb",
                "optimize_max_pending",
                "hnsw_ef",
            )  # fmt: skip
            if hasattr(settings, k)
        }
        result.details["memory_idle_mb"] = sampler.sample()

        # 1. The vectors (generated once per size and cached).
        t0 = time.perf_counter()
        base, names, head_check = _base_and_head(settings, sizes, server.addr)
        data = make_dataset(dataset_dir(cache_root, n, 0), n, base, names, head_check.pop("embed"))
        result.details["base_images"] = len(base)
        result.details["head_check"] = head_check
        result.details["generate_s"] = round(time.perf_counter() - t0, 1)
        raw_mb = n * (VISUAL_DIM + data.semantic.shape[1]) * 4 / 1e6

        # 2. Upsert over gRPC.
        sampler.phase = "upsert"
        bounds = [(s, min(s + sizes.batch, n)) for s in range(0, n, sizes.batch)]
        workers = max(1, min(sizes.upsert_clients, len(bounds)))
        start_at = time.time() + 5.0 + 2.0 * workers  # once every worker has started
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            jobs = [
                pool.submit(
                    _upsert_worker,
                    server.addr,
                    str(data.folder),
                    bounds[w::workers],
                    start_at,
                    str(scratch / f"upsert-{w}.json"),
                )
                for w in range(workers)
            ]
            outs = [j.result() for j in jobs]
        upsert_s = max(o["ended"] for o in outs) - min(o["began"] for o in outs)
        late_s = max(o["began"] for o in outs) - start_at
        sent = sum(o["sent"] for o in outs)
        calls = percentiles([x for o in outs for x in o["call_s"]])
        rate = sent / upsert_s
        result.add(
            f"upsert over gRPC ({workers} clients, {sizes.batch}/call)",
            rate,
            "images/s",
            ">= 5,000",
            rate >= 5000,
        )
        result.details["upsert"] = {
            "images": sent,
            "seconds": upsert_s,
            "call_ms": calls,
            "late_start_s": late_s,
            "longest_call_s": max(x for o in outs for x in o["call_s"]),
            "retries": [r for o in outs for r in o["retries"]],
        }
        after_upsert = sampler.sample()
        result.details["after_upsert_mb"] = after_upsert
        checkpoint("upsert")

        # 3. Until the background optimize has built the index.
        sampler.phase = "index"
        index_s = wait_until_idle(server.proc.pid, timeout=sizes.index_timeout_s)
        result.add("index built after the last upsert", index_s, "s")
        result.details["index_s"] = index_s
        built = sampler.sample()
        segments = data_dir / "qdrant" / "images" / "segments"
        result.details["segments"] = len(list(segments.iterdir())) if segments.is_dir() else None
        log_text = server.log_path.read_text(errors="replace")
        result.details["optimizes_of_images"] = log_text.count("optimized images")
        checkpoint("index")

        # 4. Queries at 1 and 8 clients.
        sampler.phase = "query"
        rng = np.random.default_rng(1)
        texts = [QUERY_WORDS[i] for i in rng.integers(0, len(QUERY_WORDS), sizes.queries)]
        ids = [image_id(int(i)) for i in rng.integers(0, n, sizes.queries)]
        latency: dict[str, Any] = {}
        for kind, items in (("text", texts), ("similar", ids), ("tags", ids)):
            for clients in sizes.clients:
                per = sizes.queries if clients == 1 else sizes.per_client
                out = run_clients(server.addr, kind, items, clients, per, sizes.warmup)
                latency[f"{kind}_{clients}"] = {"latency_ms": out["latency_ms"], "qps": out["qps"]}
                p50, p99 = out["latency_ms"]["p50"], out["latency_ms"]["p99"]
                goal = kind == "text" and clients == 1
                result.add(f"{_KIND[kind]} p50 / p99, {clients} client{'s' if clients > 1 else ''}",
                           f"{p50:.2f} / {p99:.2f}", "ms", "p50 <= 5 ms" if goal else "",
                           (p50 <= 5.0) if goal else None)  # fmt: skip
        result.details["latency"] = latency
        checkpoint("query")

        # 5. Recall@10 against exact search, without and with the 1% label filter.
        recall = _recall(server.addr, data, sizes.recall_queries, rng)
        for key, label in (("semantic", "text search (semantic)"), ("visual", "similar by id (visual)")):
            value = recall[key]
            result.add(f"recall@10 {label}", value, "", ">= 0.95", value >= 0.95)
            result.add(f"recall@10 {label}, 1% label filter", recall[f"{key}_filtered"], "", ">= 0.95",
                       recall[f"{key}_filtered"] >= 0.95)  # fmt: skip
        result.details["recall"] = recall
        checkpoint("recall")

        steady = sampler.sample()
        sampler.phase = "steady"
        disk_mb = steady["disk_mb"]
        result.add(
            "disk used (allocated)",
            disk_mb / 1e3,
            "GB",
            f"<= 3x raw ({3 * raw_mb / 1e3:.2f} GB)",
            disk_mb <= 3 * raw_mb,
        )
        result.add("disk / raw float32 vectors", disk_mb / raw_mb, "x", "<= 3")
        peak_disk = max(p.get("disk_mb", 0.0) for p in sampler.peaks.values())
        result.add("disk peak while loading", peak_disk / 1e3, "GB")
        anon_peak = max(p.get("RssAnon", 0.0) for p in sampler.peaks.values())
        anon = steady.get("RssAnon", float("nan"))
        result.add("server anonymous memory (RssAnon), steady", anon / 1e3, "GB", "<= 4 GB", anon <= 4096)
        result.add("server anonymous memory, peak", anon_peak / 1e3, "GB", "<= 4 GB", anon_peak <= 4096)
        gb = {key: value / 1e3 for key, value in steady.items()}
        result.add(
            "server VmRSS steady / peak (VmHWM)", f"{gb.get('VmRSS', 0):.2f} / {gb.get('VmHWM', 0):.2f}", "GB"
        )
        pss = f"{gb.get('Pss', 0):.2f} ({gb.get('Pss_Anon', 0):.2f} + {gb.get('Pss_File', 0):.2f})"
        result.add("server PSS steady (anon + file)", pss, "GB")
        result.details["raw_mb"] = raw_mb
        result.details["memory_mb"] = {"after_upsert": after_upsert, "index_built": built, "steady": steady}
        result.details["peaks"] = sampler.peaks
        result.details["series"] = sampler.series
        checkpoint("memory")

        # 6. Restart: SIGTERM, start again on the same data, until SERVING.
        sampler.stop()
        server.stop()
        t0 = time.perf_counter()
        server = ServerProcess(data_dir, env=server_env).wait_serving(timeout=600)
        restart_s = time.perf_counter() - t0
        result.add("restart until SERVING", restart_s, "s", "< 60 s", restart_s < 60)
        first = run_clients(server.addr, "text", texts[:50], 1, 50, 0)
        result.details["after_restart"] = {"restart_s": restart_s, "text_latency_ms": first["latency_ms"],
                                           "memory_mb": memory_of(server.proc.pid)}  # fmt: skip
    finally:
        sampler.stop()
        server.stop()
    result.notes += [
        f"{n:,} images made from {len(base):,} real images' CNN features (Fashion-MNIST subset and the "
        "sample photos): each mixes two of them and perturbs every channel (log-normal, sigma 0.3); semantic "
        "vectors from the served head (its code and weights, checked against EmbedFeatures). "
        "Raw float32 vectors: "
        f"{raw_mb / 1e3:.2f} GB.",
        "Memory from /proc/PID/status and smaps_rollup of the server process; disk is allocated blocks "
        "(preallocated files are sparse), sampled every 2 s.",
    ]


_KIND = {"text": "SearchText", "similar": "SimilarImages by id", "tags": "TagImage by id"}


def _base_and_head(settings: Any, sizes: Sizes, addr: str) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """The base images' features, and the served head run in this process: the server's own
    embedder runtime, loaded with the same settings, so that a million images take a minute and
    not the half hour of as many EmbedFeatures calls (checked equal to EmbedFeatures on a sample)."""
    from imgsearch.embedder.runtime import EmbedderRuntime

    runtime = EmbedderRuntime.load(settings)
    base, names = base_features(runtime.cnn, settings.cache_dir, sizes.fashion_images)
    sample = base[:256]
    served = _head(addr)(sample)
    local = runtime.embed_features(sample)
    diff = float(np.max(np.abs(served - local)))
    if diff > 1e-3:
        raise AssertionError(f"the head in this process differs from the served one by {diff}")
    return base, names, {"embed": runtime.embed_features, "rows_checked": len(sample), "max_abs_diff": diff}


def _head(addr: str) -> Any:
    """The served head over gRPC: features (c, 1280) -> semantic (c, dim), 256 rows per call."""
    import grpc

    from imgsearch.embedder.convert import matrix_from_vectors, vectors_from_matrix
    from imgsearch.protogen.imagesearch.v1 import embedder_pb2, embedder_pb2_grpc

    channel = grpc.insecure_channel(addr, options=GRPC_OPTIONS)
    stub = embedder_pb2_grpc.EmbedderStub(channel)

    def embed(features: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(features), 256):
            request = embedder_pb2.EmbedFeaturesRequest(features=vectors_from_matrix(features[s : s + 256]))
            out.append(matrix_from_vectors(stub.EmbedFeatures(request, timeout=120).semantic))
        return np.concatenate(out)

    return embed


def _recall(addr: str, data: Dataset, count: int, rng: np.random.Generator) -> dict[str, float]:
    """Recall@10 of SearchText (semantic space) and SimilarImages by id (visual space) against
    exact search over the generated vectors, without and with the 1% label filter."""
    import grpc

    from imgsearch.protogen.imagesearch.v1 import embedder_pb2, embedder_pb2_grpc

    n = len(data)
    filtered_rows = np.flatnonzero(data.departments == int(FILTER_LABEL.split("-")[1]))
    with grpc.insecure_channel(addr, options=GRPC_OPTIONS) as channel:
        embed_text = embedder_pb2_grpc.EmbedderStub(channel).EmbedText
        words = [QUERY_WORDS[i % len(QUERY_WORDS)] for i in range(min(count, len(QUERY_WORDS)))]
        text_vectors = unit_rows(
            np.array([embed_text(embedder_pb2.EmbedTextRequest(text=w)).vector for w in words])
        )
    out: dict[str, float] = {}
    for filtered in (False, True):
        rows = filtered_rows if filtered else None
        label = FILTER_LABEL if filtered else ""
        suffix = "_filtered" if filtered else ""
        items = [(w, label) for w in words]
        found = run_clients(addr, "semantic", items, 1, len(items), 0)["answers"]
        exact = exact_top(data.semantic, text_vectors, K, rows)
        out["semantic" + suffix] = recall_at_k(found, exact)
        out["semantic_ties" + suffix] = recall_with_ties(found, data.semantic, text_vectors, exact)
        pool = filtered_rows if filtered else np.arange(n)
        picks = [int(i) for i in rng.choice(pool, min(count, len(pool)), replace=False)]
        found = run_clients(addr, "similar", [(image_id(i), label) for i in picks], 1, len(picks), 0)[
            "answers"
        ]
        queries = np.asarray(data.visual[picks], np.float32)
        exact = exact_lookalikes(data, picks, rows)
        out["visual" + suffix] = recall_at_k(found, exact)
        out["visual_ties" + suffix] = recall_with_ties(found, data.visual, queries, exact)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=None, help=f"images to load (default {FULL.images:,})")
    parser.add_argument("--quick", action="store_true", help=f"small sizes ({QUICK.images:,} images)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep the server's data there (default: a scratch folder removed)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sizes = QUICK if args.quick else FULL
    if args.images:
        sizes = replace(sizes, images=args.images)
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    report(run(sizes, quick=args.quick, work_dir=args.work_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
