"""The vector-store interface the indexer and query services program against.

Two implementations stand behind it: Qdrant Edge in-process (the embedded default) and a Qdrant
server through qdrant-client. Callers see plain dataclasses and numpy arrays, never Qdrant types,
so the services and their tests do not care which one is configured.

`VectorStore` is a template: its public methods validate input, apply the store's rules and build
an engine-neutral request (`Row`, `Match`) once; an adapter implements only the primitives
(`_create`, `_upsert`, `_query`, ...) that speak to its engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from imgsearch.errors import FailedPrecondition, InvalidArgument
from imgsearch.vectorstore import payloads
from imgsearch.vectorstore.checks import as_vector, check_k, check_point_id, word_matrix
from imgsearch.vectorstore.engine import Match, Row

IMAGES = "images"
WORDS = "words"
VISUAL = "visual"
SEMANTIC = "semantic"

VectorName = Literal["visual", "semantic"]

# Payload keys of the `images` collection (besides user metadata under "metadata").
IMAGE_PAYLOAD_KEYS = ("uri", "label", "sha256", "width", "height", "ingested_at", "metadata")

# The payload indexes each collection is created with: what filters and word lookups match on.
PAYLOAD_INDEXES: dict[str, dict[str, Literal["keyword", "integer"]]] = {
    IMAGES: {payloads.LABEL: "keyword", payloads.META_KV: "keyword"},
    WORDS: {payloads.WORD: "keyword", payloads.RANK: "integer"},
}


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
    raise imgsearch.errors: FailedPrecondition when the collections are missing or have other
    dimensions, Unavailable when a remote store cannot be reached, InvalidArgument for bad input.
    """

    _closed: bool = False

    # -- collections -------------------------------------------------------------------------

    def ensure_collections(self, visual_dim: int, semantic_dim: int, word_dim: int) -> None:
        """Creates `images` and `words` if missing; FailedPrecondition if they exist with other sizes."""
        wanted = {IMAGES: {VISUAL: visual_dim, SEMANTIC: semantic_dim}, WORDS: {"": word_dim}}
        self._check_open()
        have = {name: self._stored_dims(name) for name in wanted}
        for name, dims in wanted.items():
            if have[name] is not None and have[name] != dims:
                raise FailedPrecondition(
                    f"collection {name!r} has vector sizes {_fmt(have[name])}, the models give {_fmt(dims)}; "
                    f"reindex (drop the collection and ingest again) to switch models"
                )
        for name, dims in wanted.items():
            if have[name] is None:
                self._create(name, dims)

    def collection_dims(self) -> CollectionDims | None:
        """Sizes of the existing collections, or None when they do not exist yet."""
        images, words = self._stored_dims(IMAGES), self._stored_dims(WORDS)
        if images is None or words is None:
            return None
        return CollectionDims(visual=images[VISUAL], semantic=images[SEMANTIC], word=words[""])

    def drop_collection(self, name: str) -> None:
        """Deletes one collection with all its points (a head or word-vector change needs new sizes)."""
        if name not in (IMAGES, WORDS):
            raise InvalidArgument(f"unknown collection {name!r}")
        self._check_open()
        self._drop(name)

    # -- images ------------------------------------------------------------------------------

    def upsert_images(self, points: list[ImagePoint]) -> None:
        """Inserts or replaces images by id."""
        if not points:
            return
        dims = self._dims_of(IMAGES)
        rows = [
            Row(
                check_point_id(p.id),
                {
                    VISUAL: as_vector(p.visual, dims[VISUAL], "visual vector"),
                    SEMANTIC: as_vector(p.semantic, dims[SEMANTIC], "semantic vector"),
                },
                payloads.to_stored(p.payload),
            )
            for p in points
        ]
        self._upsert(IMAGES, rows)

    def existing_ids(self, ids: list[str]) -> set[str]:
        """The subset of `ids` already stored (duplicate detection before embedding)."""
        if not ids:
            return set()
        wanted = [check_point_id(i) for i in ids]
        self._dims_of(IMAGES)
        return {str(r.id) for r in self._retrieve(IMAGES, wanted, full=False)}

    def get_image(self, id: str) -> ImagePoint | None:
        """One image with its vectors, or None."""
        wanted = check_point_id(id)
        self._dims_of(IMAGES)
        records = self._retrieve(IMAGES, [wanted], full=True)
        return image_from_record(records[0]) if records else None

    def search_images(
        self, vector: np.ndarray, using: VectorName, k: int, flt: PayloadFilter | None = None
    ) -> list[Hit]:
        """The k nearest images by the named vector, best first."""
        dims = self._dims_of(IMAGES)
        if using not in (VISUAL, SEMANTIC):
            raise InvalidArgument(f"unknown vector {using!r}; use 'visual' or 'semantic'")
        query = as_vector(vector, dims[using], f"{using} query")
        scored = self._query(IMAGES, query, using, check_k(k), match_of(flt))
        return [
            Hit(id=str(p.id), score=float(p.score), payload=payloads.from_stored(p.payload)) for p in scored
        ]

    def delete_images(
        self, ids: list[str] | None = None, flt: PayloadFilter | None = None, all: bool = False
    ) -> int:
        """Deletes by ids, else by a non-empty filter, else everything when `all` is asked for
        explicitly (the narrowest selection given wins, so a stray `all` never widens a delete);
        returns how many points were deleted."""
        target: list[str] | Match
        if ids:
            target = [check_point_id(i) for i in ids]
        elif (match := match_of(flt)) is not None:  # None: no filter, or an empty one
            target = match
        elif all:
            target = Match()
        else:
            raise InvalidArgument("delete needs ids, a non-empty filter, or all=True")
        self._dims_of(IMAGES)
        if isinstance(target, list):
            deleted = len(self._retrieve(IMAGES, target, full=False))
        else:
            deleted = self._count(IMAGES, target)
        if deleted:
            self._delete(IMAGES, target)
        return deleted

    def count_images(self, flt: PayloadFilter | None = None) -> int:
        self._dims_of(IMAGES)
        return self._count(IMAGES, match_of(flt))

    def iter_images(self, batch: int = 256) -> Iterator[ImagePoint]:
        """Every stored image with vectors, in batches (reindexing after a head change)."""
        self._dims_of(IMAGES)
        offset: Any = None
        while True:
            records, offset = self._scroll(IMAGES, batch, offset, None, with_payload=True)
            yield from (image_from_record(r) for r in records)
            if offset is None:
                return

    # -- words -------------------------------------------------------------------------------

    def upsert_words(self, start_rank: int, words: list[str], vectors: np.ndarray) -> None:
        """Stores words with ids start_rank, start_rank + 1, ... (rank = frequency order)."""
        matrix = word_matrix(words, vectors, self._dims_of(WORDS)[""])
        rows = [
            Row(start_rank + i, matrix[i], {payloads.WORD: w, payloads.RANK: start_rank + i})
            for i, w in enumerate(words)
            if np.any(matrix[i])  # a zero vector has no cosine direction; Qdrant would store NaNs
        ]
        if rows:
            self._upsert(WORDS, rows)

    def search_words(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k nearest words with cosine similarity, best first."""
        query = as_vector(vector, self._dims_of(WORDS)[""], "word query")
        scored = self._query(WORDS, query, None, check_k(k), None)
        return [(str(p.payload[payloads.WORD]), float(p.score)) for p in scored]

    def word_vector(self, word: str) -> np.ndarray | None:
        """The stored (normalised) vector of a word, or None."""
        self._dims_of(WORDS)
        match = Match(must=((payloads.WORD, word),))
        records, _ = self._scroll(WORDS, 1, None, match, with_payload=False)
        if not records:
            return None
        vector = records[0].vector
        if isinstance(vector, dict):
            vector = vector[""]
        return np.asarray(vector, dtype=np.float32)

    def count_words(self) -> int:
        self._dims_of(WORDS)
        return self._count(WORDS, None)

    # -- lifecycle ---------------------------------------------------------------------------

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

    # -- what an adapter implements ----------------------------------------------------------
    # `name` is IMAGES or WORDS; the public methods have checked the input and, except for the
    # collection primitives, that the collection exists.

    @abstractmethod
    def _stored_dims(self, name: str) -> dict[str, int] | None:
        """The collection's vector sizes as the engine has them now, or None when it does not exist."""

    @abstractmethod
    def _dims_of(self, name: str) -> dict[str, int]:
        """The sizes of an existing collection (may be remembered); FailedPrecondition otherwise."""

    @abstractmethod
    def _create(self, name: str, dims: dict[str, int]) -> None:
        """Creates the collection with cosine vectors of `dims` (`""` = unnamed) and PAYLOAD_INDEXES."""

    @abstractmethod
    def _drop(self, name: str) -> None:
        """Deletes the collection if it exists."""

    @abstractmethod
    def _upsert(self, name: str, rows: list[Row]) -> None: ...

    @abstractmethod
    def _retrieve(self, name: str, ids: list[str], full: bool) -> list[Any]:
        """Records (`.id`, and with `full` `.vector` and `.payload`) of the ids that exist."""

    @abstractmethod
    def _query(
        self, name: str, vector: np.ndarray, using: str | None, limit: int, match: Match | None
    ) -> list[Any]:
        """Scored points (`.id`, `.score`, `.payload`), best first."""

    @abstractmethod
    def _scroll(
        self, name: str, limit: int, offset: Any, match: Match | None, with_payload: bool
    ) -> tuple[list[Any], Any]:
        """One page of records with vectors, and the offset of the next page (None after the last)."""

    @abstractmethod
    def _count(self, name: str, match: Match | None) -> int:
        """The exact number of points that match."""

    @abstractmethod
    def _delete(self, name: str, target: list[str] | Match) -> None:
        """Deletes the points with these ids, or those matching."""

    # -- helpers -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("the vector store is closed")


def missing_collection(name: str) -> FailedPrecondition:
    """The error of a call on a collection that was not created."""
    return FailedPrecondition(f"collection {name!r} does not exist yet (ensure_collections first)")


def match_of(flt: PayloadFilter | None) -> Match | None:
    """A PayloadFilter as the engine-neutral Match (None when it filters nothing)."""
    if flt is None or flt.is_empty():
        return None
    must = [(payloads.LABEL, flt.label)] if flt.label else []
    must += [(payloads.META_KV, payloads.meta_token(k, v)) for k, v in sorted(flt.metadata.items())]
    return Match(must=tuple(must), exclude_ids=tuple(check_point_id(i) for i in flt.exclude_ids))


def image_from_record(record: Any) -> ImagePoint:
    """An ImagePoint from a Qdrant record (Edge's and qdrant-client's have the same fields)."""
    vectors = record.vector or {}
    return ImagePoint(
        id=str(record.id),
        visual=np.asarray(vectors[VISUAL], dtype=np.float32),
        semantic=np.asarray(vectors[SEMANTIC], dtype=np.float32),
        payload=payloads.from_stored(record.payload),
    )


def _fmt(dims: dict[str, int] | None) -> str:
    return ", ".join(f"{name or 'word'}={size}" for name, size in (dims or {}).items())
