"""The batcher: images from concurrent callers share CNN calls, on one worker or several."""

from __future__ import annotations

import threading
import time

import numpy as np

from imgsearch.embedder.batching import Batcher


def test_workers_run_batches_side_by_side_and_answer_each_image():
    running, most, lock = [0], [0], threading.Lock()

    def run(pixels: np.ndarray) -> list[int]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return [int(p[0, 0, 0]) for p in pixels]

    batcher = Batcher(run, max_batch=2, max_wait=0.0, workers=3)
    try:
        futures = [batcher.submit(np.full((2, 2, 3), i, np.uint8)) for i in range(12)]
        assert [f.result(timeout=5) for f in futures] == list(range(12))
        assert most[0] >= 2  # batches ran on several workers at once
    finally:
        batcher.close()
    assert not any(t.is_alive() for t in batcher._threads)


def test_a_failing_batch_fails_only_its_images():
    def run(pixels: np.ndarray) -> list[int]:
        if pixels[0, 0, 0, 0] == 1:
            raise RuntimeError("boom")
        return [0] * len(pixels)

    batcher = Batcher(run, max_batch=1, max_wait=0.0, workers=2)
    try:
        bad, good = (batcher.submit(np.full((1, 1, 3), v, np.uint8)) for v in (1, 2))
        assert good.result(timeout=5) == 0
        assert isinstance(bad.exception(timeout=5), RuntimeError)
    finally:
        batcher.close()
