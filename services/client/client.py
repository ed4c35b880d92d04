"""ImageSearchClient: the Python API backend code imports instead of hand-writing stubs and channels.

Query and embedder calls go to `addr` (the all-in-one server serves everything there); ingestion,
deletes, vocabulary and stats go to `indexer_addr` when given. Channels are created on first use,
one per distinct address, and every call carries a deadline and the bearer token.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imgsearch.client.channel import MAX_MESSAGE_BYTES, create_channel
from imgsearch.client.errors import ClientError
from imgsearch.client.types import (
    ImageEmbedding,
    ImageResult,
    IngestSummary,
    PointVectors,
    SearchResult,
    WordResult,
)
from imgsearch.embedder.convert import model_info_from_proto
from imgsearch.embedder.remote import RemoteEmbedder
from imgsearch.embedder.results import ImageOutcome, TextEmbedding
from imgsearch.errors import ServiceError
from imgsearch.indexer.items import IngestItem, IngestItemResult
from imgsearch.protogen.imagesearch.v1 import (
    common_pb2,
    embedder_pb2,
    embedder_pb2_grpc,
    indexer_pb2,
    indexer_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)

if TYPE_CHECKING:
    from imgsearch.config import Settings

T = TypeVar("T")

_STATUS_NAMES = {
    indexer_pb2.IngestResult.NEW: "new",
    indexer_pb2.IngestResult.DUPLICATE: "duplicate",
    indexer_pb2.IngestResult.FAILED: "failed",
}

# Ingestion is split into several client streams so one response never grows without bound and
# a failure loses at most one chunk; two streams in flight keep the server busy between chunks.
INGEST_CHUNK_ITEMS = 256
INGEST_CHUNK_BYTES = 48 * 1024 * 1024
INGEST_IN_FLIGHT = 2
UPSERT_BATCH = 512
EMBED_BATCH = 32
SLOW_CALL_TIMEOUT = 600.0  # ingest streams and vocabulary loads


class ImageSearchClient:
    """A client for the Query, Indexer and Embedder services; use it as a context manager."""

    def __init__(
        self,
        addr: str,
        *,
        indexer_addr: str | None = None,
        embedder_addr: str | None = None,
        token: str | None = None,
        tls_ca: str | None = None,
        timeout: float = 30.0,
        wait_for_ready: bool | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ):
        """`wait_for_ready=None` keeps the service config's (wait while the server starts);
        False fails fast with UNAVAILABLE when nothing listens, as a command-line tool wants."""
        self.addr = addr
        self.indexer_addr = indexer_addr or addr
        self.embedder_addr = embedder_addr or addr
        self.timeout = timeout
        self._wait_for_ready = wait_for_ready
        self._tls_ca = tls_ca
        self._max_message_bytes = max_message_bytes
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------------

    def __enter__(self) -> ImageSearchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes every channel opened so far; the client can still be used (channels reopen)."""
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()

    def _channel(self, addr: str) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(addr)
            if channel is None:
                channel = create_channel(addr, tls_ca=self._tls_ca, max_message_bytes=self._max_message_bytes)
                self._channels[addr] = channel
            return channel

    @property
    def _query(self) -> query_pb2_grpc.QueryStub:
        return query_pb2_grpc.QueryStub(self._channel(self.addr))

    @property
    def _indexer(self) -> indexer_pb2_grpc.IndexerStub:
        return indexer_pb2_grpc.IndexerStub(self._channel(self.indexer_addr))

    @property
    def _embedder(self) -> embedder_pb2_grpc.EmbedderStub:
        return embedder_pb2_grpc.EmbedderStub(self._channel(self.embedder_addr))

    def _call(self, method, request, *, timeout: float | None = None, wait_for_ready: bool | None = None):
        try:
            return method(
                request,
                timeout=timeout or self.timeout,
                metadata=self._metadata,
                wait_for_ready=self._wait_for_ready if wait_for_ready is None else wait_for_ready,
            )
        except grpc.RpcError as e:
            raise ClientError.from_rpc_error(e) from e

    # -- queries ----------------------------------------------------------------------------------

    def search(
        self, text: str, k: int = 10, label: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> SearchResult:
        """Text -> images: the mean of the known words' vectors; unknown words come back too."""
        request = query_pb2.SearchTextRequest(text=text, k=k, filter=_filter(label, metadata))
        return _search_result(self._call(self._query.SearchText, request))

    def similar(
        self,
        image: bytes | None = None,
        id: str | None = None,
        k: int = 10,
        label: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> SearchResult:
        """Image -> visually similar images, from image bytes or the id of a stored image."""
        _one_source(image, id)
        request = query_pb2.SimilarImagesRequest(k=k, filter=_filter(label, metadata))
        if image is not None:
            request.image = image
        else:
            request.id = id
        return _search_result(self._call(self._query.SimilarImages, request))

    def tags(self, image: bytes | None = None, id: str | None = None, k: int = 10) -> list[WordResult]:
        """Image -> nearest words, from image bytes or the id of a stored image."""
        _one_source(image, id)
        request = query_pb2.TagImageRequest(k=k)
        if image is not None:
            request.image = image
        else:
            request.id = id
        return _words(self._call(self._query.TagImage, request))

    def words(self, word: str, k: int = 10) -> list[WordResult]:
        """Word -> nearest words in the vocabulary."""
        return _words(self._call(self._query.SimilarWords, query_pb2.SimilarWordsRequest(word=word, k=k)))

    # -- indexing ---------------------------------------------------------------------------------

    def ingest(
        self,
        items: Iterable[IngestItem],
        on_result: Callable[[IngestItemResult], None] | None = None,
        *,
        on_sent: Callable[[IngestItem], None] | None = None,
        chunk_items: int = INGEST_CHUNK_ITEMS,
        chunk_bytes: int = INGEST_CHUNK_BYTES,
        in_flight: int = INGEST_IN_FLIGHT,
        timeout: float | None = None,
    ) -> IngestSummary:
        """Streams images to the indexer; a bad image fails alone and is listed in `failed`.

        `items` is consumed lazily, in chunks of at most `chunk_items` images or `chunk_bytes`
        bytes, each sent as its own client stream. `on_sent` is called as each image leaves
        (from a gRPC thread), `on_result` for each answer in input order.
        """
        summary = IngestSummary()
        pending: deque[tuple[int, list[IngestItem], grpc.Future]] = deque()
        stream_timeout = timeout or max(self.timeout, SLOW_CALL_TIMEOUT)
        base = 0
        try:
            for chunk in _chunks(items, chunk_items, chunk_bytes):
                future = self._indexer.Ingest.future(
                    _requests(chunk, on_sent),
                    timeout=stream_timeout,
                    metadata=self._metadata,
                    wait_for_ready=self._wait_for_ready,
                )
                pending.append((base, chunk, future))
                base += len(chunk)
                while len(pending) >= max(1, in_flight):
                    _collect(*pending.popleft(), summary, on_result)
            while pending:
                _collect(*pending.popleft(), summary, on_result)
        except grpc.RpcError as e:
            raise ClientError.from_rpc_error(e) from e
        finally:
            for _, _, future in pending:
                future.cancel()
        return summary

    def upsert_vectors(self, points: Iterable[PointVectors], batch_size: int = UPSERT_BATCH) -> int:
        """Upserts precomputed vectors in batches; returns how many points were written."""
        total = 0
        batch: list[indexer_pb2.PointVectors] = []
        for p in points:
            batch.append(
                indexer_pb2.PointVectors(
                    id=p.id,
                    visual=np.asarray(p.visual, dtype=np.float32).tolist(),
                    semantic=np.asarray(p.semantic, dtype=np.float32).tolist(),
                    uri=p.uri,
                    label=p.label,
                    metadata=dict(p.metadata),
                )
            )
            if len(batch) >= batch_size:
                total += self._upsert(batch)
                batch = []
        if batch:
            total += self._upsert(batch)
        return total

    def _upsert(self, batch: list[indexer_pb2.PointVectors]) -> int:
        request = indexer_pb2.UpsertVectorsRequest(points=batch)
        return self._call(self._indexer.UpsertVectors, request).upserted

    def delete(
        self,
        ids: Sequence[str] | None = None,
        label: str | None = None,
        metadata: Mapping[str, str] | None = None,
        all: bool = False,
    ) -> int:
        """Deletes by ids, else by filter, or everything with `all=True`; returns the count."""
        request = indexer_pb2.DeleteRequest(ids=list(ids or ()), all=all)
        f = _filter(label, metadata)
        if f is not None:
            request.filter.CopyFrom(f)
        return self._call(self._indexer.Delete, request).deleted

    def load_vocabulary(self, limit: int = 0, force: bool = False, timeout: float | None = None) -> int:
        """Loads the most frequent words into the `words` collection; returns how many it holds."""
        request = indexer_pb2.LoadVocabularyRequest(limit=limit, force=force)
        timeout = timeout or max(self.timeout, SLOW_CALL_TIMEOUT)
        return self._call(self._indexer.LoadVocabulary, request, timeout=timeout).words

    def reindex(self, batch: int = 0) -> Iterator[dict]:
        """Re-embeds stored images with the current head; yields progress dicts
        {done, total, skipped, head}."""
        request = indexer_pb2.ReindexRequest(batch=batch)
        try:
            for p in self._indexer.Reindex(request, timeout=24 * 3600, metadata=self._metadata):
                yield {"done": p.done, "total": p.total, "skipped": p.skipped, "head": p.head}
        except grpc.RpcError as e:
            raise ClientError.from_rpc_error(e) from e

    def stats(self) -> dict:
        """Counts per collection, the store kind and the embedder's model info."""
        s = self._call(self._indexer.GetStats, indexer_pb2.GetStatsRequest())
        return {"images": s.images, "words": s.words, "store": s.store, "model": _model_info(s.model)}

    # -- embedder ---------------------------------------------------------------------------------

    def model_info(self) -> dict:
        """Which CNN, head and word vectors the embedder serves, with their dimensions."""
        return self._embedder_call(lambda e: e.model_info().as_dict())

    def embed_images(self, images: Sequence[bytes], batch_size: int = EMBED_BATCH) -> list[ImageEmbedding]:
        """Visual and semantic vectors for each image, in order; a bad image carries `error`."""
        out: list[ImageEmbedding] = []
        for start in range(0, len(images), batch_size):
            batch = list(images[start : start + batch_size])
            out.extend(map(_embedding, self._embedder_call(lambda e, b=batch: e.embed_images(b))))
        return out

    def embed_text(self, text: str) -> TextEmbedding:
        """The normalised mean vector of the text's known words (NOT_FOUND when none is known)."""
        return self._embedder_call(lambda e: e.embed_text(text))

    def _embedder_call(self, call: Callable[[RemoteEmbedder], T]) -> T:
        """One call through the Embedder service's client, its domain errors raised as ClientError."""
        embedder = RemoteEmbedder.on_channel(
            self._channel(self.embedder_addr),
            metadata=self._metadata,
            timeout=self.timeout,
            wait_for_ready=self._wait_for_ready,
            what=self.embedder_addr,
        )
        try:
            return call(embedder)
        except ServiceError as e:
            raise ClientError(getattr(grpc.StatusCode, e.code_name), e.message) from e

    # -- health -----------------------------------------------------------------------------------

    def health(self, service: str = "", *, addr: str | None = None, timeout: float = 5.0) -> bool:
        """True when `service` ("" = the whole server) at `addr` reports SERVING.

        Does not wait for the server to come up: a server that is down answers False at once.
        Errors other than "not reachable" (unknown service, refused token) raise ClientError.
        """
        stub = health_pb2_grpc.HealthStub(self._channel(addr or self.addr))
        try:
            response = self._call(
                stub.Check,
                health_pb2.HealthCheckRequest(service=service),
                timeout=timeout,
                wait_for_ready=False,
            )
        except ClientError as e:
            if e.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return False
            raise
        return response.status == health_pb2.HealthCheckResponse.SERVING


def from_settings(
    settings: Settings, *, timeout: float = 30.0, wait_for_ready: bool | None = None
) -> ImageSearchClient:
    """A client for the addresses, token and CA of `settings` (IMGSEARCH_ADDR, ...)."""
    return ImageSearchClient(
        settings.addr,
        indexer_addr=settings.indexer_addr,
        token=settings.token,
        tls_ca=settings.tls_ca,
        timeout=timeout,
        wait_for_ready=wait_for_ready,
    )


def _filter(label: str | None, metadata: Mapping[str, str] | None) -> common_pb2.Filter | None:
    if not label and not metadata:
        return None
    return common_pb2.Filter(label=label or "", metadata=dict(metadata or {}))


def _one_source(image: bytes | None, id: str | None) -> None:
    if (image is None) == (not id):
        raise ValueError("give exactly one of `image` (bytes) or `id`")


def _search_result(response: query_pb2.SearchImagesResponse) -> SearchResult:
    return SearchResult(
        results=[
            ImageResult(id=h.id, score=h.score, uri=h.uri, label=h.label, metadata=dict(h.metadata))
            for h in response.results
        ],
        unknown_terms=list(response.unknown_terms),
    )


def _words(response: query_pb2.WordsResponse) -> list[WordResult]:
    return [WordResult(word=h.word, score=h.score) for h in response.results]


def _model_info(m: embedder_pb2.ModelInfo) -> dict:
    return model_info_from_proto(m).as_dict()


def _embedding(outcome: ImageOutcome) -> ImageEmbedding:
    if isinstance(outcome, ServiceError):
        empty = np.zeros(0, np.float32)
        return ImageEmbedding(empty, empty, error_code=outcome.code_number, error=outcome.message)
    return ImageEmbedding(outcome.visual, outcome.semantic, outcome.width, outcome.height)


def _chunks(items: Iterable[IngestItem], max_items: int, max_bytes: int) -> Iterator[list[IngestItem]]:
    chunk: list[IngestItem] = []
    size = 0
    for item in items:
        if chunk and (len(chunk) >= max_items or size + len(item.image) > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.image)
    if chunk:
        yield chunk


def _requests(
    chunk: list[IngestItem], on_sent: Callable[[IngestItem], None] | None
) -> Iterator[indexer_pb2.IngestRequest]:
    for item in chunk:
        yield indexer_pb2.IngestRequest(
            image=item.image, id=item.id, uri=item.uri, label=item.label, metadata=dict(item.metadata)
        )
        if on_sent is not None:
            on_sent(item)


def _collect(
    base: int,
    chunk: list[IngestItem],
    future: grpc.Future,
    summary: IngestSummary,
    on_result: Callable[[IngestItemResult], None] | None,
) -> None:
    response: indexer_pb2.IngestResponse = future.result()
    for r in response.results:
        failed = r.status == indexer_pb2.IngestResult.FAILED
        item = IngestItemResult(
            index=base + r.index,
            id=r.id,
            uri=r.uri or (chunk[r.index].uri if 0 <= r.index < len(chunk) else ""),
            status=_STATUS_NAMES.get(r.status, "failed"),
            error_code=r.error.code if failed else 0,
            error=r.error.message if failed else "",
        )
        summary.results.append(item)
        if item.status == "new":
            summary.ingested += 1
        elif item.status == "duplicate":
            summary.duplicates += 1
        else:
            summary.failed.append(item)
        if on_result is not None:
            on_result(item)
