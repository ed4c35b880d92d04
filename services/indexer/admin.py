"""The indexer's other jobs as plain functions: vectors computed elsewhere, updates, imports,
deletes, stats."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from imgsearch.config.settings import Limits
from imgsearch.embedder.results import ModelInfo
from imgsearch.errors import FailedPrecondition, InvalidArgument
from imgsearch.indexer.payload import check_id_length, check_payload, check_stored_fields, echo
from imgsearch.indexer.thumbnails import check_thumbnail
from imgsearch.telemetry.metrics import STORE_POINTS
from imgsearch.types.queries import PointVectors
from imgsearch.vectorstore.base import VectorStore, as_vector
from imgsearch.vectorstore.checks import check_sparse
from imgsearch.vectorstore.engine import SparseVector
from imgsearch.vectorstore.ids import check_public_id
from imgsearch.vectorstore.payloads import DEFAULT_NAMESPACE, THUMBNAIL, check_namespace
from imgsearch.vectorstore.schema import IMAGES, WORDS
from imgsearch.vectorstore.types import ImagePoint, PayloadFilter


def upsert_vectors(
    store: VectorStore,
    info: ModelInfo,
    points: list[PointVectors],
    limits: Limits | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> int:
    """Validates every point (id, dimensions against the served model, length, payload limits)
    before storing any, normalises, upserts into `namespace`: a refused request stores nothing.
    An id is one image per namespace: another namespace's image of the same id is another point."""
    if not points:
        raise InvalidArgument("no points given")
    check_namespace(namespace)
    limits = limits or Limits()
    now = time.time()
    pids = []
    for n, p in enumerate(points):
        if not p.id:
            raise InvalidArgument(f"point {n}: every precomputed point needs an id (a UUID)")
        check_id_length(p.id)
        pid = check_public_id(p.id)
        try:
            check_payload(p.uri, p.label, p.metadata or {}, limits)
        except InvalidArgument as exc:
            raise InvalidArgument(f"point {pid}: {exc.message}") from None
        pids.append(pid)
    visual = _unit_rows([p.visual for p in points], info.visual_dim, [f"point {i}: visual" for i in pids])
    semantic = _unit_rows(
        [p.semantic for p in points], info.semantic_dim, [f"point {i}: semantic" for i in pids]
    )
    stored = [
        ImagePoint(
            pid,
            visual[n],
            semantic[n],
            {
                "uri": p.uri,
                "label": p.label,
                "ingested_at": now,
                "metadata": dict(p.metadata or {}),
                "namespace": namespace,
            },
        )
        for n, (pid, p) in enumerate(zip(pids, points, strict=True))
    ]
    store.upsert_images(stored)
    return len(stored)


def update(
    store: VectorStore,
    ids: list[str],
    flt: PayloadFilter | None,
    namespace: str,
    label: str | None,
    set_metadata: dict[str, str],
    remove_metadata: list[str],
    limits: Limits | None = None,
) -> int:
    """Changes the label and metadata of images by ids or filter, without re-embedding; the new
    label and metadata keep the payload limits."""
    limits = limits or Limits()
    check_payload("", label or "", set_metadata, limits)
    return store.update_images(
        ids, flt, namespace, label=label, set_metadata=set_metadata, remove_metadata=tuple(remove_metadata)
    )


MAX_EXTRA_JSON_BYTES = 512 * 1024  # a record's extra payload (the thumbnail is most of it)


@dataclass
class ImportedRecord:
    id: str
    namespace: str
    visual: np.ndarray | list[float]
    semantic: np.ndarray | list[float]
    payload: dict
    classes: SparseVector | None = None


def check_same_model(info: ModelInfo, given: ModelInfo | None) -> None:
    """FAILED_PRECONDITION unless the vectors were made by the model the embedder serves."""
    if given is None:
        raise InvalidArgument("an import names the model that made its vectors (cnn, head, dimensions)")
    fields = ("cnn", "head", "head_detail", "word_vectors", "visual_dim", "semantic_dim")
    differ = [f for f in fields if getattr(info, f) != getattr(given, f)]
    if differ:
        theirs = ", ".join(f"{f}={getattr(given, f)!r}" for f in differ)
        ours = ", ".join(f"{f}={getattr(info, f)!r}" for f in differ)
        raise FailedPrecondition(
            f"the records were made by another model ({theirs}); this server's embedder has {ours}: "
            "serve the same model and head to import them, or ingest the images again"
        )


def import_records(
    store: VectorStore,
    info: ModelInfo,
    given: ModelInfo | None,
    records: list[ImportedRecord],
    limits: Limits | None = None,
) -> tuple[int, int]:
    """Stores exported records as they are (no re-embedding) after checking every new one as an
    ingest would have made it (vectors, payload limits, finite numbers, a real small thumbnail);
    a record whose id its namespace already holds is skipped before any work, and of an id given
    twice for one namespace the first record counts. (imported, skipped)."""
    check_same_model(info, given)
    if not records:
        return 0, 0
    limits = limits or Limits()
    first: dict[tuple[str, str], ImportedRecord] = {}
    for r in records:
        check_id_length(r.id)
        first.setdefault((check_namespace(r.namespace), check_public_id(r.id)), r)
    have = set()
    for namespace in {ns for ns, _ in first}:
        wanted = [pid for ns, pid in first if ns == namespace]
        have |= {(namespace, pid) for pid in store.existing_ids(wanted, namespace)}
    points = [_checked_record(key[1], r, info, limits) for key, r in first.items() if key not in have]
    imported, _ = store.import_images(points)  # checks again: another import may have stored some
    return imported, len(records) - imported


def _checked_record(pid: str, r: ImportedRecord, info: ModelInfo, limits: Limits) -> ImagePoint:
    """An imported record as the point to store, InvalidArgument naming the record otherwise."""
    visual = _unit(as_vector(r.visual, info.visual_dim, f"record {pid}: visual"), f"record {pid}: visual")
    semantic = _unit(
        as_vector(r.semantic, info.semantic_dim, f"record {pid}: semantic"), f"record {pid}: semantic"
    )
    try:
        check_stored_fields(r.payload, limits)
        if THUMBNAIL in r.payload:
            check_thumbnail(r.payload[THUMBNAIL])
        classes = check_sparse(r.classes) if r.classes else None
    except InvalidArgument as exc:
        raise InvalidArgument(f"record {pid}: {exc.message}") from None
    return ImagePoint(pid, visual, semantic, {**r.payload, "namespace": r.namespace}, classes)


# The longest vector accepted: one whose length fits float32, as the engine and clients keep it.
MAX_NORM = float(np.finfo(np.float32).max)


def _unit_rows(vectors: list[np.ndarray | list[float]], dim: int, whats: list[str]) -> np.ndarray:
    """The vectors as rows of unit length, (len(vectors), dim) float32, normalised together
    (a bulk upsert's points in one pass, not one by one); when any is malformed, the per-vector
    checks name the first one that is."""
    try:
        matrix = np.asarray(vectors, dtype=np.float32).astype(np.float64)  # as stored: float32 values
    except ValueError:  # vectors of different lengths
        matrix = None
    if matrix is not None and matrix.ndim == 2 and matrix.shape[1] == dim:
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
        if np.all(np.isfinite(norms) & (norms > 0) & (norms <= MAX_NORM)):
            unit = (matrix / norms[:, None]).astype(np.float32)
            if np.all(np.any(unit, axis=1)):
                return unit
    return np.stack([_unit(as_vector(v, dim, what), what) for v, what in zip(vectors, whats, strict=True)])


def _unit(v: np.ndarray, what: str = "vector") -> np.ndarray:
    """`v` scaled to unit length; its length is taken in float64, so no square overflows or
    underflows, and a length that is zero, not finite or past float32's range is refused."""
    norm = float(np.linalg.norm(v.astype(np.float64)))
    if not np.isfinite(norm) or norm > MAX_NORM:
        raise InvalidArgument(f"{echo(what)} is too long (its length overflows float32); send it normalised")
    if norm == 0:
        raise InvalidArgument(f"{echo(what)} is a zero vector, which cannot be searched by cosine similarity")
    unit = (v.astype(np.float64) / norm).astype(np.float32)
    if not np.any(unit):
        raise InvalidArgument(f"{echo(what)} has no direction left in float32 after normalising")
    return unit


def deletes_whole_namespace(
    store: VectorStore, ids: list[str], flt: PayloadFilter | None, everything: bool, namespace: str
) -> bool:
    """Whether a delete would take every image of the namespace in one call: `all` with no ids
    and no (or an empty) filter, or a filter that matches every image the namespace holds
    (`excludeLabels: ["zzz"]`). One rule whatever the form of the request; only admin tokens may
    (docs/security.md). Deletes by id are per image and never count."""
    if ids:
        return False
    if flt is None or flt.is_empty():
        return everything
    total = store.count_images(None, namespace)
    return total > 0 and store.count_images(flt, namespace) >= total


def delete(
    store: VectorStore,
    ids: list[str],
    flt: PayloadFilter | None,
    everything: bool,
    namespace: str = DEFAULT_NAMESPACE,
) -> int:
    """Deletes a namespace's images by ids, else by a non-empty filter, else all of them when
    asked explicitly (the store's rule, VectorStore.delete_images)."""
    return store.delete_images(ids=ids, flt=flt, all=everything, namespace=namespace)


@dataclass(frozen=True)
class StoreStats:
    images: int
    words: int
    store: str


def stats(store: VectorStore, namespace: str = DEFAULT_NAMESPACE) -> StoreStats:
    """Counts of one namespace's images and of the shared words (the metric counts every image)."""
    images, words = store.count_images(namespace=namespace), store.count_words()
    STORE_POINTS.labels(IMAGES).set(store.count_images(namespace=None))
    STORE_POINTS.labels(WORDS).set(words)
    return StoreStats(images, words, store.describe())
