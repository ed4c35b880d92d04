"""Plain result types the client returns, so callers never touch protobuf messages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imgsearch.indexer.items import IngestItemResult  # noqa: TC001 - a field type of IngestSummary


@dataclass(frozen=True)
class ImageResult:
    """One image of a search result; `score` is a cosine similarity, higher is closer."""

    id: str
    score: float
    uri: str = ""
    label: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    """Images for a query, and the query words the vocabulary does not know."""

    results: list[ImageResult] = field(default_factory=list)
    unknown_terms: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WordResult:
    """One word of a tags or similar-words answer."""

    word: str
    score: float


@dataclass
class IngestSummary:
    """Totals of one `ingest` call; `failed` lists the failed items (also in `results`)."""

    ingested: int = 0
    duplicates: int = 0
    failed: list[IngestItemResult] = field(default_factory=list)
    results: list[IngestItemResult] = field(default_factory=list)


@dataclass(frozen=True)
class PointVectors:
    """Precomputed vectors for `upsert_vectors`, for callers that embed elsewhere."""

    id: str
    visual: np.ndarray | list[float]
    semantic: np.ndarray | list[float]
    uri: str = ""
    label: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageEmbedding:
    """Vectors of one image; `error` is set (and the vectors empty) when it could not be embedded."""

    visual: np.ndarray
    semantic: np.ndarray
    width: int = 0
    height: int = 0
    error_code: int = 0
    error: str = ""
