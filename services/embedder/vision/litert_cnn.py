"""The CNN served by LiteRT (XNNPACK) from its converted flatbuffer, without TensorFlow.

Measured on 2 cores against the Keras model (benchmarks/litert_bench.py): about 1.8x the
images/s with outputs equal within 1e-4 (2.2e-5 measured); an interpreter loads in 0.03 s
instead of TensorFlow's 3.4 s, and the three below take about 130 MB where TensorFlow and the
Keras model took about 600. The flatbuffer takes one image per invoke (batch 1): on XNNPACK,
bigger batches were no faster per image.

An Interpreter is not thread-safe, so every concurrent call borrows one of its own:
- one single-threaded interpreter per usable core, for calls that run side by side (two of them on
  2 cores gave about 10% more images/s than one interpreter with two threads, whose threads spend
  CPU synchronising, and much more than two-threaded interpreters fighting over the cores);
- one interpreter with a thread per core, for a call that runs alone (a lone image's latency about
  halves: 5 ms instead of 10).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.config.cpus import usable_cpus
from imgsearch.embedder.vision.cnn import FEATURE_DIM, INPUT_SIZE, NAME, NUM_CLASSES, check_input

log = logging.getLogger(__name__)

VARIANTS = ("float32", "int8")
LITERT_VERSION = 1  # bump when the conversion changes


def litert_path(cache_dir: Path, variant: str) -> Path:
    """Where the flatbuffer of `variant` lives in the model cache (beside the Keras model)."""
    from imgsearch.embedder.vision.cnn import CACHE_VERSION

    if variant not in VARIANTS:
        raise ValueError(f"unknown LiteRT variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return Path(cache_dir) / NAME / f"litert-v{CACHE_VERSION}.{LITERT_VERSION}-{variant}.tflite"


@dataclass
class _Slot:
    """One interpreter with the indices of its input and of its two outputs."""

    interpreter: Any
    threads: int
    input: int
    features: int
    logits: int

    def run_one(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        it = self.interpreter
        it.set_tensor(self.input, image[None])
        it.invoke()
        return it.get_tensor(self.features)[0], it.get_tensor(self.logits)[0]


def _open(model: bytes, threads: int) -> _Slot:
    """An interpreter over the flatbuffer, checked to be this CNN's (ValueError otherwise).

    All interpreters share the one `model` buffer: opened from a path, each would read its own
    copy (18.6 MB apiece for float32); their XNNPACK-packed weights are their own regardless.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=threads)
    inputs = interpreter.get_input_details()
    want = [1, INPUT_SIZE, INPUT_SIZE, 3]
    if len(inputs) != 1 or list(inputs[0]["shape"]) != want or inputs[0]["dtype"] is not np.uint8:
        raise ValueError(
            f"model input {[(list(i['shape']), i['dtype']) for i in inputs]} is not uint8 {want}"
        )
    by_width = {int(o["shape"][-1]): o["index"] for o in interpreter.get_output_details()}
    if sorted(by_width) != sorted((FEATURE_DIM, NUM_CLASSES)):
        raise ValueError(f"model outputs of widths {sorted(by_width)} are not (features, logits)")
    interpreter.allocate_tensors()
    return _Slot(interpreter, threads, inputs[0]["index"], by_width[FEATURE_DIM], by_width[NUM_CLASSES])


class LiteRtCnn:
    """The ImageNet CNN on LiteRT: uint8 RGB batches in, (pooled features, class logits) out.

    Same contract as `Cnn` (imgsearch.embedder.vision.cnn), and safe to call from many threads.
    `concurrency` and `batch_size` tell the batcher how to feed it: that many calls at once, a few
    images each (one per invoke, so bigger batches gain nothing and only delay the other workers).
    """

    name = NAME
    feature_dim = FEATURE_DIM
    num_classes = NUM_CLASSES
    input_size = INPUT_SIZE
    batch_size = 4

    def __init__(self, model: bytes | Path, variant: str, source: str, workers: int | None = None):
        cores = usable_cpus()
        model = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.variant = variant
        self.source = source  # "cache" or "converted"
        self.runtime = "litert" if variant == "float32" else f"litert-{variant}"
        self.concurrency = max(1, workers or cores)
        self._narrow: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        for _ in range(self.concurrency):
            self._narrow.put(_open(model, 1))
        self._wide = _open(model, cores) if cores > 1 else None
        self._wide_free = self._wide is not None
        self._active = 0
        self._lock = threading.Lock()
        self._fc: tuple[np.ndarray, np.ndarray] | None = None

    def run(self, batch: np.ndarray, alone: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, 224, 224, 3) -> features float32 (N, 1280), not normalised; logits (N, 1000).

        `alone`: the caller knows of no other work for the cores (no images being decoded or
        queued), so the interpreter with a thread per core may take them when no other call runs.
        Otherwise a single-threaded one: XNNPACK's threads wait for each other by spinning, and
        beside busy decoding threads that cost 3 ms of CPU per image in ingestion (26 against 23).
        """
        check_input(batch)
        if len(batch) == 0:
            return np.zeros((0, FEATURE_DIM), np.float32), np.zeros((0, NUM_CLASSES), np.float32)
        slot = self._acquire(alone)
        try:
            outputs = [slot.run_one(image) for image in batch]
        finally:
            self._release(slot)
        features = np.stack([f for f, _ in outputs]).astype(np.float32, copy=False)
        logits = np.stack([lg for _, lg in outputs]).astype(np.float32, copy=False)
        return features, logits

    def _acquire(self, alone: bool = True) -> _Slot:
        """The wide interpreter when the caller is alone and no other call is running, else a
        single-threaded one."""
        with self._lock:
            self._active += 1
            if alone and self._active == 1 and self._wide_free:
                self._wide_free = False
                return self._wide  # type: ignore[return-value]
        return self._narrow.get()

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            self._active -= 1
            if slot is self._wide:
                self._wide_free = True
                return
        self._narrow.put(slot)

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        """Class logits (N, 1000) of pooled features (N, 1280): the final linear layer alone, read
        from the packaged checkpoint (numpy only, 0.05 s), so no TensorFlow is needed."""
        if self._fc is None:
            from imgsearch.embedder.vision.cnn import checkpoint_path
            from imgsearch.embedder.vision.torch_pickle import load_state_dict

            state = load_state_dict(checkpoint_path())
            self._fc = (np.ascontiguousarray(state["_fc.weight"].T), state["_fc.bias"].astype(np.float32))
        weights, bias = self._fc
        return np.asarray(features, np.float32) @ weights + bias
