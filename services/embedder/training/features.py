"""CNN features of a whole dataset, extracted once and cached on disk.

Extracting Fashion-MNIST's 70,000 images takes minutes on a CPU, while training and
evaluating a head on the cached arrays takes seconds, so every `train` and `eval` reads the
cache. The CNN runs on the configured runtime (`IMGSEARCH_CNN_RUNTIME`: LiteRT by default,
the serving path; `keras` the old one), as many calls at once as the runtime has interpreters,
each preparing its own images so upsampling overlaps inference. The cache is keyed by the
dataset's key, the CNN's name and the runtime (features of one runtime are never reused for
another); it is written as memory-mapped .npy files and resumes where it stopped if interrupted.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from imgsearch.errors import InvalidArgument
from imgsearch.reports.progress import progress_bar

if TYPE_CHECKING:
    from imgsearch.embedder.training.datasets import Dataset
    from imgsearch.embedder.vision.cnn_loading import ImageCnn

CACHE_VERSION = 1  # bump when preprocessing (e.g. the upsampling) changes


@dataclass(frozen=True)
class Features:
    """Raw pooled CNN features and ImageNet logits, row-aligned with the dataset."""

    features: np.ndarray  # float32 (N, 1280)
    logits: np.ndarray  # float32 (N, 1000)

    def take(self, indices: np.ndarray) -> Features:
        return Features(np.asarray(self.features[indices]), np.asarray(self.logits[indices]))


def cache_path(cache_dir: Path, dataset_key: str, cnn_name: str, runtime: str) -> Path:
    """The folder of one dataset's features as `cnn_name` computes them on `runtime`."""
    return Path(cache_dir) / "features" / f"{dataset_key}--{cnn_name}-{runtime}-v{CACHE_VERSION}"


def cached_features(
    dataset: Dataset,
    cache_dir: Path,
    cnn: ImageCnn | None = None,
    *,
    runtime: str = "litert",
    batch_size: int = 64,
    stream: TextIO | None = None,
) -> Features:
    """The dataset's features from the cache, extracting (and loading the CNN) only what is missing.

    `runtime` names the CNN runtime (`load_cnn`'s); a given `cnn` is used as is, under its own.
    The test split is extracted first, so an interrupted first run already allows an `eval`
    of heads that need no training (conse); a later run resumes with what is missing.
    """
    from imgsearch.embedder.vision.cnn import FEATURE_DIM, NAME, NUM_CLASSES
    from imgsearch.embedder.vision.cnn_loading import RUNTIMES

    name = cnn.name if cnn is not None else NAME
    runtime = cnn.runtime if cnn is not None else runtime
    if runtime not in RUNTIMES:
        raise InvalidArgument(f"unknown CNN runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    folder = cache_path(cache_dir, dataset.key, name, runtime)
    meta_path, done_path = folder / "meta.json", folder / "done.npy"
    n = len(dataset)
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("images") == n and meta.get("complete"):
        return _open(folder)
    folder.mkdir(parents=True, exist_ok=True)
    resume = meta.get("images") == n and done_path.is_file()
    done = np.load(done_path) if resume else np.zeros(n, bool)
    mode = "r+" if resume else "w+"
    feats = np.lib.format.open_memmap(folder / "features.npy", mode, np.float32, (n, FEATURE_DIM))
    logits = np.lib.format.open_memmap(folder / "logits.npy", mode, np.float32, (n, NUM_CLASSES))
    order = np.concatenate([np.flatnonzero(dataset.is_test), np.flatnonzero(~dataset.is_test)])
    todo = order[~done[order]]
    if len(todo) and cnn is None:
        from imgsearch.embedder.vision.cnn_loading import load_cnn

        cnn = load_cnn(runtime, Path(cache_dir))
    meta = {"images": n, "cnn": name, "runtime": runtime, "dataset": dataset.key, "complete": False}
    chunks = [np.sort(todo[start : start + batch_size]) for start in range(0, len(todo), batch_size)]
    with progress_bar(stream, n, f"features {dataset.key}", initial=int(done.sum())) as bar:
        for step, (idx, (f, lg)) in enumerate(_extract(dataset, cnn, chunks)):
            feats[idx] = f
            logits[idx] = lg
            done[idx] = True
            if step % 16 == 15:  # checkpoint so an interrupted run resumes
                _checkpoint(feats, logits, done, done_path, meta_path, meta)
            bar.update(len(idx))
    _checkpoint(feats, logits, done, done_path, meta_path, dict(meta, complete=True))
    del feats, logits
    return _open(folder)


def _extract(
    dataset: Dataset, cnn: ImageCnn | None, chunks: list[np.ndarray]
) -> Iterator[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """(indices, CNN outputs) of each chunk in order, `cnn.concurrency` chunks in flight at once.

    Each call prepares its own images (Fashion-MNIST's upsampling is about 1 ms an image, a fifth
    of LiteRT's inference), so preparing one chunk overlaps inference of another; a runtime of
    concurrency 1 (Keras) runs the chunks one after another as before.
    """
    if not chunks:
        return
    assert cnn is not None
    workers = max(1, int(getattr(cnn, "concurrency", 1)))

    def one(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return cnn.run(dataset.images(idx))

    with ThreadPoolExecutor(workers, thread_name_prefix="features") as pool:
        pending: deque = deque()
        for idx in chunks:
            pending.append((idx, pool.submit(one, idx)))
            if len(pending) > workers:  # bounded: a few chunks ahead, never the whole dataset
                done_idx, future = pending.popleft()
                yield done_idx, future.result()
        while pending:
            done_idx, future = pending.popleft()
            yield done_idx, future.result()


def _checkpoint(
    feats: np.ndarray, logits: np.ndarray, done: np.ndarray, done_path: Path, meta_path: Path, meta: dict
) -> None:
    feats.flush()  # type: ignore[attr-defined]
    logits.flush()  # type: ignore[attr-defined]
    tmp = done_path.with_name(".done.tmp.npy")
    np.save(tmp, done)
    tmp.replace(done_path)
    _write_meta(meta_path, meta)


def _open(folder: Path) -> Features:
    return Features(
        np.load(folder / "features.npy", mmap_mode="r"), np.load(folder / "logits.npy", mmap_mode="r")
    )


def _write_meta(path: Path, meta: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta))
    tmp.replace(path)
