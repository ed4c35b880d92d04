"""The plain values callers of the store see: images, hits, filters and collection sizes (never a
Qdrant type)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgsearch.vectorstore.engine import SparseVector


@dataclass(frozen=True)
class ImagePoint:
    """One stored image: its two vectors and its payload.

    payload keys: uri (str), label (str), sha256 (hex str), width, height (int), ingested_at
    (float, unix seconds), metadata (dict[str, str]). Vectors come back L2-normalised, because
    both collections use cosine distance and Qdrant stores cosine vectors normalised.
    """

    id: str
    visual: np.ndarray
    semantic: np.ndarray
    payload: dict[str, Any]
    classes: SparseVector | None = None  # most probable ImageNet classes; None: not known


@dataclass(frozen=True)
class Hit:
    """A search result: its relevance `score` in [0, 1] (plan.Scale; higher is closer) and the stored
    payload; `vectors`: the named vectors the search was asked to return, by name (a dense one as
    a sequence of floats, `classes` as a SparseVector)."""

    id: str
    score: float
    payload: dict[str, Any]
    vectors: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class PayloadFilter:
    """Every field that is set must match (AND), as the proto's `Filter` says.

    `labels`: any of them (OR); `exclude_labels`, `exclude_metadata` ((key, value) pairs): none of
    them; `has_metadata` / `missing_metadata`: metadata keys present / absent. `exclude_ids` drops
    given points (an image's search for similar images skips itself).
    """

    label: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    exclude_ids: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    exclude_labels: tuple[str, ...] = ()
    exclude_metadata: tuple[tuple[str, str], ...] = ()
    has_metadata: tuple[str, ...] = ()
    missing_metadata: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (
            self.label
            or self.metadata
            or self.exclude_ids
            or self.labels
            or self.exclude_labels
            or self.exclude_metadata
            or self.has_metadata
            or self.missing_metadata
        )


@dataclass(frozen=True)
class CollectionDims:
    """Vector sizes the collections were created with (what `ensure_collections` checks)."""

    visual: int
    semantic: int
    word: int
