"""Re-embedding stored images after a head change.

A stored image keeps its CNN features as `visual` (unit length) plus `feature_norm` in the payload,
so the raw features, and the logits (a linear layer over them), can be rebuilt without the image
bytes; the embedder's current head turns them into new `semantic` vectors, and the logits give the
image's ImageNet classes (the sparse `classes` vector of the taxonomic channel).

A collection made before the `classes` vector existed cannot gain it in place (neither engine adds a
vector to existing points' storage), so reindexing one rebuilds it: every point is read into memory,
the collection is made again with the sparse vector and the points are written back with it. The
same goes for the sparse `text` vector of the lexical channel (hybrid search): the rebuilt points
get it from their label, caption and metadata as they are written back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from imgsearch.embedder.results import Embedder
from imgsearch.errors import InvalidArgument
from imgsearch.vectorstore.base import SparseVector, VectorStore
from imgsearch.vectorstore.schema import IMAGES
from imgsearch.vectorstore.types import ImagePoint

log = logging.getLogger(__name__)

BATCH = 256
MAX_BATCH = 4096  # images re-embedded per step (one embedder call each)


@dataclass(frozen=True)
class ReindexProgress:
    done: int
    total: int
    skipped: int
    head: str


def reindex(embedder: Embedder, store: VectorStore, batch: int = BATCH) -> Iterator[ReindexProgress]:
    """Rewrites every stored image's semantic vector; yields progress after each batch."""
    if not 1 <= batch <= MAX_BATCH:
        raise InvalidArgument(f"batch must be between 1 and {MAX_BATCH}, got {batch}")
    head = embedder.model_info().head
    total = store.count_images(namespace=None)  # every namespace
    done = skipped = 0
    pending: list[ImagePoint] = []

    def flush() -> None:
        nonlocal done
        features = np.stack([p.visual * float(p.payload["feature_norm"]) for p in pending])
        semantic = embedder.embed_features(features)
        classes = [
            _keep_pixel_channels(SparseVector(c.ids, c.scores), p.classes)
            for c, p in zip(embedder.classify_features(features), pending, strict=True)
        ]
        store.upsert_images(
            [replace(p, semantic=s, classes=c) for p, s, c in zip(pending, semantic, classes, strict=True)]
        )
        done += len(pending)
        pending.clear()

    points: Iterable[ImagePoint] = store.iter_images(batch)
    if not store.has_classes() or not store.has_text():  # a collection made before them
        points = _rebuild(store, list(points), batch)
    for point in points:
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


IMAGENET_CLASSES = 1000  # ids past these are other channels' (a face, colours: imgsearch.embedder)


def _keep_pixel_channels(classes: SparseVector, stored: SparseVector | None) -> SparseVector | None:
    """New ImageNet classes with the stored entries past them (a detected face, colour shares:
    measured on the pixels, which features alone cannot tell again)."""
    extra = []
    if stored:
        extra = [(i, v) for i, v in zip(stored.indices, stored.values, strict=True) if i >= IMAGENET_CLASSES]
    if extra:
        pairs = [*zip(classes.indices, classes.values, strict=True), *extra]
        classes = SparseVector(tuple(i for i, _ in pairs), tuple(v for _, v in pairs))
    return classes or None


def _rebuild(store: VectorStore, points: list[ImagePoint], batch: int) -> list[ImagePoint]:
    """Makes the `images` collection again with the sparse `classes` vector and writes `points`
    (every stored image, read beforehand) back as they were; returns them for re-embedding."""
    dims = store.collection_dims()
    if dims is None:
        return points
    log.info("rebuilding the images collection (%d images) to add the ImageNet classes vector", len(points))
    store.drop_collection(IMAGES)
    store.ensure_collections(dims.visual, dims.semantic, dims.word)
    for start in range(0, len(points), batch):
        store.upsert_images(points[start : start + batch])
    return points
