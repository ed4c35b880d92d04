"""Stored records (Edge's and qdrant-client's have the same fields) as ImagePoints, under their
public ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgsearch.vectorstore import payloads
from imgsearch.vectorstore.engine import SparseVector
from imgsearch.vectorstore.ids import public_id
from imgsearch.vectorstore.schema import CLASSES, SEMANTIC, VISUAL
from imgsearch.vectorstore.types import ImagePoint


def record_to_point(record: Any, with_vectors: bool) -> ImagePoint:
    """An ImagePoint from a record; without vectors both are empty arrays."""
    if with_vectors:
        return image_from_record(record)
    empty = np.zeros(0, dtype=np.float32)
    payload = payloads.from_stored(record.payload)
    return ImagePoint(id=public_id(record), visual=empty, semantic=empty, payload=payload)


def image_from_record(record: Any) -> ImagePoint:
    """An ImagePoint from a Qdrant record (Edge's and qdrant-client's have the same fields)."""
    vectors = record.vector or {}
    classes = vectors.get(CLASSES)
    return ImagePoint(
        id=public_id(record),
        visual=np.asarray(vectors[VISUAL], dtype=np.float32),
        semantic=np.asarray(vectors[SEMANTIC], dtype=np.float32),
        payload=payloads.from_stored(record.payload),
        classes=None if classes is None else SparseVector(tuple(classes.indices), tuple(classes.values)),
    )
