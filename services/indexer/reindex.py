"""Re-embedding stored images after a head change.

A stored image keeps its CNN features as `visual` (unit length) plus `feature_norm` in the payload,
so the raw features, and the logits (a linear layer over them), can be rebuilt without the image
bytes; the embedder's current head turns them into new `semantic` vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from imgsearch.embedder.results import Embedder
from imgsearch.vectorstore.base import ImagePoint, VectorStore

log = logging.getLogger(__name__)

BATCH = 256


@dataclass(frozen=True)
class ReindexProgress:
    done: int
    total: int
    skipped: int
    head: str


def reindex(embedder: Embedder, store: VectorStore, batch: int = BATCH) -> Iterator[ReindexProgress]:
    """Rewrites every stored image's semantic vector; yields progress after each batch."""
    head = embedder.model_info().head
    total = store.count_images()
    done = skipped = 0
    pending: list[ImagePoint] = []

    def flush() -> None:
        nonlocal done
        features = np.stack([p.visual * float(p.payload["feature_norm"]) for p in pending])
        semantic = embedder.embed_features(features)
        store.upsert_images([replace(p, semantic=s) for p, s in zip(pending, semantic, strict=True)])
        done += len(pending)
        pending.clear()

    for point in store.iter_images(batch):
        if float(point.payload.get("feature_norm") or 0) <= 0:
            skipped += 1
            continue
        pending.append(point)
        if len(pending) >= batch:
            flush()
            yield ReindexProgress(done, total, skipped, head)
    if pending:
        flush()
    store.flush()
    log.info("reindexed %d images with head %s (%d without CNN features skipped)", done, head, skipped)
    yield ReindexProgress(done, total, skipped, head)
