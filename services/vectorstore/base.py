"""The vector-store interface the indexer and query services program against.

Two implementations stand behind it: Qdrant Edge in-process (the embedded default) and a Qdrant
server through qdrant-client. Callers see plain dataclasses and numpy arrays, never Qdrant types,
so the services and their tests do not care which one is configured.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from services.errors import InvalidArgument
from services.vectorstore import payloads

IMAGES = "images"
WORDS = "words"
VISUAL = "visual"
SEMANTIC = "semantic"

VectorName = Literal["visual", "semantic"]

# Scalar (int8) quantization of every stored vector, kept in RAM: a search walks the graph over
# vectors a quarter of the size, then rescores OVERSAMPLING x k candidates with the original vectors,
# so the scores returned are exact. On 100,000 images: direct search 0.22 -> 0.15 ms, recall@10
# 0.998 -> 0.991 (without rescoring 0.95), and less of the search's slowdown between gRPC calls
# (benchmarks/README.md). IMGSEARCH_QUANTIZATION=none stores plain float32 only.
QUANTIZATION_QUANTILE = 0.99
QUANTIZATION_OVERSAMPLING = 2.0
QUANTIZATIONS = ("int8", "none")

# Payload keys of the `images` collection (besides user metadata under "metadata").
IMAGE_PAYLOAD_KEYS = ("uri", "label", "sha256", "width", "height", "ingested_at", "metadata")


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


@dataclass(frozen=True)
class Hit:
    """A search result: cosine similarity `score` (higher is closer) and the stored payload."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class PayloadFilter:
    """Every field that is set must match (AND), as the proto's `Filter` says.

    `exclude_ids` drops given points (an image's search for similar images skips itself).
    """

    label: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    exclude_ids: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not self.label and not self.metadata and not self.exclude_ids


@dataclass(frozen=True)
class CollectionDims:
    """Vector sizes the collections were created with (what `ensure_collections` checks)."""

    visual: int
    semantic: int
    word: int


class VectorStore(ABC):
    """Typed access to the `images` and `words` collections.

    Every method may be called from several threads at once (a gRPC server's pool). Methods
    raise services.errors: FailedPrecondition when the collections are missing or have other
    dimensions, Unavailable when a remote store cannot be reached, InvalidArgument for bad input.
    """

    @abstractmethod
    def ensure_collections(self, visual_dim: int, semantic_dim: int, word_dim: int) -> None:
        """Creates `images` and `words` if missing; FailedPrecondition if they exist with other sizes."""

    @abstractmethod
    def collection_dims(self) -> CollectionDims | None:
        """Sizes of the existing collections, or None when they do not exist yet."""

    @abstractmethod
    def drop_collection(self, name: str) -> None:
        """Deletes one collection with all its points (a head or word-vector change needs new sizes)."""

    @abstractmethod
    def upsert_images(self, points: list[ImagePoint]) -> None:
        """Inserts or replaces images by id."""

    @abstractmethod
    def existing_ids(self, ids: list[str]) -> set[str]:
        """The subset of `ids` already stored (duplicate detection before embedding)."""

    @abstractmethod
    def get_image(self, id: str) -> ImagePoint | None:
        """One image with its vectors, or None."""

    @abstractmethod
    def search_images(
        self, vector: np.ndarray, using: VectorName, k: int, flt: PayloadFilter | None = None
    ) -> list[Hit]:
        """The k nearest images by the named vector, best first."""

    @abstractmethod
    def delete_images(
        self, ids: list[str] | None = None, flt: PayloadFilter | None = None, all: bool = False
    ) -> int:
        """Deletes by ids, by filter, or everything; returns how many points were deleted."""

    @abstractmethod
    def count_images(self, flt: PayloadFilter | None = None) -> int: ...

    @abstractmethod
    def count_words(self) -> int: ...

    @abstractmethod
    def upsert_words(self, start_rank: int, words: list[str], vectors: np.ndarray) -> None:
        """Stores words with ids start_rank, start_rank + 1, ... (rank = frequency order)."""

    @abstractmethod
    def search_words(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k nearest words with cosine similarity, best first."""

    @abstractmethod
    def word_vector(self, word: str) -> np.ndarray | None:
        """The stored (normalised) vector of a word, or None."""

    @abstractmethod
    def iter_images(self, batch: int = 256) -> Iterator[ImagePoint]:
        """Every stored image with vectors, in batches (reindexing after a head change)."""

    @abstractmethod
    def optimize(self) -> None:
        """Brings indexes up to date after bulk loads; blocks until done."""

    @abstractmethod
    def flush(self) -> None:
        """Makes every acknowledged write durable."""

    @abstractmethod
    def close(self) -> None:
        """Flushes and releases the store; later calls raise FailedPrecondition."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data lives, for logs and stats."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_point_id(id: str) -> str:
    """Qdrant ids are UUIDs or integers; images use UUID strings, normalised to canonical form."""
    try:
        return str(uuid.UUID(str(id)))
    except ValueError:
        raise InvalidArgument(f"image id must be a UUID, got {id!r}") from None


def check_k(k: int) -> int:
    if k < 1:
        raise InvalidArgument(f"k must be at least 1, got {k}")
    return k


def as_vector(vector: np.ndarray | list[float], dim: int | None = None, what: str = "vector") -> np.ndarray:
    """A 1-d float32 vector of the expected size (InvalidArgument otherwise)."""
    v = np.asarray(vector, dtype=np.float32)
    if v.ndim != 1:
        raise InvalidArgument(f"{what} must be one-dimensional, got shape {v.shape}")
    if dim is not None and v.shape[0] != dim:
        raise InvalidArgument(f"{what} has {v.shape[0]} dimensions, the collection has {dim}")
    if not np.all(np.isfinite(v)):
        raise InvalidArgument(f"{what} contains NaN or infinity")
    return v


def word_matrix(words: list[str], vectors: np.ndarray, dim: int) -> np.ndarray:
    """Word vectors as a (len(words), dim) float32 matrix (InvalidArgument otherwise)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape != (len(words), dim):
        raise InvalidArgument(f"expected {len(words)} word vectors of size {dim}, got shape {matrix.shape}")
    return matrix


def image_from_record(record: Any) -> ImagePoint:
    """An ImagePoint from a Qdrant record (Edge's and qdrant-client's have the same fields)."""
    vectors = record.vector or {}
    return ImagePoint(
        id=str(record.id),
        visual=np.asarray(vectors[VISUAL], dtype=np.float32),
        semantic=np.asarray(vectors[SEMANTIC], dtype=np.float32),
        payload=payloads.from_stored(record.payload),
    )
