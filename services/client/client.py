"""ImageSearchClient: the Python API backend code imports instead of hand-writing stubs and channels.

Query and embedder calls go to `addr` (the all-in-one server serves everything there); ingestion,
deletes, vocabulary and stats go to `indexer_addr` when given. Channels are created on first use,
one per distinct address, and every call carries a deadline and the bearer token.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imgsearch.client import convert
from imgsearch.client.channel import MAX_MESSAGE_BYTES, create_channel
from imgsearch.client.convert import (
    filter_to_proto,
    ingest_requests,
    model_info_from_proto,
    part_to_proto,
    query_filter_to_proto,
    search_mode_to_proto,
    search_result_from_proto,
    stored_from_proto,
    stored_to_proto,
    words_from_proto,
)
from imgsearch.client.errors import ClientError
from imgsearch.client.types import (
    Filter,
    ImageEmbedding,
    ImagePage,
    IngestSummary,
    PointVectors,
    QueryPart,
    SearchResult,
    StoredImage,
    WordResult,
)
from imgsearch.protogen.imagesearch.v1 import (
    embedder_pb2,
    embedder_pb2_grpc,
    indexer_pb2,
    indexer_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)
from imgsearch.types.embeddings import TextEmbedding
from imgsearch.types.items import IngestItem, IngestItemResult

if TYPE_CHECKING:
    from imgsearch.config import Settings

T = TypeVar("T")

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
        namespace: str = "",
    ):
        """`wait_for_ready=None` keeps the service config's (wait while the server starts);
        False fails fast with UNAVAILABLE when nothing listens, as a command-line tool wants.
        `namespace`: the namespace every data and query call uses unless it names another ("" =
        the default namespace).

        Args:
            addr: the server (query and embedder calls; every call on an all-in-one server).
            indexer_addr: where ingest, deletes, vocabulary and stats go (None: `addr`).
            embedder_addr: where embedding calls go (None: `addr`).
            token: the bearer token sent with every call.
            tls_ca: a CA certificate file: TLS to the servers.
            timeout: the deadline of a call in seconds (slow calls take more).
            wait_for_ready: see above.
            max_message_bytes: the largest message sent or received.
            namespace: see above.
        """
        self.addr = addr
        self.namespace = namespace
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
            if channel is not None:
                return channel
            channel = create_channel(addr, tls_ca=self._tls_ca, max_message_bytes=self._max_message_bytes)
            self._channels[addr] = channel
        try:
            _first_contact(channel, addr)
        except ClientError:
            with self._lock:  # the next call tries afresh
                if self._channels.get(addr) is channel:
                    del self._channels[addr]
            if channel is not None:
                channel.close()
            raise
        return channel

    def connect(self, addr: str | None = None) -> None:
        """Opens the connection to `addr` (default: the query address) now; ClientError UNAVAILABLE,
        naming the address, when nothing answers there.

        Args:
            addr: the address to reach (None: the query address).
        """
        self._channel(addr or self.addr)

    @property
    def _query(self) -> query_pb2_grpc.QueryStub:
        return query_pb2_grpc.QueryStub(self._channel(self.addr))

    @property
    def _indexer(self) -> indexer_pb2_grpc.IndexerStub:
        return indexer_pb2_grpc.IndexerStub(self._channel(self.indexer_addr))

    @property
    def _embedder(self) -> embedder_pb2_grpc.EmbedderStub:
        return embedder_pb2_grpc.EmbedderStub(self._channel(self.embedder_addr))

    def _ns(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else namespace

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
        self,
        text: str = "",
        k: int = 10,
        label: str | Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        filter: Filter | None = None,
        parts: Sequence[QueryPart] = (),
        offset: int = 0,
        min_score: float | None = None,
        diverse: float | None = None,
        namespace: str | None = None,
        with_thumbnails: bool = False,
        mode: str | None = None,
    ) -> SearchResult:
        """Text (and weighted parts) -> images. The server parses the text: `word^2` weights a word,
        `-word` pushes away from it, stop words are ignored (`ignored_terms`). `label` may be a
        list (any of them); `offset` pages, `min_score` drops weaker results, `diverse` (a lambda
        in 0..1, 0.5 the usual) asks for varied results. `mode`: "hybrid" (meaning plus BM25 over
        the images' label, caption and metadata values; None: the server's default, hybrid where
        the collection has that index), "semantic" or "lexical".

        Args:
            text: the query in the query syntax.
            k: how many results (at most the server's max_k).
            label: one label, or several (any of them).
            metadata: metadata pairs that must all match.
            filter: the rest of the filter (excluded labels and values, keys present or absent).
            parts: weighted words, images or stored ids besides the text.
            offset: results skipped first (paging).
            min_score: drop results scoring below it.
            diverse: ask for varied results (maximal marginal relevance, lambda 0..1; 0.5 usual).
            namespace: the namespace to use (None: the client's).
            with_thumbnails: each hit carries the server's thumbnail, JPEG (WebP if stored before
                2026-12-04), while the reply's size budget allows; the others come without one.
            mode: "hybrid", "semantic" or "lexical" (None: the server's default).
        """
        request = query_pb2.SearchTextRequest(
            text=text,
            k=k,
            filter=query_filter_to_proto(label, metadata, filter),
            parts=[part_to_proto(p) for p in parts],
            offset=offset,
            min_score=min_score,
            mmr_lambda=diverse,
            namespace=self._ns(namespace),
            with_thumbnails=with_thumbnails,
            mode=search_mode_to_proto(mode),
        )
        return search_result_from_proto(self._call(self._query.SearchText, request))

    def similar(
        self,
        image: bytes | None = None,
        id: str | None = None,
        k: int = 10,
        label: str | Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        filter: Filter | None = None,
        offset: int = 0,
        min_score: float | None = None,
        diverse: float | None = None,
        include_self: bool = False,
        namespace: str | None = None,
        with_thumbnails: bool = False,
    ) -> SearchResult:
        """Image -> visually similar images, from image bytes or the id of a stored image (which is
        left out unless `include_self`).

        Args:
            image: encoded image bytes (or give `id`).
            id: the id of a stored image of the namespace (or give `image`).
            k: how many results.
            label: one label, or several (any of them).
            metadata: metadata pairs that must all match.
            filter: the rest of the filter (excluded labels and values, keys present or absent).
            offset: results skipped first (paging).
            min_score: drop results scoring below it.
            diverse: ask for varied results (maximal marginal relevance, lambda 0..1; 0.5 usual).
            include_self: keep the stored image `id` among its own results.
            namespace: the namespace to use (None: the client's).
            with_thumbnails: each hit carries the server's thumbnail, JPEG (WebP if stored before
                2026-12-04), while the reply's size budget allows; the others come without one.
        """
        _one_source(image, id)
        request = query_pb2.SimilarImagesRequest(
            k=k,
            filter=query_filter_to_proto(label, metadata, filter),
            offset=offset,
            min_score=min_score,
            mmr_lambda=diverse,
            include_self=include_self,
            namespace=self._ns(namespace),
            with_thumbnails=with_thumbnails,
        )
        if image is not None:
            request.image = image
        else:
            request.id = id or ""  # _one_source: exactly one was given
        return search_result_from_proto(self._call(self._query.SimilarImages, request))

    def facets(
        self,
        metadata_key: str | None = None,
        label: str | Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        filter: Filter | None = None,
        limit: int = 10,
        namespace: str | None = None,
    ) -> list[tuple[str, int]]:
        """(label, images) per label, or (value, images) per value of `metadata_key`, under the
        filter; most first.

        Args:
            metadata_key: count the values of this metadata key (None: count labels).
            label: one label, or several (any of them).
            metadata: metadata pairs that must all match.
            filter: the rest of the filter (excluded labels and values, keys present or absent).
            limit: how many values at most.
            namespace: the namespace to use (None: the client's).
        """
        request = query_pb2.FacetRequest(
            metadata_key=metadata_key or "",
            filter=query_filter_to_proto(label, metadata, filter),
            limit=limit,
            namespace=self._ns(namespace),
        )
        return [(c.value, int(c.count)) for c in self._call(self._query.Facet, request).counts]

    def tags(
        self, image: bytes | None = None, id: str | None = None, k: int = 10, namespace: str | None = None
    ) -> list[WordResult]:
        """Image -> nearest words, from image bytes or the id of a stored image.

        Args:
            image: encoded image bytes (or give `id`).
            id: the id of a stored image of the namespace (or give `image`).
            k: how many words.
            namespace: the namespace to use (None: the client's).
        """
        _one_source(image, id)
        request = query_pb2.TagImageRequest(k=k, namespace=self._ns(namespace))
        if image is not None:
            request.image = image
        else:
            request.id = id or ""  # _one_source: exactly one was given
        return words_from_proto(self._call(self._query.TagImage, request))

    def words(self, word: str, k: int = 10) -> list[WordResult]:
        """Word -> nearest words in the vocabulary.

        Args:
            word: one word of the vocabulary.
            k: how many words.
        """
        return words_from_proto(
            self._call(self._query.SimilarWords, query_pb2.SimilarWordsRequest(word=word, k=k))
        )

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
        namespace: str | None = None,
    ) -> IngestSummary:
        """Streams images to the indexer; a bad image fails alone and is listed in `failed`.

        `items` is consumed lazily, in chunks of at most `chunk_items` images or `chunk_bytes`
        bytes, each sent as its own client stream. `on_sent` is called as each image leaves
        (from a gRPC thread), `on_result` for each answer in input order. Items without a
        namespace go into `namespace` (default: the client's). Known content sent with a new
        label or metadata is updated in place (status "updated", no re-embedding).

        Args:
            items: the images, read lazily.
            on_result: called with each image's result, in input order.
            on_sent: called as each image leaves (from a gRPC thread).
            chunk_items: most images per client stream.
            chunk_bytes: most image bytes per client stream.
            in_flight: streams open at once.
            timeout: deadline of each stream in seconds (None: at least SLOW_CALL_TIMEOUT).
            namespace: the namespace to use (None: the client's).
        """
        ns = self._ns(namespace)
        summary = IngestSummary()
        pending: deque[tuple[int, list[IngestItem], grpc.Future]] = deque()
        stream_timeout = timeout or max(self.timeout, SLOW_CALL_TIMEOUT)
        base = 0
        try:
            for chunk in _chunks(items, chunk_items, chunk_bytes):
                future = self._indexer.Ingest.future(
                    ingest_requests(chunk, on_sent, ns),
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

    def upsert_vectors(
        self, points: Iterable[PointVectors], batch_size: int = UPSERT_BATCH, namespace: str | None = None
    ) -> int:
        """Upserts precomputed vectors in batches; returns how many points were written.

        Args:
            points: ids (UUIDs) with both vectors and their payload.
            batch_size: points per call.
            namespace: the namespace to use (None: the client's).
        """
        ns = self._ns(namespace)
        total = 0
        batch: list[indexer_pb2.PointVectors] = []
        for p in points:
            batch.append(convert.point_to_proto(p))
            if len(batch) >= batch_size:
                total += self._upsert(batch, ns)
                batch = []
        if batch:
            total += self._upsert(batch, ns)
        return total

    def _upsert(self, batch: list[indexer_pb2.PointVectors], namespace: str) -> int:
        request = indexer_pb2.UpsertVectorsRequest(points=batch, namespace=namespace)
        return self._call(self._indexer.UpsertVectors, request).upserted

    def delete(
        self,
        ids: Sequence[str] | None = None,
        label: str | None = None,
        metadata: Mapping[str, str] | None = None,
        all: bool = False,
        namespace: str | None = None,
    ) -> int:
        """Deletes a namespace's images by ids, else by filter, or all of them with `all=True`;
        returns the count.

        Args:
            ids: the images to delete.
            label: delete the images with this label (when no ids are given).
            metadata: and these metadata pairs.
            all: every image of the namespace (when neither ids nor a filter are given).
            namespace: the namespace to use (None: the client's).
        """
        request = indexer_pb2.DeleteRequest(ids=list(ids or ()), all=all, namespace=self._ns(namespace))
        f = filter_to_proto(label, metadata)
        if f is not None:
            request.filter.CopyFrom(f)
        return self._call(self._indexer.Delete, request).deleted

    def load_vocabulary(self, limit: int = 0, force: bool = False, timeout: float | None = None) -> int:
        """Loads the most frequent words into the `words` collection; returns how many it holds.

        Args:
            limit: how many words (0: the server's vocab_size).
            force: load them again even when the collection holds enough.
            timeout: deadline in seconds (None: at least SLOW_CALL_TIMEOUT).
        """
        return self.load_vocabulary_report(limit, force, timeout)[0]

    def load_vocabulary_report(
        self, limit: int = 0, force: bool = False, timeout: float | None = None
    ) -> tuple[int, bool]:
        """(words the collection holds, whether this call loaded them: False when they were there).

        Args:
            limit: how many words (0: the server's vocab_size).
            force: load them again even when the collection holds enough.
            timeout: deadline in seconds (None: at least SLOW_CALL_TIMEOUT).
        """
        request = indexer_pb2.LoadVocabularyRequest(limit=limit, force=force)
        timeout = timeout or max(self.timeout, SLOW_CALL_TIMEOUT)
        response = self._call(self._indexer.LoadVocabulary, request, timeout=timeout)
        return response.words, response.loaded

    def reindex(self, batch: int = 0) -> Iterator[dict]:
        """Re-embeds stored images with the current head; yields progress dicts
        {done, total, skipped, head}.

        Args:
            batch: images per embedder call (0: the server's default).
        """
        request = indexer_pb2.ReindexRequest(batch=batch)
        try:
            for p in self._indexer.Reindex(request, timeout=24 * 3600, metadata=self._metadata):
                yield {"done": p.done, "total": p.total, "skipped": p.skipped, "head": p.head}
        except grpc.RpcError as e:
            raise ClientError.from_rpc_error(e) from e

    def stats(self, namespace: str | None = None) -> dict:
        """Counts (images: of the namespace; words), the store kind and the embedder's model info.

        Args:
            namespace: the namespace to use (None: the client's).
        """
        s = self._call(self._indexer.GetStats, indexer_pb2.GetStatsRequest(namespace=self._ns(namespace)))
        return {
            "images": s.images,
            "words": s.words,
            "store": s.store,
            "model": model_info_from_proto(s.model),
        }

    # -- managing stored images -------------------------------------------------------------------

    def get(
        self, ids: Sequence[str], *, with_vectors: bool = False, namespace: str | None = None
    ) -> tuple[list[StoredImage], list[str]]:
        """The stored records of these ids in the namespace, and the ids not found there.

        Args:
            ids: image ids.
            with_vectors: include both vectors and the rest of the payload (`extra_json`).
            namespace: the namespace to use (None: the client's).
        """
        request = query_pb2.GetImagesRequest(
            ids=list(ids), namespace=self._ns(namespace), with_vectors=with_vectors
        )
        response = self._call(self._query.GetImages, request)
        return [stored_from_proto(m, with_vectors) for m in response.images], list(response.not_found)

    def list_images(
        self,
        label: str | Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        filter: Filter | None = None,
        limit: int = 100,
        page_token: str = "",
        with_vectors: bool = False,
        namespace: str | None = None,
        all_namespaces: bool = False,
    ) -> ImagePage:
        """One page of stored records under the filter, in the store's id order; pass
        `next_page_token` back for the next page (it stays correct while images are added or
        deleted). A page may hold fewer than `limit` records where more would pass the server's
        reply budget.

        Args:
            label: one label, or several (any of them).
            metadata: metadata pairs that must all match.
            filter: the rest of the filter (excluded labels and values, keys present or absent).
            limit: most records on the page.
            page_token: the previous page's `next_page_token` ("": the first page).
            with_vectors: include both vectors and the rest of the payload (`extra_json`).
            namespace: the namespace to use (None: the client's).
            all_namespaces: list every namespace (a token that may read them all).
        """
        request = query_pb2.ListImagesRequest(
            filter=query_filter_to_proto(label, metadata, filter),
            namespace=self._ns(namespace),
            limit=limit,
            page_token=page_token,
            with_vectors=with_vectors,
            all_namespaces=all_namespaces,
        )
        response = self._call(self._query.ListImages, request)
        return ImagePage(
            [stored_from_proto(m, with_vectors) for m in response.images], response.next_page_token
        )

    def iter_images(self, *, page_size: int = 500, page_token: str = "", **kwargs) -> Iterator[ImagePage]:
        """Every page of `list_images(**kwargs)` from `page_token` on (resume with a page's
        `next_page_token`).

        Args:
            page_size: most records per page.
            page_token: where to start ("": the first page).
            kwargs: what `list_images` takes besides `limit` and `page_token`.
        """
        while True:
            page = self.list_images(limit=page_size, page_token=page_token, **kwargs)
            yield page
            if not page.next_page_token:
                return
            page_token = page.next_page_token

    def update(
        self,
        ids: Sequence[str] | None = None,
        *,
        label: str | None = None,
        set_metadata: Mapping[str, str] | None = None,
        remove_metadata: Sequence[str] = (),
        filter: Filter | None = None,
        namespace: str | None = None,
    ) -> int:
        """Sets the label and sets or removes metadata keys of images by ids, else of those matching
        `filter`, without re-embedding them; returns how many images matched.

        Args:
            ids: the images to change (or give `filter`).
            label: the new label (None: kept).
            set_metadata: metadata keys to set.
            remove_metadata: metadata keys to remove.
            filter: change the images it matches (when no ids are given).
            namespace: the namespace to use (None: the client's).
        """
        request = indexer_pb2.UpdateImagesRequest(
            ids=list(ids or ()),
            namespace=self._ns(namespace),
            label=label,
            set_metadata=dict(set_metadata or {}),
            remove_metadata=list(remove_metadata),
        )
        f = None if ids else query_filter_to_proto(None, None, filter)
        if f is not None:
            request.filter.CopyFrom(f)
        return self._call(self._indexer.UpdateImages, request).updated

    def import_images(self, records: Sequence[StoredImage], model: Mapping) -> tuple[int, int]:
        """Stores exported records (with vectors) as they are, each into its own namespace;
        FAILED_PRECONDITION when `model` (the exporter's `model_info()`) is not the server's.
        Returns (imported, skipped: already stored in their namespace, or repeated in `records`).

        Args:
            records: records listed with vectors (an export's rows).
            model: the `model_info()` of the server that made the vectors.
        """
        request = indexer_pb2.ImportImagesRequest(
            images=[stored_to_proto(r) for r in records], model=embedder_pb2.ModelInfo(**dict(model))
        )
        response = self._call(self._indexer.ImportImages, request, timeout=max(self.timeout, 120.0))
        return response.imported, response.skipped

    # -- embedder ---------------------------------------------------------------------------------

    def model_info(self) -> dict:
        """Which CNN, head and word vectors the embedder serves, with their dimensions."""
        response = self._embedder_call(self._embedder.GetModelInfo, embedder_pb2.GetModelInfoRequest(), 10.0)
        return convert.model_info_from_proto(response)

    def embed_images(self, images: Sequence[bytes], batch_size: int = EMBED_BATCH) -> list[ImageEmbedding]:
        """Visual and semantic vectors for each image, in order; a bad image carries `error`.

        Args:
            images: encoded image bytes.
            batch_size: images per Embedder call.
        """
        out: list[ImageEmbedding] = []
        for start in range(0, len(images), batch_size):
            batch = list(images[start : start + batch_size])
            response = self._embedder_call(
                self._embedder.EmbedImages, embedder_pb2.EmbedImagesRequest(images=batch)
            )
            out.extend(map(convert.embedding_from_proto, response.embeddings))
        return out

    def embed_text(self, text: str) -> TextEmbedding:
        """The normalised mean vector of the text's known words (NOT_FOUND when none is known).

        Args:
            text: words.
        """
        response = self._embedder_call(
            self._embedder.EmbedText, embedder_pb2.EmbedTextRequest(text=text), 10.0
        )
        try:
            return convert.text_embedding_from_proto(response)
        except ValueError as e:
            raise ClientError(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None

    def _embedder_call(self, method, request, timeout: float | None = None):
        """One Embedder call; a replica down or too slow is UNAVAILABLE, naming the embedder (as the
        services report a dependency), other codes as the embedder answered."""
        try:
            return self._call(method, request, timeout=timeout)
        except ClientError as e:
            if e.code in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED,
            ):
                raise ClientError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"embedder at {self.embedder_addr} unavailable ({e.code.name}): {e.message}",
                ) from e
            raise

    # -- health -----------------------------------------------------------------------------------

    def health(self, service: str = "", *, addr: str | None = None, timeout: float = 5.0) -> bool:
        """True when `service` ("" = the whole server) at `addr` reports SERVING.

        Does not wait for the server to come up: a server that is down answers False at once.
        Errors other than "not reachable" (unknown service, refused token) raise ClientError.

        Args:
            service: a service's full name ("" = the whole server).
            addr: where to ask (None: the query address).
            timeout: seconds to wait for the answer.
        """
        try:
            stub = health_pb2_grpc.HealthStub(self._channel(addr or self.addr))
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
    settings: Settings, *, timeout: float = 30.0, wait_for_ready: bool | None = None, namespace: str = ""
) -> ImageSearchClient:
    """A client for the addresses, token and CA of `settings` (IMGSEARCH_ADDR, ...)."""
    return ImageSearchClient(
        settings.addr,
        namespace=namespace,
        indexer_addr=settings.indexer_addr,
        token=settings.token,
        tls_ca=settings.tls_ca,
        timeout=timeout,
        wait_for_ready=wait_for_ready,
    )


# How long the first call on a new channel waits to learn whether anything listens at all.
FIRST_CONTACT_SECONDS = 3.0


def _first_contact(channel: grpc.Channel, addr: str, timeout: float = FIRST_CONTACT_SECONDS) -> None:
    """ClientError UNAVAILABLE naming `addr` at once when nothing listens there (the connection is
    refused), instead of a first call that waits for its deadline. Only plain `host:port` addresses
    are tried (a list or a `dns:///` name is left to the channel); a TCP connection that is still
    being made after `timeout` is left to the call and its deadline. (A TCP probe, not the channel's
    connectivity watch: a watched channel that is never closed keeps the interpreter from exiting.)"""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or "," in addr or "/" in addr:
        return
    try:
        socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout).close()
    except ConnectionRefusedError:
        raise ClientError(
            grpc.StatusCode.UNAVAILABLE, f"cannot connect to {addr}: nothing is listening there"
        ) from None
    except OSError:  # a name that does not resolve, a slow network: the call will tell
        return


def _one_source(image: bytes | None, id: str | None) -> None:
    if (image is None) == (not id):
        raise ValueError("give exactly one of `image` (bytes) or `id`")


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


def _collect(
    base: int,
    chunk: list[IngestItem],
    future: grpc.Future,
    summary: IngestSummary,
    on_result: Callable[[IngestItemResult], None] | None,
) -> None:
    response: indexer_pb2.IngestResponse = future.result()
    for r in response.results:
        item = convert.ingest_result_from_proto(r, base, chunk)
        summary.results.append(item)
        if item.status == "new":
            summary.ingested += 1
        elif item.status == "duplicate":
            summary.duplicates += 1
        elif item.status == "updated":
            summary.updated += 1
        else:
            summary.failed.append(item)
        if on_result is not None:
            on_result(item)
