"""RemoteStore: the collections on a Qdrant server (or cluster), reached with qdrant-client.

This is the many-machines shape: separate indexer and query processes share one server. The
same class runs over qdrant-client's local mode (`QdrantClient(":memory:")`) in tests, which is
the same client API but not thread-safe, so only then are calls serialised by a lock.
Connection failures become `Unavailable`, a missing collection `FailedPrecondition`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from services.errors import FailedPrecondition, InvalidArgument, Unavailable
from services.vectorstore import payloads
from services.vectorstore.base import (
    IMAGES,
    QUANTIZATION_OVERSAMPLING,
    QUANTIZATION_QUANTILE,
    SEMANTIC,
    VISUAL,
    WORDS,
    CollectionDims,
    Hit,
    ImagePoint,
    PayloadFilter,
    VectorName,
    VectorStore,
    as_vector,
    check_k,
    check_point_id,
    image_from_record,
    word_matrix,
)

T = TypeVar("T")

_UNAVAILABLE_GRPC = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}


class RemoteStore(VectorStore):
    """Both collections on a Qdrant server; `hnsw_ef` as in EdgeStore."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        hnsw_ef: int | None = None,
        timeout: int = 10,
        shards: int | None = None,
        replicas: int | None = None,
        quantize: bool = True,
    ):
        if client is None:
            if not url:
                raise InvalidArgument("RemoteStore needs a Qdrant url or a client")
            client = QdrantClient(
                url=url, prefer_grpc=True, api_key=api_key, timeout=timeout, check_compatibility=False
            )
        self._client = client
        self._url = url
        self._hnsw_ef = hnsw_ef
        self._shards = shards
        self._replicas = replicas
        self._quantize = quantize
        self._dims: dict[str, dict[str, int]] = {}
        self._closed = False
        # Local mode (a dict-backed Python engine) must not be read while it is written.
        self._local = type(getattr(client, "_client", None)).__name__ == "QdrantLocal"
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self._local else contextlib.nullcontext()
        )

    # -- collections -------------------------------------------------------------------------

    def ensure_collections(self, visual_dim: int, semantic_dim: int, word_dim: int) -> None:
        wanted = {IMAGES: {VISUAL: visual_dim, SEMANTIC: semantic_dim}, WORDS: {"": word_dim}}
        have = {name: self._stored_dims(name) for name in wanted}
        for name, dims in wanted.items():
            if have[name] is not None and have[name] != dims:
                raise FailedPrecondition(
                    f"collection {name!r} has vector sizes {have[name]}, the models give {dims}; "
                    f"reindex (drop the collection and ingest again) to switch models"
                )
        for name, dims in wanted.items():
            if have[name] is None:
                self._create(name, dims)
            self._dims[name] = dims

    def collection_dims(self) -> CollectionDims | None:
        images, words = self._stored_dims(IMAGES), self._stored_dims(WORDS)
        if images is None or words is None:
            return None
        return CollectionDims(visual=images[VISUAL], semantic=images[SEMANTIC], word=words[""])

    def drop_collection(self, name: str) -> None:
        if name not in (IMAGES, WORDS):
            raise InvalidArgument(f"unknown collection {name!r}")
        self._call(self._client.delete_collection, name)
        self._dims.pop(name, None)

    # -- images ------------------------------------------------------------------------------

    def upsert_images(self, points: list[ImagePoint]) -> None:
        if not points:
            return
        dims = self._require_dims(IMAGES)
        structs = [
            models.PointStruct(
                id=check_point_id(p.id),
                vector={
                    VISUAL: as_vector(p.visual, dims[VISUAL], "visual vector").tolist(),
                    SEMANTIC: as_vector(p.semantic, dims[SEMANTIC], "semantic vector").tolist(),
                },
                payload=payloads.to_stored(p.payload),
            )
            for p in points
        ]
        self._call(self._client.upsert, IMAGES, structs, wait=True)

    def existing_ids(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        wanted = [check_point_id(i) for i in ids]
        records = self._call(self._client.retrieve, IMAGES, wanted, with_payload=False, with_vectors=False)
        return {str(r.id) for r in records}

    def get_image(self, id: str) -> ImagePoint | None:
        records = self._call(
            self._client.retrieve, IMAGES, [check_point_id(id)], with_payload=True, with_vectors=True
        )
        return image_from_record(records[0]) if records else None

    def search_images(
        self, vector: np.ndarray, using: VectorName, k: int, flt: PayloadFilter | None = None
    ) -> list[Hit]:
        dims = self._require_dims(IMAGES)
        if using not in (VISUAL, SEMANTIC):
            raise InvalidArgument(f"unknown vector {using!r}; use 'visual' or 'semantic'")
        response = self._call(
            self._client.query_points,
            IMAGES,
            query=as_vector(vector, dims[using], f"{using} query").tolist(),
            using=using,
            limit=check_k(k),
            query_filter=_filter(flt),
            search_params=self._params(),
            with_payload=True,
        )
        return [
            Hit(id=str(p.id), score=float(p.score), payload=payloads.from_stored(p.payload))
            for p in response.points
        ]

    def delete_images(
        self, ids: list[str] | None = None, flt: PayloadFilter | None = None, all: bool = False
    ) -> int:
        if all:
            deleted = self.count_images()
            selector: Any = models.FilterSelector(filter=models.Filter())
        elif ids:
            wanted = [check_point_id(i) for i in ids]
            deleted = len(self.existing_ids(wanted))
            selector = models.PointIdsList(points=wanted)
        elif flt is not None and not flt.is_empty():
            deleted = self.count_images(flt)
            selector = models.FilterSelector(filter=_filter(flt))
        else:
            raise InvalidArgument("delete needs ids, a non-empty filter, or all=True")
        if deleted:
            self._call(self._client.delete, IMAGES, points_selector=selector, wait=True)
        return deleted

    def count_images(self, flt: PayloadFilter | None = None) -> int:
        return int(self._call(self._client.count, IMAGES, count_filter=_filter(flt), exact=True).count)

    def iter_images(self, batch: int = 256) -> Iterator[ImagePoint]:
        offset: Any = None
        while True:
            records, offset = self._call(
                self._client.scroll, IMAGES, limit=batch, offset=offset, with_payload=True, with_vectors=True
            )
            yield from (image_from_record(r) for r in records)
            if offset is None:
                return

    # -- words -------------------------------------------------------------------------------

    def upsert_words(self, start_rank: int, words: list[str], vectors: np.ndarray) -> None:
        matrix = word_matrix(words, vectors, self._require_dims(WORDS)[""])
        structs = [
            models.PointStruct(
                id=start_rank + i,
                vector=matrix[i].tolist(),
                payload={payloads.WORD: w, payloads.RANK: start_rank + i},
            )
            for i, w in enumerate(words)
            if np.any(matrix[i])  # a zero vector has no cosine direction
        ]
        if structs:
            self._call(self._client.upsert, WORDS, structs, wait=True)

    def search_words(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        dim = self._require_dims(WORDS)[""]
        response = self._call(
            self._client.query_points,
            WORDS,
            query=as_vector(vector, dim, "word query").tolist(),
            limit=check_k(k),
            search_params=self._params(),
            with_payload=True,
        )
        return [(str(p.payload[payloads.WORD]), float(p.score)) for p in response.points]

    def word_vector(self, word: str) -> np.ndarray | None:
        records, _ = self._call(
            self._client.scroll,
            WORDS,
            scroll_filter=models.Filter(
                must=[models.FieldCondition(key=payloads.WORD, match=models.MatchValue(value=word))]
            ),
            limit=1,
            with_payload=False,
            with_vectors=True,
        )
        if not records:
            return None
        vector = records[0].vector
        if isinstance(vector, dict):
            vector = vector[""]
        return np.asarray(vector, dtype=np.float32)

    def count_words(self) -> int:
        return int(self._call(self._client.count, WORDS, exact=True).count)

    # -- lifecycle ---------------------------------------------------------------------------

    def optimize(self) -> None:
        """The server optimizes on its own; waiting for it would block ingestion for nothing."""

    def flush(self) -> None:
        """Writes are made with wait=True, so the server has them once they return."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._client.close()

    def describe(self) -> str:
        return f"qdrant server at {self._url}" if self._url else "qdrant-client (given client)"

    # -- internals ---------------------------------------------------------------------------

    def _create(self, name: str, dims: dict[str, int]) -> None:
        if name == IMAGES:
            vectors: Any = {
                vname: models.VectorParams(size=size, distance=models.Distance.COSINE)
                for vname, size in dims.items()
            }
            indexes = {
                payloads.LABEL: models.PayloadSchemaType.KEYWORD,
                payloads.META_KV: models.PayloadSchemaType.KEYWORD,
            }
        else:
            vectors = models.VectorParams(size=dims[""], distance=models.Distance.COSINE)
            indexes = {
                payloads.WORD: models.PayloadSchemaType.KEYWORD,
                payloads.RANK: models.PayloadSchemaType.INTEGER,
            }
        try:
            self._call(
                self._client.create_collection,
                name,
                vectors_config=vectors,
                shard_number=self._shards,
                replication_factor=self._replicas,
                quantization_config=models.ScalarQuantization(
                    scalar=models.ScalarQuantizationConfig(
                        type=models.ScalarType.INT8, quantile=QUANTIZATION_QUANTILE, always_ram=True
                    )
                )
                if self._quantize
                else None,
            )
        except FailedPrecondition:  # another process created it meanwhile; check its sizes
            if self._stored_dims(name) != dims:
                raise
            return
        if self._local:  # local mode has no payload indexes (and warns about each)
            return
        for key, schema in indexes.items():
            self._call(self._client.create_payload_index, name, key, field_schema=schema, wait=True)

    def _stored_dims(self, name: str) -> dict[str, int] | None:
        if not self._call(self._client.collection_exists, name):
            return None
        vectors = self._call(self._client.get_collection, name).config.params.vectors
        if isinstance(vectors, dict):
            return {vname: int(params.size) for vname, params in vectors.items()}
        return {"": int(vectors.size)}

    def _require_dims(self, name: str) -> dict[str, int]:
        if name not in self._dims:
            dims = self._stored_dims(name)
            if dims is None:
                raise FailedPrecondition(f"collection {name!r} does not exist yet (ensure_collections first)")
            self._dims[name] = dims
        return self._dims[name]

    def _params(self) -> models.SearchParams | None:
        if self._local:  # local mode searches exactly and warns about any search parameters
            return None
        if not self._quantize:  # search the original vectors, even of a collection quantized before
            return models.SearchParams(
                hnsw_ef=self._hnsw_ef, quantization=models.QuantizationSearchParams(ignore=True)
            )
        rescore = models.QuantizationSearchParams(rescore=True, oversampling=QUANTIZATION_OVERSAMPLING)
        return models.SearchParams(hnsw_ef=self._hnsw_ef, quantization=rescore)

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One client call, with transport failures mapped to domain errors."""
        if self._closed:
            raise FailedPrecondition("the vector store is closed")
        try:
            with self._lock:
                return fn(*args, **kwargs)
        except (ResponseHandlingException, ConnectionError, TimeoutError) as e:
            raise Unavailable(f"qdrant at {self._url} is unreachable: {e}") from e
        except UnexpectedResponse as e:
            if e.status_code in (502, 503, 504):
                raise Unavailable(f"qdrant at {self._url} answered {e.status_code}") from e
            if e.status_code in (404, 409):
                raise FailedPrecondition(f"qdrant: {e}") from e
            raise
        except ValueError as e:  # local mode reports a missing or duplicate collection this way
            text = str(e)
            if "not found" in text or "already exists" in text:
                raise FailedPrecondition(f"qdrant: {text}") from e
            raise
        except Exception as e:
            code = _grpc_code_name(e)
            if code in _UNAVAILABLE_GRPC:
                raise Unavailable(f"qdrant at {self._url} is unreachable: {code}") from e
            if code in ("NOT_FOUND", "ALREADY_EXISTS"):
                raise FailedPrecondition(f"qdrant: {code}: {e}") from e
            raise


def _grpc_code_name(e: Exception) -> str | None:
    """The status code name of a grpc.RpcError, read without importing grpc into store code."""
    code = getattr(e, "code", None)
    if not callable(code):
        return None
    try:
        return getattr(code(), "name", None)
    except Exception:
        return None


def _filter(flt: PayloadFilter | None) -> models.Filter | None:
    if flt is None or flt.is_empty():
        return None
    must: list[Any] = []
    if flt.label:
        must.append(models.FieldCondition(key=payloads.LABEL, match=models.MatchValue(value=flt.label)))
    for key, value in sorted(flt.metadata.items()):
        token = payloads.meta_token(key, value)
        must.append(models.FieldCondition(key=payloads.META_KV, match=models.MatchValue(value=token)))
    must_not = (
        [models.HasIdCondition(has_id=[check_point_id(i) for i in flt.exclude_ids])]
        if flt.exclude_ids
        else None
    )
    return models.Filter(must=must or None, must_not=must_not)
