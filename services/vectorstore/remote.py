"""RemoteStore: the collections on a Qdrant server (or cluster), reached with qdrant-client.

This is the many-machines shape: separate indexer and query processes share one server. The
same class runs over qdrant-client's local mode (`QdrantClient(":memory:")`, `local=True`) in
tests and trials: the same client API, but not thread-safe, so only then are calls serialised by a
lock. Connection failures become `Unavailable`, a missing collection `FailedPrecondition`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from imgsearch.errors import FailedPrecondition, InvalidArgument, ServiceError, Unavailable
from imgsearch.vectorstore.base import PAYLOAD_INDEXES, VectorStore, missing_collection
from imgsearch.vectorstore.engine import QUANTIZATION_QUANTILE, Match, Row, engine_filter, search_params

T = TypeVar("T")

# What a server's answer means for the caller: it is down, or the collection is not as expected.
_UNAVAILABLE_HTTP = {502, 503, 504}
_STATE_HTTP = {404, 409}
_UNAVAILABLE_GRPC = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_STATE_GRPC = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS}


class RemoteStore(VectorStore):
    """Both collections on a Qdrant server; `hnsw_ef` as in EdgeStore."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        local: bool = False,
        hnsw_ef: int | None = None,
        timeout: int = 10,
        shards: int | None = None,
        replicas: int | None = None,
        quantize: bool = True,
    ):
        """
        client: a ready client instead of `url` (with `local=True` for qdrant-client's local mode).
        local: the client runs qdrant-client's local mode, a dict-backed Python engine that must not
            be read while it is written, has no payload indexes and searches exactly.
        shards, replicas: of the collections this store creates (None = the server's default).
        """
        if client is None:
            if not url:
                raise InvalidArgument("RemoteStore needs a Qdrant url or a client")
            client = QdrantClient(
                url=url, prefer_grpc=True, api_key=api_key, timeout=timeout, check_compatibility=False
            )
        self._client = client
        self._url = url
        self._local = local
        self._shards = shards
        self._replicas = replicas
        self._quantize = quantize
        # Local mode searches exactly, and warns about any search parameters.
        self._params = None if local else search_params(models, hnsw_ef, quantize)
        self._dims: dict[str, dict[str, int]] = {}
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if local else contextlib.nullcontext()
        )

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
        if self._url:
            return f"qdrant server at {self._url}"
        return "qdrant-client local mode" if self._local else "qdrant-client (given client)"

    # -- primitives --------------------------------------------------------------------------

    def _stored_dims(self, name: str) -> dict[str, int] | None:
        """Asks the server, and remembers the answer for `_dims_of`."""
        if not self._call(self._client.collection_exists, name):
            self._dims.pop(name, None)
            return None
        vectors = self._call(self._client.get_collection, name).config.params.vectors
        if isinstance(vectors, dict):
            dims = {vname: int(params.size) for vname, params in vectors.items()}
        else:
            dims = {"": int(vectors.size)}
        self._dims[name] = dims
        return dims

    def _dims_of(self, name: str) -> dict[str, int]:
        dims = self._dims.get(name) or self._stored_dims(name)
        if dims is None:
            raise missing_collection(name)
        return dims

    def _create(self, name: str, dims: dict[str, int]) -> None:
        params = {
            vname: models.VectorParams(size=size, distance=models.Distance.COSINE)
            for vname, size in dims.items()
        }
        quantization = models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=QUANTIZATION_QUANTILE, always_ram=True
            )
        )
        try:
            self._call(
                self._client.create_collection,
                name,
                vectors_config=params[""] if list(params) == [""] else params,
                shard_number=self._shards,
                replication_factor=self._replicas,
                quantization_config=quantization if self._quantize else None,
            )
        except FailedPrecondition:  # another process created it meanwhile; check its sizes
            if self._stored_dims(name) != dims:
                raise
            return
        self._dims[name] = dims
        if self._local:  # local mode has no payload indexes (and warns about each)
            return
        for key, kind in PAYLOAD_INDEXES[name].items():
            schema = models.PayloadSchemaType(kind)
            self._call(self._client.create_payload_index, name, key, field_schema=schema, wait=True)

    def _drop(self, name: str) -> None:
        self._call(self._client.delete_collection, name)
        self._dims.pop(name, None)

    def _upsert(self, name: str, rows: list[Row]) -> None:
        structs = [models.PointStruct(id=r.id, vector=_plain(r.vector), payload=r.payload) for r in rows]
        self._call(self._client.upsert, name, structs, wait=True)

    def _retrieve(self, name: str, ids: list[str], full: bool) -> list[Any]:
        return self._call(self._client.retrieve, name, ids, with_payload=full, with_vectors=full)

    def _query(
        self, name: str, vector: np.ndarray, using: str | None, limit: int, match: Match | None
    ) -> list[Any]:
        response = self._call(
            self._client.query_points,
            name,
            query=vector.tolist(),
            using=using,
            limit=limit,
            query_filter=_filter(match),
            search_params=self._params,
            with_payload=True,
        )
        return response.points

    def _scroll(
        self, name: str, limit: int, offset: Any, match: Match | None, with_payload: bool
    ) -> tuple[list[Any], Any]:
        return self._call(
            self._client.scroll,
            name,
            scroll_filter=_filter(match),
            limit=limit,
            offset=offset,
            with_payload=with_payload,
            with_vectors=True,
        )

    def _count(self, name: str, match: Match | None) -> int:
        return int(self._call(self._client.count, name, count_filter=_filter(match), exact=True).count)

    def _delete(self, name: str, target: list[str] | Match) -> None:
        selector: Any = (
            models.PointIdsList(points=list(target))
            if isinstance(target, list)
            else models.FilterSelector(filter=_filter(target))
        )
        self._call(self._client.delete, name, points_selector=selector, wait=True)

    # -- internals ---------------------------------------------------------------------------

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One client call, with the client's errors mapped to domain errors."""
        self._check_open()
        try:
            with self._lock:
                return fn(*args, **kwargs)
        except Exception as e:
            error = self._domain_error(e)
            if error is None:
                raise
            raise error from e

    def _domain_error(self, e: Exception) -> ServiceError | None:
        """The domain error a client error means, read from its type and status code; None: a bug."""
        where = f"qdrant at {self._url}"
        if isinstance(e, (ResponseHandlingException, ConnectionError, TimeoutError)):
            return Unavailable(f"{where} is unreachable: {e}")
        if isinstance(e, UnexpectedResponse):
            if e.status_code in _UNAVAILABLE_HTTP:
                return Unavailable(f"{where} answered {e.status_code}")
            return FailedPrecondition(f"qdrant: {e}") if e.status_code in _STATE_HTTP else None
        if isinstance(e, grpc.Call):  # the grpc.RpcError of a failed call carries its status code
            code = e.code()
            if code in _UNAVAILABLE_GRPC:
                return Unavailable(f"{where} is unreachable: {code.name}")
            return FailedPrecondition(f"qdrant: {code.name}: {e.details()}") if code in _STATE_GRPC else None
        if self._local and isinstance(e, ValueError) and _local_collection_error(e):
            return FailedPrecondition(f"qdrant: {e}")
        return None


def _local_collection_error(e: ValueError) -> bool:
    """Whether local mode's ValueError says that a collection is missing or already exists.

    qdrant-client's local mode raises a bare ValueError for those ("Collection images not found",
    "Collection images already exists"), with no subclass or code, so its text is all there is to
    read; this is the one place that reads it, and only for a store built with `local=True`.
    """
    text = str(e)
    return text.startswith("Collection ") and text.endswith((" not found", " already exists"))


def _filter(match: Match | None) -> models.Filter | None:
    return engine_filter(match, models, lambda ids: models.HasIdCondition(has_id=list(ids)))


def _plain(vector: np.ndarray | dict[str, np.ndarray]) -> list[float] | dict[str, list[float]]:
    """A vector (or named vectors) as the lists qdrant-client sends."""
    if isinstance(vector, dict):
        return {name: v.tolist() for name, v in vector.items()}
    return vector.tolist()
