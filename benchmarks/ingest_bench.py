"""Ingestion of real JPEGs end to end against the embedder's raw throughput, in the same run.

The all-in-one server runs in this process. Each round streams `images` unique JPEGs (real photos,
made unique by trailing bytes, so none is skipped as a duplicate) through Indexer.Ingest: hashing,
duplicate check, decoding, the CNN, the head and the upsert into Qdrant Edge. The baseline, right
before each round, is the same server's CNN (`Cnn.run`) on already-decoded tensors at batch 32. The
figure is the median ratio of the rounds. Run: `.venv/bin/python -m benchmarks.ingest_bench [--quick]`.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    GRPC_OPTIONS,
    Result,
    bench_main,
    bench_settings,
    decoded_batch,
    in_scratch,
    unique_jpegs,
)
from benchmarks.embedder_bench import raw_throughput

log = logging.getLogger(__name__)

NAME = "ingest"
GOAL = 0.8
VOCAB_SIZE = 1000  # the words collection is loaded at start; ingestion does not use it


@dataclass(frozen=True)
class Sizes:
    images: int = 512  # per round
    rounds: int = 4


FULL = Sizes()
QUICK = Sizes(images=64, rounds=1)


def ingest(stub, images: list[bytes]) -> dict[str, Any]:
    """Streams the images through Ingest; images/s and the CPU this process used per image."""
    from prometheus_client import REGISTRY

    from imgsearch.protogen.imagesearch.v1 import indexer_pb2

    def requests():
        for i, data in enumerate(images):
            yield indexer_pb2.IngestRequest(image=data, uri=f"bench://ingest/{i}", label="bench")

    batches0 = REGISTRY.get_sample_value("imgsearch_embedder_batch_size_count") or 0.0
    summed0 = REGISTRY.get_sample_value("imgsearch_embedder_batch_size_sum") or 0.0
    cpu0, t0 = time.process_time(), time.perf_counter()
    response = stub.Ingest(requests(), timeout=900)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if response.ingested != len(images):
        raise RuntimeError(
            f"ingested {response.ingested} of {len(images)} (duplicates {response.duplicates}, "
            f"failed {response.failed})"
        )
    batches = (REGISTRY.get_sample_value("imgsearch_embedder_batch_size_count") or 0.0) - batches0
    summed = (REGISTRY.get_sample_value("imgsearch_embedder_batch_size_sum") or 0.0) - summed0
    return {
        "images_per_s": len(images) / wall,
        "cpu_s_per_image": cpu / len(images),
        "mean_cnn_batch": summed / batches if batches else float("nan"),
        "wall_s": wall,
    }


def run(sizes: Sizes = FULL, *, quick: bool = False, work_dir: Path | None = None) -> Result:
    """Runs the benchmark in a scratch directory (removed afterwards) unless `work_dir` is given."""
    return in_scratch("bench-ingest-", work_dir, lambda work: _run(sizes, quick, work))


def _run(sizes: Sizes, quick: bool, work: Path) -> Result:
    import grpc

    from imgsearch.app.serve import start, stop
    from imgsearch.protogen.imagesearch.v1 import indexer_pb2_grpc

    began = time.perf_counter()
    result = Result(NAME, quick)
    pixels = decoded_batch(sizes.images)
    served, parts = start(bench_settings(work / "data", vocab_size=VOCAB_SIZE), ["all"])
    try:
        cnn = parts.embedder.cnn
        with grpc.insecure_channel(f"127.0.0.1:{served.port}", options=GRPC_OPTIONS) as channel:
            stub = indexer_pb2_grpc.IndexerStub(channel)
            raw_throughput(cnn, pixels[:32])  # warm-up, both sides
            ingest(stub, unique_jpegs(32, salt=999))
            rounds = []
            for r in range(sizes.rounds):
                images = unique_jpegs(sizes.images, salt=r)
                if r % 2:  # alternate which side goes first, so a drifting load favours neither
                    got = ingest(stub, images)
                    raw = raw_throughput(cnn, pixels)
                else:
                    raw = raw_throughput(cnn, pixels)
                    got = ingest(stub, images)
                rounds.append({"raw": raw, "ingest": got, "ratio": got["images_per_s"] / raw["images_per_s"]})
        stored = parts.store.count_images()
    finally:
        stop(served, parts, 1.0)

    expected = 32 + sizes.images * sizes.rounds
    if stored != expected:
        raise RuntimeError(f"the store holds {stored} images, expected {expected}")
    ratio = statistics.median(r["ratio"] for r in rounds)
    result.add("ingest / raw CNN throughput (median of rounds)", ratio, "x", f">= {GOAL}", ratio >= GOAL)
    result.add(
        "ingest end to end (JPEG -> stored)", max(r["ingest"]["images_per_s"] for r in rounds), "images/s"
    )
    result.add(
        "raw model, decoded tensors, batch 32", max(r["raw"]["images_per_s"] for r in rounds), "images/s"
    )
    cpu_ingest = statistics.median(r["ingest"]["cpu_s_per_image"] for r in rounds) * 1000
    cpu_raw = statistics.median(r["raw"]["cpu_s_per_image"] for r in rounds) * 1000
    result.add("server CPU per ingested image", cpu_ingest, "ms")
    result.add("raw model CPU per image", cpu_raw, "ms")
    result.add("CPU-bound ceiling: raw CPU / server CPU per image", cpu_raw / cpu_ingest, "x")
    result.add(
        "server's mean CNN batch", statistics.median(r["ingest"]["mean_cnn_batch"] for r in rounds), "images"
    )
    result.add("images stored (all rounds, checked)", stored)
    result.details.update({"sizes": sizes.__dict__, "rounds": rounds})
    result.notes.append(f"ratios per round: {', '.join(format(r['ratio'], '.2f') for r in rounds)}")
    return result.finish(began)


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, lambda quick: run(QUICK if quick else FULL, quick=quick), argv)


if __name__ == "__main__":
    raise SystemExit(main())
