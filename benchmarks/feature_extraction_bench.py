"""Training's feature extraction on Keras against LiteRT: the same Fashion-MNIST images, in one run.

`train` and `eval` extract CNN features of a whole dataset once (70,000 images for Fashion-MNIST)
through `embedder.training.features.cached_features`, on the configured runtime. This measures
that path as it runs (upsampling the 28x28 images, the CNN, the memory-mapped cache), per runtime,
on the same class-balanced images, each runtime extracting into its own scratch cache. The images
are split into rounds that alternate the runtimes' order, so a change of load on a shared machine
falls on both. The CNNs are loaded (and run once) before the clock starts; the 70,000-image time
is extrapolated from the measured rate. It also reports how far the two runtimes' outputs lie apart.
Needs the Debian package dataset-fashion-mnist.
Run: `.venv/bin/python -m benchmarks.feature_extraction_bench` (`--quick`: 1,000 images).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.common import Result, bench_main, in_scratch

NAME = "feature_extraction"
RUNTIMES = ("keras", "litert")
FULL_DATASET = 70_000


def run(
    quick: bool = False, images: int | None = None, rounds: int = 4, work_dir: Path | None = None
) -> Result:
    return in_scratch(
        "imgsearch-features-",
        work_dir,
        lambda work: _run(quick, images or (1_000 if quick else 10_000), rounds, work),
    )


def _run(quick: bool, images: int, rounds: int, work: Path) -> Result:
    from imgsearch.config import Settings
    from imgsearch.embedder.training.datasets import load_fashion_mnist
    from imgsearch.embedder.training.features import cached_features
    from imgsearch.embedder.vision.cnn_loading import load_cnn

    started = time.perf_counter()
    result = Result(NAME, quick)
    fashion = load_fashion_mnist()
    rng = np.random.default_rng(0)
    per_class = images // len(fashion.classes)
    picked = np.concatenate(
        [
            rng.choice(np.flatnonzero(fashion.labels == c), per_class, replace=False)
            for c in range(len(fashion.classes))
        ]
    )
    rng.shuffle(picked)
    model_cache = Settings.from_env().cache_dir  # the prepared models; features go to scratch caches
    cnns = {runtime: load_cnn(runtime, model_cache) for runtime in RUNTIMES}
    warm = fashion.images(picked[:64])
    for cnn in cnns.values():  # Keras traces its function on the first batch of a shape
        cnn.run(warm)
    seconds = dict.fromkeys(RUNTIMES, 0.0)
    outputs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {r: [] for r in RUNTIMES}
    for i, part in enumerate(np.array_split(picked, rounds)):
        subset = fashion.subset(np.sort(part))
        for runtime in RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]:
            t0 = time.perf_counter()
            feats = cached_features(subset, work / runtime, cnns[runtime])
            seconds[runtime] += time.perf_counter() - t0
            outputs[runtime].append((np.asarray(feats.features), np.asarray(feats.logits)))
    rate = {runtime: len(picked) / seconds[runtime] for runtime in RUNTIMES}
    for runtime in RUNTIMES:
        result.add(f"{runtime}: images/s", round(rate[runtime], 1), "images/s")
        result.add(f"{runtime}: {len(picked):,} images", round(seconds[runtime], 1), "s")
        result.add(
            f"{runtime}: {FULL_DATASET:,} images (extrapolated)",
            round(FULL_DATASET / rate[runtime] / 60, 1),
            "min",
        )
    result.add("litert / keras", round(rate["litert"] / rate["keras"], 2), "x")
    keras_f, keras_l = (np.concatenate(parts) for parts in zip(*outputs["keras"], strict=True))
    lite_f, lite_l = (np.concatenate(parts) for parts in zip(*outputs["litert"], strict=True))
    result.add("max |features litert - keras|", f"{np.abs(lite_f - keras_f).max():.1e}")
    result.add("max |logits litert - keras|", f"{np.abs(lite_l - keras_l).max():.1e}")
    result.add("same top-1 class", round(float(np.mean(lite_l.argmax(1) == keras_l.argmax(1))), 4))
    result.details.update(
        images=len(picked),
        rounds=rounds,
        concurrency={r: cnns[r].concurrency for r in RUNTIMES},
        seconds={r: round(s, 2) for r, s in seconds.items()},
    )
    return result.finish(started)


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
