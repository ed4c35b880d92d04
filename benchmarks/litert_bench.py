"""The CNN on LiteRT (XNNPACK) against Keras, in one run: raw speed, ingestion, latency, replicas.

Measured, each against a baseline of the same run:
- raw throughput on already-decoded uint8 tensors: Keras (`Cnn.run`, tf.function, batch 32, one
  caller, as the embedder ran it) against LiteRT as the embedder runs it (`LiteRtCnn.run`, a few
  images per call from as many threads as it has interpreters) and against one caller alone;
  int8 likewise. Rounds alternate the runtimes; each figure is the median ratio of the rounds.
- ingestion end to end: JPEG bytes streamed through `Indexer.Ingest` of a separate all-in-one
  `imgsearch serve` (hashing, decoding, CNN, head, upsert into Qdrant Edge), between the raw rounds;
- a single image over gRPC (`EmbedImages` of one JPEG to `serve embedder`) against one decoded
  image through `LiteRtCnn.run` alone (its fastest path: the interpreter with a thread per core);
- a replica of `serve embedder` with a prepared model, per runtime: seconds from the process start
  to health SERVING (polled every 20 ms), resident memory at SERVING and after embedding, whether
  TensorFlow was loaded;
- quality: LiteRT float32 against Keras on every sample photo; int8 against float32 on the photos
  held out of its calibration (it is calibrated on the other half here).
Run: `.venv/bin/python -m benchmarks.run litert` or `.venv/bin/python -m benchmarks.litert_bench`.
"""

from __future__ import annotations

import logging
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import embedder_bench
from benchmarks.common import (
    GRPC_OPTIONS,
    Result,
    ServerProcess,
    bench_main,
    decoded_batch,
    in_scratch,
    percentiles,
    photo_bytes,
    unique_jpegs,
)

log = logging.getLogger(__name__)

NAME = "litert"
KERAS_BATCH = embedder_bench.BATCH
GOALS = {
    "raw": 1.7,  # raw LiteRT / raw Keras
    "ingest_vs_keras": 1.5,
    "ingest_vs_litert": 0.8,
    "latency": 2.0,  # single image over gRPC / raw single image, at most
    "rss_mb": 400,  # resident memory of an embedder replica, at most
    "serving_s": 3.0,  # seconds to SERVING with a prepared model, at most
}


@dataclass(frozen=True)
class Sizes:
    images: int = 256  # raw, per round and runtime
    ingest_images: int = 512  # per round
    rounds: int = 3
    latency_samples: int = 40


FULL = Sizes()
QUICK = Sizes(images=64, ingest_images=64, rounds=1, latency_samples=8)


def keras_throughput(cnn, pixels: np.ndarray) -> dict[str, float]:
    """Images/s and CPU per image of `Cnn.run` at batch 32, one caller (how the embedder ran Keras):
    the embedder benchmark's raw measurement."""
    raw = embedder_bench.raw_throughput(cnn, pixels)
    return {"images_per_s": raw["images_per_s"], "cpu_ms_per_image": raw["cpu_s_per_image"] * 1000}


def pool_throughput(cnn, pixels: np.ndarray, callers: int | None = None) -> dict[str, float]:
    """Images/s of `cnn.run` fed `cnn.batch_size` images a call from `callers` threads (by default
    its `concurrency`, as the embedder's batcher feeds it)."""
    callers = callers or cnn.concurrency
    chunks = [pixels[s : s + cnn.batch_size] for s in range(0, len(pixels), cnn.batch_size)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=callers) as pool:
        list(pool.map(cnn.run, chunks))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"images_per_s": len(pixels) / wall, "cpu_ms_per_image": cpu / len(pixels) * 1000}


def ingest_throughput(stub, images: list[bytes], server: ServerProcess) -> dict[str, float]:
    """Images/s streamed through Indexer.Ingest, each image new; the server's CPU per image."""
    from imgsearch.protogen.imagesearch.v1 import indexer_pb2

    def requests():
        for i, data in enumerate(images):
            yield indexer_pb2.IngestRequest(image=data, uri=f"bench://litert/{i}", label="bench")

    cpu0, t0 = server.cpu_seconds(), time.perf_counter()
    response = stub.Ingest(requests(), timeout=900)
    wall, cpu = time.perf_counter() - t0, server.cpu_seconds() - cpu0
    if response.ingested != len(images):
        raise RuntimeError(f"ingested {response.ingested} of {len(images)} (failed {response.failed})")
    return {"images_per_s": len(images) / wall, "server_cpu_ms_per_image": cpu / len(images) * 1000}


def single_latency(stub, cnn, photos: list[bytes], pixels: np.ndarray, samples: int) -> dict[str, Any]:
    """One JPEG per EmbedImages call, then one decoded image per `cnn.run`, each in its own block."""
    from imgsearch.protogen.imagesearch.v1 import embedder_pb2

    rpc, raw = [], []
    for i in range(samples + 3):
        request = embedder_pb2.EmbedImagesRequest(images=[photos[i % len(photos)]])
        t0 = time.perf_counter()
        response = stub.EmbedImages(request, timeout=60)
        if i >= 3:  # the first calls warm up
            rpc.append(time.perf_counter() - t0)
        if response.embeddings[0].HasField("error"):
            raise RuntimeError(response.embeddings[0].error.message)
    time.sleep(0.2)
    for i in range(samples + 3):
        t0 = time.perf_counter()
        cnn.run(pixels[i % len(pixels) : i % len(pixels) + 1])
        if i >= 3:
            raw.append(time.perf_counter() - t0)
    return {"grpc_ms": percentiles(rpc), "raw_ms": percentiles(raw)}


def _memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (VmHWM), in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {k: int(fields[v].split()[0]) / 1024 for k, v in (("rss_mb", "VmRSS"), ("peak_mb", "VmHWM"))}


def replica(work: Path, runtime: str, photos: list[bytes]) -> dict[str, Any]:
    """Starts `serve embedder` on `runtime` (model already prepared): time to SERVING, memory at
    SERVING and after embedding every photo a few times, and whether TensorFlow got loaded."""
    import os

    import grpc

    from imgsearch.protogen.imagesearch.v1 import embedder_pb2, embedder_pb2_grpc

    t0 = time.perf_counter()
    server = ServerProcess(
        work / f"replica-{runtime}", "embedder", env=dict(os.environ, IMGSEARCH_CNN_RUNTIME=runtime)
    )
    try:
        while not server.serving(timeout=1.0):
            if not server.running():
                raise RuntimeError(f"serve embedder ({runtime}) exited:\n{server.tail()}")
            time.sleep(0.02)
        serving_s = time.perf_counter() - t0
        at_serving = _memory_mb(server.proc.pid)
        with grpc.insecure_channel(server.addr, options=GRPC_OPTIONS) as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            for _ in range(4):
                stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=photos), timeout=120)
        after = _memory_mb(server.proc.pid)
        tensorflow = "tensorflow" in Path(f"/proc/{server.proc.pid}/maps").read_text()
    finally:
        server.stop()
    return {
        "serving_s": serving_s,
        "rss_at_serving_mb": at_serving["rss_mb"],
        "rss_after_embedding_mb": after["rss_mb"],
        "peak_mb": after["peak_mb"],
        "tensorflow_loaded": tensorflow,
    }


def quality(keras, litert, pixels: np.ndarray) -> dict[str, Any]:
    """LiteRT float32 vs Keras on every photo; int8 (calibrated on the even photos) vs float32 on
    the odd ones, and the production int8 (calibrated on all) vs float32 on all."""
    from imgsearch.embedder.vision.litert_cnn import LiteRtCnn
    from imgsearch.embedder.vision.litert_convert import agreement, convert

    reference = litert.run(pixels)
    float_vs_keras = agreement(keras.run(pixels), reference)
    held_out_model = convert(keras, "int8", calibration=pixels[0::2])
    held_out = LiteRtCnn(held_out_model, "int8", source="converted", workers=1)
    odd = (reference[0][1::2], reference[1][1::2])
    quantised = held_out.run(pixels[1::2])
    int8_held_out = agreement(odd, quantised)
    top1 = odd[1].argmax(axis=1)
    runner_up = np.sort(odd[1], axis=1)
    return {
        "float32_vs_keras": float_vs_keras.__dict__,
        "int8_held_out_vs_float32": int8_held_out.__dict__,
        # where int8 changed the class: how close float's top two were (logit margin)
        "int8_changed_top1_float_margins": (runner_up[:, -1] - runner_up[:, -2])[
            quantised[1].argmax(axis=1) != top1
        ].round(2),
        # image -> image search among the held-out photos: the same nearest photo by visual vector
        "int8_same_nearest_photo": _same_nearest(odd[0], quantised[0]),
    }


def _same_nearest(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of photos whose nearest other photo (cosine of the features) is the same in both."""

    def nearest(f: np.ndarray) -> np.ndarray:
        unit = f / np.linalg.norm(f, axis=1, keepdims=True)
        sim = unit @ unit.T
        np.fill_diagonal(sim, -np.inf)
        return sim.argmax(axis=1)

    return float((nearest(reference) == nearest(candidate)).mean())


def run(sizes: Sizes = FULL, *, quick: bool = False, work_dir: Path | None = None) -> Result:
    """Runs the benchmark in a scratch directory (removed afterwards) unless `work_dir` is given."""
    return in_scratch("bench-litert-", work_dir, lambda work: _run(sizes, quick, work))


def _run(sizes: Sizes, quick: bool, work: Path) -> Result:
    import os

    import grpc

    from imgsearch.config import Settings
    from imgsearch.embedder.vision import sample_photos
    from imgsearch.embedder.vision.cnn_loading import load_cnn
    from imgsearch.protogen.imagesearch.v1 import embedder_pb2_grpc, indexer_pb2_grpc

    began = time.perf_counter()
    result = Result(NAME, quick)
    cache = Settings.from_env().cache_dir
    keras = load_cnn("keras", cache)
    litert = load_cnn("litert", cache)  # prepares the flatbuffers the replicas then load
    int8 = load_cnn("litert-int8", cache)
    pixels = decoded_batch(sizes.images)
    photos = photo_bytes()
    all_photos = sample_photos.photo_pixels(sample_photos.photo_paths())

    # Raw rounds, with ingestion between them; the runtimes take turns going first.
    keras_throughput(keras, pixels[:KERAS_BATCH])  # warm-up
    pool_throughput(litert, pixels[:16])
    pool_throughput(int8, pixels[:16])
    env = dict(os.environ, IMGSEARCH_VOCAB_SIZE="1000")
    server = ServerProcess(work / "all", env=env)  # all three services, embedded store
    rounds = []
    try:
        server.wait_serving()
        with grpc.insecure_channel(server.addr, options=GRPC_OPTIONS) as channel:
            stub = indexer_pb2_grpc.IndexerStub(channel)
            ingest_throughput(stub, unique_jpegs(32, salt=999), server)  # warm-up
            for r in range(sizes.rounds):
                order = ["keras", "litert", "int8", "single"]
                measured: dict[str, Any] = {}
                for name in order if r % 2 == 0 else order[::-1]:
                    if name == "keras":
                        measured[name] = keras_throughput(keras, pixels)
                    elif name == "litert":
                        measured[name] = pool_throughput(litert, pixels)
                    elif name == "int8":
                        measured[name] = pool_throughput(int8, pixels)
                    else:
                        measured[name] = pool_throughput(litert, pixels, callers=1)
                measured["ingest"] = ingest_throughput(
                    stub, unique_jpegs(sizes.ingest_images, salt=r), server
                )
                rounds.append(measured)
    finally:
        server.stop()

    embedder = ServerProcess(work / "embedder", "embedder")
    try:
        embedder.wait_serving()
        with grpc.insecure_channel(embedder.addr, options=GRPC_OPTIONS) as channel:
            latency = single_latency(
                embedder_pb2_grpc.EmbedderStub(channel), litert, photos, pixels, sizes.latency_samples
            )
    finally:
        embedder.stop()
    replicas = {rt: replica(work, rt, photos) for rt in ("litert", "litert-int8", "keras")}
    scores = quality(keras, litert, all_photos)

    def ratio(top: str, bottom: str) -> float:
        return statistics.median(r[top]["images_per_s"] / r[bottom]["images_per_s"] for r in rounds)

    def best(name: str) -> float:
        return max(r[name]["images_per_s"] for r in rounds)

    raw = ratio("litert", "keras")
    ingest_keras, ingest_litert = ratio("ingest", "keras"), ratio("ingest", "litert")
    lat = latency["grpc_ms"]["p50"] / latency["raw_ms"]["p50"]
    lite = replicas["litert"]
    result.add(
        "raw LiteRT / raw Keras (median of rounds)", raw, "x", f">= {GOALS['raw']}", raw >= GOALS["raw"]
    )
    result.add(
        "ingest end to end / raw Keras",
        ingest_keras,
        "x",
        f">= {GOALS['ingest_vs_keras']}",
        ingest_keras >= GOALS["ingest_vs_keras"],
    )
    result.add(
        "ingest end to end / raw LiteRT",
        ingest_litert,
        "x",
        f">= {GOALS['ingest_vs_litert']}",
        ingest_litert >= GOALS["ingest_vs_litert"],
    )
    result.add(
        "single image p50: gRPC / raw LiteRT", lat, "x", f"<= {GOALS['latency']}", lat <= GOALS["latency"]
    )
    result.add(
        "embedder replica resident memory (LiteRT, after embedding)",
        lite["rss_after_embedding_mb"],
        "MB",
        f"< {GOALS['rss_mb']} MB",
        lite["rss_after_embedding_mb"] < GOALS["rss_mb"],
    )
    result.add(
        "embedder replica start to SERVING (LiteRT, prepared model)",
        lite["serving_s"],
        "s",
        f"<= {GOALS['serving_s']} s",
        lite["serving_s"] <= GOALS["serving_s"],
    )
    cpu_ratio = statistics.median(
        r["keras"]["cpu_ms_per_image"] / r["litert"]["cpu_ms_per_image"] for r in rounds
    )
    result.add(
        "CPU per image, raw Keras / raw LiteRT (steadier than images/s on a loaded machine)", cpu_ratio, "x"
    )
    result.add("raw Keras, batch 32, one caller", best("keras"), "images/s")
    result.add("raw LiteRT float32, as the embedder feeds it", best("litert"), "images/s")
    result.add("raw LiteRT float32, one caller", best("single"), "images/s")
    result.add("raw LiteRT int8, as the embedder feeds it", best("int8"), "images/s")
    result.add("raw LiteRT int8 / float32 (median of rounds)", ratio("int8", "litert"), "x")
    result.add("ingest end to end (JPEG -> stored), LiteRT", best("ingest"), "images/s")
    result.add(
        "CPU per image: raw Keras / raw LiteRT / ingest (server)",
        " / ".join(
            format(statistics.median(r[k][m] for r in rounds), ".1f")
            for k, m in (
                ("keras", "cpu_ms_per_image"),
                ("litert", "cpu_ms_per_image"),
                ("ingest", "server_cpu_ms_per_image"),
            )
        ),
        "ms",
    )
    result.add(
        "single image p50 / p99: gRPC (JPEG in) | raw LiteRT",
        f"{latency['grpc_ms']['p50']:.1f} / {latency['grpc_ms']['p99']:.1f} | "
        f"{latency['raw_ms']['p50']:.1f} / {latency['raw_ms']['p99']:.1f}",
        "ms",
    )
    for rt, rep in replicas.items():
        result.add(
            f"replica {rt}: to SERVING / RSS at SERVING / after embedding / peak",
            f"{rep['serving_s']:.2f} s / {rep['rss_at_serving_mb']:.0f} / {rep['rss_after_embedding_mb']:.0f}"
            f" / {rep['peak_mb']:.0f} MB"
            + (", TensorFlow loaded" if rep["tensorflow_loaded"] else ", no TensorFlow"),
        )
    fk, iq = scores["float32_vs_keras"], scores["int8_held_out_vs_float32"]
    margins = scores["int8_changed_top1_float_margins"]
    result.add(
        "LiteRT float32 vs Keras: max |diff| features / logits; same top-1",
        f"{fk['features_max_diff']:.1e} / {fk['logits_max_diff']:.1e}; "
        f"{fk['top1_agreement']:.0%} of {fk['photos']}",
    )
    result.add(
        "int8 vs float32, held-out photos: same top-1 (float margins where not); min feature cosine; "
        "same nearest photo",
        f"{iq['top1_agreement']:.0%} of {iq['photos']} ({', '.join(map(str, margins))}); "
        f"{iq['min_feature_cosine']:.3f}; {scores['int8_same_nearest_photo']:.0%}",
    )
    result.details.update(
        {
            "sizes": sizes.__dict__,
            "rounds": rounds,
            "latency": latency,
            "replicas": replicas,
            "quality": scores,
        }
    )
    env_settings = Settings.from_env()
    result.notes.append(
        "servers ran with IMGSEARCH_PEOPLE="
        f"{int(getattr(env_settings, 'people', False))} (face detection on ingested images) and "
        f"IMGSEARCH_TAXONOMY={int(getattr(env_settings, 'taxonomy', False))}"
    )
    result.notes.append(
        "ratios per round, LiteRT/Keras: "
        + ", ".join(format(r["litert"]["images_per_s"] / r["keras"]["images_per_s"], ".2f") for r in rounds)
        + "; ingest/Keras: "
        + ", ".join(format(r["ingest"]["images_per_s"] / r["keras"]["images_per_s"], ".2f") for r in rounds)
    )
    return result.finish(began)


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, lambda quick: run(QUICK if quick else FULL, quick=quick), argv)


if __name__ == "__main__":
    raise SystemExit(main())
