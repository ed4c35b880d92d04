"""Ingestion as plain Python: content ids, duplicate detection, batching to the embedder,
payloads, upserts. The Indexer servicer only converts messages around it.

Ids are UUIDv5 of the SHA-256 of the bytes unless given, so re-ingesting the same image is a
no-op reported as DUPLICATE, and a duplicate is never sent to the (costly) CNN.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from imgsearch.embedder.results import Embedder
from imgsearch.errors import InvalidArgument, ServiceError
from imgsearch.indexer.items import IngestItem, IngestItemResult
from imgsearch.rpc.metrics import IMAGES_INGESTED
from imgsearch.vectorstore.base import ImagePoint, VectorStore, check_point_id

log = logging.getLogger(__name__)

# Fixed namespace: the same bytes get the same id on every server, forever.
ID_NAMESPACE = uuid.UUID("6f1c1f2e-8d5a-5b7e-9a43-2c0d6e1b7a90")
IN_FLIGHT = 2  # batches embedding at once, so decoding and upserts overlap the CNN


def content_id(data: bytes) -> tuple[str, str]:
    """(id, sha256 hex) of image bytes."""
    digest = hashlib.sha256(data).hexdigest()
    return str(uuid.uuid5(ID_NAMESPACE, digest)), digest


class Ingestor:
    """Turns a stream of images into stored points, a batch at a time, answering per image."""

    def __init__(self, embedder: Embedder, store: VectorStore, batch: int):
        """`batch`: images per embedder call, the embedder's `ModelInfo.max_batch` (one CNN forward
        pass)."""
        self.embedder = embedder
        self.store = store
        self.batch = batch
        # Ids being embedded right now by any stream: a second copy arriving meanwhile is a duplicate.
        self._claimed: set[str] = set()
        self._claim_lock = threading.Lock()

    def ingest(self, items: Iterable[IngestItem]) -> Iterator[IngestItemResult]:
        """Outcomes in stream order; up to IN_FLIGHT batches are embedded concurrently."""
        pending: list[Future] = []
        with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="ingest") as pool:
            for start, chunk in _chunks(items, self.batch):
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
                if not item.image:
                    raise InvalidArgument("empty image: no bytes")
                cid, sha = content_id(item.image)
                pid = check_point_id(item.id) if item.id else cid
                candidates.append((index, item, pid, sha))
            except ServiceError as exc:
                outcomes[index] = _failed(index, item.id, item.uri, exc)
        existing = self.store.existing_ids([pid for _, _, pid, _ in candidates]) if candidates else set()
        to_embed: list[tuple[int, IngestItem, str, str]] = []
        with self._claim_lock:
            for index, item, pid, sha in candidates:
                if pid in existing or pid in self._claimed:
                    outcomes[index] = IngestItemResult(index, pid, item.uri, "duplicate")
                else:
                    self._claimed.add(pid)
                    to_embed.append((index, item, pid, sha))
        try:
            self._embed_and_store(to_embed, outcomes)
        finally:
            with self._claim_lock:
                self._claimed.difference_update(pid for _, _, pid, _ in to_embed)
        ordered = [outcomes[start + i] for i in range(len(items))]
        for outcome in ordered:
            IMAGES_INGESTED.labels(outcome.status).inc()
        return ordered

    def _embed_and_store(
        self, to_embed: list[tuple[int, IngestItem, str, str]], outcomes: dict[int, IngestItemResult]
    ) -> None:
        if to_embed:
            try:
                vectors = self.embedder.embed_images([item.image for _, item, _, _ in to_embed])
            except ServiceError as exc:  # e.g. every embedder down: each image reports it, none is lost
                vectors = [exc] * len(to_embed)
            points = []
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
                }
                points.append(ImagePoint(pid, result.visual, result.semantic, payload))
                outcomes[index] = IngestItemResult(index, pid, item.uri, "new")
            if points:
                self.store.upsert_images(points)


def _failed(index: int, id: str, uri: str, exc: ServiceError) -> IngestItemResult:
    return IngestItemResult(index, id, uri, "failed", exc.code_number, exc.message)


def _chunks(items: Iterable[IngestItem], size: int) -> Iterator[tuple[int, list[IngestItem]]]:
    chunk: list[IngestItem] = []
    start = 0
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield start, chunk
            start += size
            chunk = []
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
