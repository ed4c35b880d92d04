"""Ingestion as plain Python: content ids, duplicate detection, batching to the embedder,
payloads, upserts. The Indexer servicer only converts messages around it.

Ids are UUIDv5 of the SHA-256 of the bytes unless given, so re-ingesting the same image is a
no-op reported as DUPLICATE, and a duplicate is never sent to the (costly) CNN. Sent again with
another label or metadata it is UPDATED: the payload changes, the vectors stay. An id is the same in
every namespace and names one image per namespace (imgsearch.vectorstore.ids): every rule below
looks at the item's own namespace only, so no answer depends on another namespace's images.

A DUPLICATE is only a duplicate when the stored SHA-256 matches: an id holding other content is
never taken for this image. A content id held by other content (a client gave another image that
id) is reclaimed by the image it belongs to; a client-supplied id holding other content is refused
with ALREADY_EXISTS. Each item's uri, label and metadata are checked against `Limits`; a store
that refuses a write (a full disk) fails the items of that batch, each with the store's reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from imgsearch.config.settings import Limits
from imgsearch.embedder.results import Embedder
from imgsearch.errors import AlreadyExists, InvalidArgument, ResourceExhausted, ServiceError
from imgsearch.indexer.payload import check_id_length, check_payload, echo
from imgsearch.indexer.thumbnails import thumbnail_of, thumbnail_text
from imgsearch.telemetry.metrics import IMAGES_INGESTED
from imgsearch.types.items import IngestItem, IngestItemResult
from imgsearch.vectorstore.base import SparseVector, VectorStore
from imgsearch.vectorstore.ids import check_public_id, content_id
from imgsearch.vectorstore.payloads import THUMBNAIL, check_namespace
from imgsearch.vectorstore.types import ImagePoint

log = logging.getLogger(__name__)

IN_FLIGHT = 2  # batches embedding at once, so decoding and upserts overlap the CNN
__all__ = ["Ingestor", "content_id", "load_vocabulary"]


class Ingestor:
    """Turns a stream of images into stored points, a batch at a time, answering per image."""

    def __init__(self, embedder: Embedder, store: VectorStore, batch: int, limits: Limits | None = None):
        """`batch`: images per embedder call, the embedder's `ModelInfo.max_batch` (one CNN forward
        pass)."""
        self.embedder = embedder
        self.store = store
        self.batch = batch
        self.limits = limits or Limits()
        # (namespace, id) being embedded right now by any stream, with their SHA-256: a second copy
        # of the same bytes arriving meanwhile is a duplicate.
        self._claimed: dict[tuple[str, str], str] = {}
        self._claim_lock = threading.Lock()

    def ingest(self, items: Iterable[IngestItem]) -> Iterator[IngestItemResult]:
        """Outcomes in stream order; up to IN_FLIGHT batches are embedded concurrently.

        ResourceExhausted (for the whole call) at item `max_images_per_stream`: the answer has one
        result per item, so the number of items bounds its size."""
        pending: list[Future] = []
        with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="ingest") as pool:
            for start, chunk in _chunks(_capped(items, self.limits.max_images_per_stream), self.batch):
                pending.append(pool.submit(self._ingest_batch, start, chunk))
                while len(pending) >= IN_FLIGHT:
                    yield from pending.pop(0).result()
            for job in pending:
                yield from job.result()

    def _ingest_batch(self, start: int, items: list[IngestItem]) -> list[IngestItemResult]:
        outcomes: dict[int, IngestItemResult] = {}
        candidates: list[tuple[int, IngestItem, str, str]] = []  # index, item, id, sha256
        for offset, item in enumerate(items):
            index = start + offset
            try:
                if item.id:
                    check_id_length(item.id)
                check_payload(item.uri, item.label, item.metadata, self.limits)
                check_namespace(item.namespace)
                if not item.image:
                    raise InvalidArgument("empty image: no bytes")
                cid, sha = content_id(item.image)
                pid = check_public_id(item.id) if item.id else cid
                candidates.append((index, item, pid, sha))
            except ServiceError as exc:
                outcomes[index] = _failed(index, item.id, item.uri, exc)
        try:
            stored = self._stored(candidates)
        except ServiceError as exc:
            for index, item, pid, _ in candidates:
                outcomes[index] = _failed(index, pid, item.uri, exc)
            candidates, stored = [], {}
        to_embed: list[tuple[int, IngestItem, str, str]] = []
        to_update: list[tuple[int, IngestItem, str, PayloadChange]] = []
        with self._claim_lock:
            for index, item, pid, sha in candidates:
                key = (item.namespace, pid)
                payload = stored.get(key)
                held = self._claimed.get(key, None if payload is None else str(payload.get("sha256") or ""))
                if held is None:
                    pass
                elif held == sha:
                    change = (
                        payload_change(item, payload)
                        if payload is not None and key not in self._claimed
                        else None
                    )
                    if change is not None:  # known content with a new label or metadata
                        to_update.append((index, item, pid, change))
                    else:
                        outcomes[index] = IngestItemResult(index, pid, echo(item.uri), "duplicate")
                    continue
                elif item.id or key in self._claimed:
                    outcomes[index] = _failed(
                        index,
                        pid,
                        item.uri,
                        AlreadyExists(
                            f"id {pid} already holds other content (another SHA-256); delete it first, "
                            "or ingest without an id to use the content id"
                        ),
                    )
                    continue
                else:  # another image was stored under this image's content id: it goes back to this one
                    log.warning("content id %s held other content; storing the image it belongs to", pid)
                self._claimed[key] = sha
                to_embed.append((index, item, pid, sha))
        self._update(to_update, outcomes)
        try:
            self._embed_and_store(to_embed, outcomes)
        finally:
            with self._claim_lock:
                for _, item, pid, _ in to_embed:
                    self._claimed.pop((item.namespace, pid), None)
        ordered = [outcomes[start + i] for i in range(len(items))]
        for outcome in ordered:
            IMAGES_INGESTED.labels(outcome.status).inc()
        return ordered

    def _stored(self, candidates: list[tuple[int, IngestItem, str, str]]) -> dict[tuple[str, str], dict]:
        """(namespace, id) -> stored payload of the candidates' ids, each in its item's namespace."""
        by_namespace: dict[str, list[str]] = {}
        for _, item, pid, _ in candidates:
            by_namespace.setdefault(item.namespace, []).append(pid)
        return {
            (namespace, pid): payload
            for namespace, ids in by_namespace.items()
            for pid, payload in self.store.stored_payloads(ids, namespace).items()
        }

    def _update(
        self,
        to_update: list[tuple[int, IngestItem, str, PayloadChange]],
        outcomes: dict[int, IngestItemResult],
    ) -> None:
        """Known content sent again with another label or metadata: the payload changes, the
        vectors stay (no image goes through the CNN)."""
        for index, item, pid, change in to_update:
            try:
                self.store.update_images(
                    [pid], namespace=item.namespace, label=change.label, set_metadata=change.metadata
                )
            except ServiceError as exc:
                outcomes[index] = _failed(index, pid, item.uri, exc)
                continue
            outcomes[index] = IngestItemResult(index, pid, echo(item.uri), "updated")

    def _embed_and_store(
        self, to_embed: list[tuple[int, IngestItem, str, str]], outcomes: dict[int, IngestItemResult]
    ) -> None:
        if to_embed:
            try:
                # an embedder in this process makes the thumbnails from the pictures it decodes
                vectors = self.embedder.embed_images(
                    [item.image for _, item, _, _ in to_embed], thumbnail=thumbnail_of
                )
            except ServiceError as exc:  # e.g. every embedder down: each image reports it, none is lost
                vectors = [exc] * len(to_embed)
            points = []
            stored: list[tuple[int, IngestItem, str]] = []
            now = time.time()
            for (index, item, pid, sha), result in zip(to_embed, vectors, strict=True):
                if isinstance(result, ServiceError):
                    outcomes[index] = _failed(index, pid, item.uri, result)
                    continue
                payload = {
                    "uri": item.uri,
                    "label": item.label,
                    "sha256": sha,
                    "width": result.width,
                    "height": result.height,
                    "ingested_at": now,
                    "feature_norm": result.feature_norm,
                    "metadata": dict(item.metadata),
                    "namespace": item.namespace,
                }
                thumbnail = thumbnail_text(item.image, result.thumbnail)
                if thumbnail:
                    payload[THUMBNAIL] = thumbnail
                classes = SparseVector(result.classes.ids, result.classes.scores) if result.classes else None
                points.append(ImagePoint(pid, result.visual, result.semantic, payload, classes))
                stored.append((index, item, pid))
            if not points:
                return
            try:
                self.store.upsert_images(points)
            except ServiceError as exc:  # e.g. the disk is full: this batch is not stored, and says why
                for index, item, pid in stored:
                    outcomes[index] = _failed(index, pid, item.uri, exc)
                return
            for index, item, pid in stored:
                outcomes[index] = IngestItemResult(index, pid, echo(item.uri), "new")


@dataclass(frozen=True)
class PayloadChange:
    """What a re-ingest of known content changes: the label (None: kept) and metadata keys to set."""

    label: str | None
    metadata: dict[str, str]


def payload_change(item: IngestItem, stored: dict) -> PayloadChange | None:
    """The label or metadata `item` gives that differ from the stored payload; None when nothing
    does. An empty label or metadata keeps the stored one (a plain re-ingest changes nothing)."""
    label = item.label if item.label and item.label != stored.get("label", "") else None
    have = stored.get("metadata") or {}
    metadata = {k: v for k, v in item.metadata.items() if have.get(k) != v}
    return PayloadChange(label, metadata) if label is not None or metadata else None


def _failed(index: int, id: str, uri: str, exc: ServiceError) -> IngestItemResult:
    """A failed item's result repeats at most the start of its id and uri (ECHO_CHARS)."""
    return IngestItemResult(index, echo(id), echo(uri), "failed", exc.code_number, echo_message(exc.message))


def echo_message(message: str, most: int = 400) -> str:
    return message if len(message) <= most else message[:most] + "..."


class _OverStreamCap(ResourceExhausted):
    """More images in one Ingest call than max_images_per_stream."""


def _capped(items: Iterable[IngestItem], most: int) -> Iterator[IngestItem]:
    for count, item in enumerate(items):
        if count >= most:
            raise _OverStreamCap(
                f"more than {most} images in one Ingest call (max_images_per_stream); the first {most} "
                "were processed: send the rest in another call (re-sent images answer DUPLICATE)"
            )
        yield item


def _chunks(items: Iterable[IngestItem], size: int) -> Iterator[tuple[int, list[IngestItem]]]:
    """Batches of `size`; past the stream's cap, the batch begun is still handed out (so every
    image before the cap is processed, as the refusal says), then the refusal goes on."""
    chunk: list[IngestItem] = []
    start = 0
    try:
        for item in items:
            chunk.append(item)
            if len(chunk) == size:
                yield start, chunk
                start += size
                chunk = []
    except _OverStreamCap:
        if chunk:
            yield start, chunk
        raise
    if chunk:
        yield start, chunk


def load_vocabulary(
    embedder: Embedder, store: VectorStore, limit: int, force: bool = False, progress=None
) -> tuple[int, bool]:
    """Loads the `limit` most frequent words into `words` unless already there; (count, loaded)."""
    if limit < 1:
        raise InvalidArgument(f"the vocabulary size must be at least 1, got {limit}")
    have = store.count_words()
    if have >= limit and not force:
        return have, False
    loaded = 0
    for chunk in embedder.vocabulary(limit):
        store.upsert_words(chunk.start_rank, chunk.words, chunk.vectors)
        loaded += len(chunk.words)
        if progress:
            progress(loaded, limit)
    store.optimize()
    log.info("loaded %d words into the words collection", loaded)
    return store.count_words(), True
