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
from dataclasses import replace
from typing import Any, TypeVar

import grpc
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from imgsearch.errors import FailedPrecondition, InvalidArgument, ServiceError, Unavailable
from imgsearch.vectorstore import engine, plan
from imgsearch.vectorstore.base import VectorStore
from imgsearch.vectorstore.checks import missing_collection
from imgsearch.vectorstore.engine import Match, Page, Row, SparseVector
from imgsearch.vectorstore.payloads import THUMBNAIL
from imgsearch.vectorstore.plan import Ranking
from imgsearch.vectorstore.schema import IDF_VECTORS, PAYLOAD_INDEXES, SPARSE_VECTORS
from imgsearch.vectorstore.storage import LARGE_WORD_SPACE_EF, WORD_SPACE_EF, StorageOptions

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
        storage: StorageOptions | None = None,
    ):
        """
        storage: how collections are laid out when created (vectorstore/storage.py); quantize=False
            overrides its quantization with "none". Local mode keeps only the quantization.
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
        storage = storage or StorageOptions()
        self._storage = storage if quantize else replace(storage, quantization="none")
        self._quantize = self._storage.quantized
        # Local mode searches exactly, and warns about any search parameters.
        self._params = (
            None
            if local
            else engine.search_params(models, hnsw_ef, self._quantize, self._storage.oversampling)
        )
        self._word_params = None if local else engine.search_params(models, hnsw_ef or WORD_SPACE_EF, False)
        self._large_word_params = (
            None if local or hnsw_ef else engine.search_params(models, LARGE_WORD_SPACE_EF, False)
        )
        self._dims: dict[str, dict[str, int]] = {}
        self._sparse: dict[str, tuple[str, ...]] = {}  # the sparse vectors of each collection
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
        config = self._call(self._client.get_collection, name).config.params
        vectors = config.vectors
        if isinstance(vectors, dict):
            dims = {vname: int(params.size) for vname, params in vectors.items()}
        else:
            dims = {"": int(vectors.size)}
        self._dims[name] = dims
        self._sparse[name] = tuple(config.sparse_vectors or ())
        return dims

    def _sparse_names(self, name: str) -> tuple[str, ...]:
        if name not in self._sparse:
            self._stored_dims(name)
        return self._sparse.get(name, ())

    def _dims_of(self, name: str) -> dict[str, int]:
        dims = self._dims.get(name) or self._stored_dims(name)
        if dims is None:
            raise missing_collection(name)
        return dims

    def _create(self, name: str, dims: dict[str, int]) -> None:
        sparse = SPARSE_VECTORS.get(name, ())
        params = {
            vname: self._storage.remote_vector_params(models, vname, size, self._local)
            for vname, size in dims.items()
        }
        # Local mode keeps everything in RAM, and warns about the rest.
        layout = {} if self._local else self._storage.remote_collection(models)
        try:
            self._call(
                self._client.create_collection,
                name,
                vectors_config=params[""] if list(params) == [""] else params,
                sparse_vectors_config={vname: _sparse_params(vname) for vname in sparse} or None,
                shard_number=self._shards,
                replication_factor=self._replicas,
                **layout,
            )
        except FailedPrecondition:  # another process created it meanwhile; check its sizes
            if self._stored_dims(name) != dims:
                raise
            return
        self._dims[name] = dims
        self._sparse[name] = sparse
        if self._local:  # local mode has no payload indexes (and warns about each)
            return
        for key, kind in PAYLOAD_INDEXES[name].items():
            self._call(self._client.create_payload_index, name, key, field_schema=_schema(kind), wait=True)

    def _drop(self, name: str) -> None:
        self._call(self._client.delete_collection, name)
        self._sparse.pop(name, None)
        self._dims.pop(name, None)

    def _upsert(self, name: str, rows: list[Row]) -> None:
        structs = [models.PointStruct(id=r.id, vector=_plain(r.vector), payload=r.payload) for r in rows]
        self._call(self._client.upsert, name, structs, wait=True)

    def _retrieve(
        self, name: str, ids: list[str], full: bool, with_vectors: bool | list[str] | None = None
    ) -> list[Any]:
        vectors = full if with_vectors is None else with_vectors
        return self._call(self._client.retrieve, name, ids, with_payload=full, with_vectors=vectors)

    def _query(
        self, name: str, ranking: Ranking, using: str | None, limit: int, match: Match | None
    ) -> list[Any]:
        """The plan (plan.py) in qdrant-client's classes: the translator."""
        p, flt = plan.build(ranking, using, limit), _filter(match)
        prefetch = [
            models.Prefetch(
                query=_ranked(c.source),
                using=c.source.using or None,
                limit=c.limit,
                filter=flt if c.filtered else None,
                params=None if c.source.sparse else self._params_for(c.source.using),
                score_threshold=c.threshold,
            )
            for c in p.prefetches
        ]
        query: Any
        using = None  # the top level's vector: that of a plain or diverse query
        if isinstance(p.query, plan.Nearest):
            query, using = _ranked(p.query), p.query.using
        elif isinstance(p.query, plan.Formula):
            defaults = {f"$score[{i}]": 0.0 for i in range(len(prefetch))}
            query = models.FormulaQuery(formula=_expression(p.query.expr), defaults=defaults)
        elif isinstance(p.query, plan.Fusion):
            query = models.RrfQuery(rrf=models.Rrf(k=plan.RRF_K, weights=list(p.query.weights)))
        else:  # qdrant-client's Mmr takes the diversity, 1 - lambda
            d, using = p.query, p.query.using
            mmr = models.Mmr(diversity=1.0 - d.lambda_, candidates_limit=d.candidates)
            query = models.NearestQuery(nearest=d.vector.tolist(), mmr=mmr)
        response = self._call(
            self._client.query_points,
            name,
            query=query,
            using=using,
            prefetch=prefetch or None,
            offset=p.offset or None,
            limit=p.limit,
            query_filter=flt,
            score_threshold=p.threshold,
            search_params=self._params_for(p.params),
            with_payload=models.PayloadSelectorExclude(exclude=[THUMBNAIL]),
            with_vectors=list(p.vectors) or False,
        )
        return response.points

    def _facet(self, name: str, key: str, match: Match | None, limit: int) -> list[tuple[str, int]]:
        flt = _filter(match)
        response = self._call(self._client.facet, name, key, facet_filter=flt, limit=limit, exact=True)
        return [(str(h.value), int(h.count)) for h in response.hits]

    def _scroll(self, name: str, page: Page) -> tuple[list[Any], Any]:
        paths = page.with_payload
        return self._call(
            self._client.scroll,
            name,
            scroll_filter=_filter(page.match),
            limit=page.limit,
            offset=page.offset,
            with_payload=list(paths) if isinstance(paths, tuple) else paths,
            with_vectors=page.with_vector,
        )

    def _overwrite_payloads(self, name: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
        set_payload = models.SetPayload
        operations = [
            models.OverwritePayloadOperation(overwrite_payload=set_payload(payload=payload, points=[pid]))
            for pid, payload in rows
        ]
        self._call(self._client.batch_update_points, name, update_operations=operations, wait=True)

    def _update_vectors(self, name: str, rows: list[Row]) -> None:
        points = [models.PointVectors(id=r.id, vector=_plain(r.vector)) for r in rows]
        self._call(self._client.update_vectors, name, points, wait=True)

    def _set_payload(self, name: str, match: Match, payload: dict[str, Any]) -> None:
        selector = models.FilterSelector(filter=_filter(match))
        self._call(self._client.set_payload, name, payload=payload, points=selector, wait=True)

    def _add_missing_indexes(self, name: str) -> None:
        if self._local:  # local mode has no payload indexes
            return
        have = self._call(self._client.get_collection, name).payload_schema or {}
        for key, kind in PAYLOAD_INDEXES[name].items():
            if key not in have:
                schema = _schema(kind)
                self._call(self._client.create_payload_index, name, key, field_schema=schema, wait=True)

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


def _ranked(source: plan.Nearest) -> Any:
    """Nearest to the vector, or with negatives the engine's recommend query (best-score strategy)."""
    vector = source.vector
    if isinstance(vector, SparseVector):
        return _sparse(vector)
    if not source.negatives:
        return vector.tolist()
    recommend = models.RecommendInput(
        positive=[vector.tolist()],
        negative=[n.tolist() for n in source.negatives],
        strategy=models.RecommendStrategy.BEST_SCORE,
    )
    return models.RecommendQuery(recommend=recommend)


def _expression(x: plan.Expr) -> Any:
    """A plan's score formula as qdrant-client's expression models."""
    if isinstance(x, plan.Score):
        return f"$score[{x.prefetch}]"
    if isinstance(x, plan.Sum):
        return models.SumExpression(sum=[_expression(t) for t in x.terms])
    if isinstance(x, plan.Product):
        return models.MultExpression(mult=[_expression(t) for t in x.factors])
    if isinstance(x, plan.Negated):
        return models.NegExpression(neg=_expression(x.term))
    return float(x)


def _sparse_params(vname: str) -> models.SparseVectorParams:
    """A sparse vector's parameters: the lexical one with the engine's IDF modifier."""
    return models.SparseVectorParams(modifier=models.Modifier.IDF if vname in IDF_VECTORS else None)


def _schema(kind: str) -> Any:
    """A PAYLOAD_INDEXES kind as qdrant-client's index schema ("tenant": a keyword tenant index)."""
    if kind == "tenant":
        return models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
    return models.PayloadSchemaType(kind)


def _filter(match: Match | None) -> models.Filter | None:
    return engine.engine_filter(
        match,
        models,
        lambda ids: models.HasIdCondition(has_id=list(ids)),
        lambda path: models.IsEmptyCondition(is_empty=models.PayloadField(key=path)),
    )


def _plain(vector: np.ndarray | dict[str, Any]) -> list[float] | dict[str, Any]:
    """A vector (or named vectors) as the lists qdrant-client sends (sparse ones as its SparseVector)."""
    if isinstance(vector, dict):
        return {name: _sparse(v) if isinstance(v, SparseVector) else v.tolist() for name, v in vector.items()}
    return vector.tolist()


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))
