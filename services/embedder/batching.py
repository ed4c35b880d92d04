"""Gathers single images from concurrent callers into CNN batches of up to `max_batch`.

`workers` threads feed the model (one for Keras, which uses every core per call; one per LiteRT
interpreter). A worker takes the first waiting image and, while decodes that will feed it are
still in flight, waits up to `max_wait` for more; so a request of 32 images, or 32 requests of
one image, share forward passes, and a lone image is not held back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

log = logging.getLogger(__name__)

RunBatch = Callable[[np.ndarray], list]


class Batcher:
    def __init__(self, run_batch: RunBatch, max_batch: int = 32, max_wait: float = 0.01, workers: int = 1):
        """`run_batch` must be safe to call from `workers` threads at once."""
        self._run = run_batch
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._queue: queue.Queue[tuple[np.ndarray, Future] | None] = queue.Queue()
        self._expected = 0  # images announced (being decoded) but not yet queued
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, name=f"cnn-batcher-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def expect(self, n: int = 1) -> None:
        """Announces `n` images that are being decoded and will be submitted (or cancelled) soon."""
        with self._lock:
            self._expected += n

    def cancel_expected(self, n: int = 1) -> None:
        with self._lock:
            self._expected -= n

    def submit(self, pixels: np.ndarray, expected: bool = False) -> Future:
        """Queues one decoded image; the future resolves to `run_batch`'s entry for it."""
        future: Future = Future()
        if expected:
            self.cancel_expected()
        self._queue.put((pixels, future))
        return future

    def close(self) -> None:
        self._queue.put(None)  # each worker puts it back for the next one
        for thread in self._threads:
            thread.join(timeout=10)

    def busy(self) -> bool:
        """Whether images are being decoded for the model or wait in its queue."""
        with self._lock:
            return self._expected > 0 or not self._queue.empty()

    def _more_coming(self) -> bool:
        with self._lock:
            return self._expected > 0

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.put(None)
                return
            batch = [item]
            deadline = time.monotonic() + self._max_wait
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._more_coming():
                        break
                    try:
                        nxt = self._queue.get(timeout=min(remaining, 0.001))
                    except queue.Empty:
                        continue
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._process(batch)

    def _process(self, batch: list[tuple[np.ndarray, Future]]) -> None:
        try:
            outputs = self._run(np.stack([pixels for pixels, _ in batch]))
        except Exception as exc:  # noqa: BLE001 - every caller must be answered
            log.exception("CNN batch of %d failed", len(batch))
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), out in zip(batch, outputs, strict=True):
            future.set_result(out)
