"""Plain result types the client returns, so callers never touch protobuf messages (those the
server shares come from imgsearch.types)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from imgsearch.types.items import IngestItemResult  # noqa: TC001 - a field type of IngestSummary
from imgsearch.types.queries import PointVectors, QueryPart

__all__ = [
    "Filter",
    "ImageEmbedding",
    "ImagePage",
    "ImageResult",
    "IngestSummary",
    "PointVectors",
    "QueryPart",
    "SearchResult",
    "StoredImage",
    "WordResult",
]


@dataclass(frozen=True)
class ImageResult:
    """One image of a search result; `score` is a relevance in [0, 1], higher is closer (0.5: the
    match threshold)."""

    id: str
    score: float
    uri: str = ""
    label: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    thumbnail: bytes = b""  # the server's thumbnail (JPEG or WebP), when asked for (with_thumbnails=True)


@dataclass(frozen=True)
class SearchResult:
    """Images for a query, the query words the vocabulary does not know, the stop words the
    server ignored, and how many of the results are matches (`match_count`: the first ones, scoring
    at or above the relevance threshold 0.5; the rest are weaker results; None: not counted, as by
    a server older than the count, so every result is a match)."""

    results: list[ImageResult] = field(default_factory=list)
    unknown_terms: list[str] = field(default_factory=list)
    ignored_terms: list[str] = field(default_factory=list)
    match_count: int | None = None


@dataclass(frozen=True)
class Filter:
    """Which images a query or facet considers; every field that is set must hold.

    labels: any of them; metadata: every pair; exclude_labels / exclude_metadata: none of them;
    has_metadata / missing_metadata: metadata keys present / absent."""

    labels: Sequence[str] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    exclude_labels: Sequence[str] = ()
    exclude_metadata: Sequence[tuple[str, str]] = ()
    has_metadata: Sequence[str] = ()
    missing_metadata: Sequence[str] = ()


@dataclass(frozen=True)
class WordResult:
    """One word of a tags or similar-words answer."""

    word: str
    score: float


@dataclass
class IngestSummary:
    """Totals of one `ingest` call; `failed` lists the failed items (also in `results`);
    `updated`: known images whose label or metadata the call changed."""

    ingested: int = 0
    duplicates: int = 0
    updated: int = 0
    failed: list[IngestItemResult] = field(default_factory=list)
    results: list[IngestItemResult] = field(default_factory=list)


@dataclass(frozen=True)
class ImageEmbedding:
    """Vectors of one image; `error` is set (and the vectors empty) when it could not be embedded."""

    visual: np.ndarray
    semantic: np.ndarray
    width: int = 0
    height: int = 0
    error_code: int = 0
    error: str = ""


@dataclass(frozen=True)
class StoredImage:
    """One stored record (get, list, export): its payload, and its vectors when asked for.
    `namespace` "" is the default namespace; `extra_json` holds the rest of the stored payload
    (with vectors only), so an import restores the record exactly."""

    id: str
    namespace: str = ""
    uri: str = ""
    label: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    ingested_at: float = 0.0
    sha256: str = ""
    width: int = 0
    height: int = 0
    visual: np.ndarray | None = None
    semantic: np.ndarray | None = None
    extra_json: str = ""
    # with vectors: the image's ImageNet classes (ids 0-999, one score each), when the store has them
    class_ids: tuple[int, ...] = ()
    class_scores: tuple[float, ...] = ()


@dataclass(frozen=True)
class ImagePage:
    """One page of a listing; `next_page_token` is "" after the last page."""

    images: list[StoredImage]
    next_page_token: str = ""
