"""The indexer's other jobs as plain functions: vectors computed elsewhere, deletes, stats."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from imgsearch.embedder.results import ModelInfo
from imgsearch.errors import InvalidArgument
from imgsearch.rpc.metrics import STORE_POINTS
from imgsearch.vectorstore.base import (
    IMAGES,
    WORDS,
    ImagePoint,
    PayloadFilter,
    VectorStore,
    as_vector,
    check_point_id,
)


@dataclass
class PrecomputedPoint:
    id: str
    visual: list[float]
    semantic: list[float]
    uri: str = ""
    label: str = ""
    metadata: dict[str, str] | None = None


def upsert_vectors(store: VectorStore, info: ModelInfo, points: list[PrecomputedPoint]) -> int:
    """Validates ids and dimensions against the served model, normalises, upserts."""
    if not points:
        raise InvalidArgument("no points given")
    now = time.time()
    stored = []
    for p in points:
        if not p.id:
            raise InvalidArgument("every precomputed point needs an id (a UUID)")
        visual = _unit(as_vector(p.visual, info.visual_dim, f"point {p.id}: visual"))
        semantic = _unit(as_vector(p.semantic, info.semantic_dim, f"point {p.id}: semantic"))
        payload = {"uri": p.uri, "label": p.label, "ingested_at": now, "metadata": dict(p.metadata or {})}
        stored.append(ImagePoint(check_point_id(p.id), visual, semantic, payload))
    store.upsert_images(stored)
    return len(stored)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    if norm == 0:
        raise InvalidArgument("a zero vector cannot be searched by cosine similarity")
    return v / norm


def delete(store: VectorStore, ids: list[str], flt: PayloadFilter | None, everything: bool) -> int:
    """Deletes by ids, else by a non-empty filter, else everything when asked explicitly (the
    store's rule, VectorStore.delete_images)."""
    return store.delete_images(ids=ids, flt=flt, all=everything)


@dataclass(frozen=True)
class StoreStats:
    images: int
    words: int
    store: str


def stats(store: VectorStore) -> StoreStats:
    images, words = store.count_images(), store.count_words()
    STORE_POINTS.labels(IMAGES).set(images)
    STORE_POINTS.labels(WORDS).set(words)
    return StoreStats(images, words, store.describe())
