"""EdgeStore: the embedded default, Qdrant Edge (the Qdrant engine in-process), one shard per collection.

Why this shape:
- An `EdgeShard` is safe to query from many threads while another thread writes (measured: four
  querying threads beside one upserting and optimizing thread), so searches take no Python lock.
  Writes to one collection are serialised by a lock so that delete counts are exact, and
  opening, dropping and closing shards take an admin lock.
- One process owns the shards: `<root>/.lock` (flock) refuses a second store on the same directory
  instead of letting two engines write the same files.
- Locks are always taken in the order optimize -> admin -> write.
- Qdrant Edge has no background optimizer: points land in an appendable segment searched by
  brute force until `optimize()` builds HNSW. The store counts points written since the last
  optimize and, past `auto_optimize_points`, optimizes on a background thread so the write that
  crossed the line returns at once. The engine holds later writes while it optimizes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import threading
from collections.abc import Iterator
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from services.config.cpus import usable_cpus
from services.errors import FailedPrecondition, InvalidArgument
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

log = logging.getLogger(__name__)

_CONFIG_FILE = "edge_config.json"


def default_search_threads() -> int:
    """One search thread on small hosts, one per CPU on larger ones.

    A shard's search pool searches its segments in parallel. On 2 CPUs that fan-out costs more than
    it saves: one thread answered a query of 100,000 images in 0.25 ms instead of 0.53 ms and gave
    1.3x the throughput with 8 concurrent callers (benchmarks/README.md). Above 4 CPUs the fan-out
    can pay off and is not measured here, so there each CPU gets a thread, like Qdrant's own pool.
    """
    cpus = usable_cpus()
    return 1 if cpus <= 4 else cpus


class EdgeStore(VectorStore):
    """Both collections as Qdrant Edge shards under `root` (normally `<data_dir>/qdrant`)."""

    def __init__(
        self,
        root: Path | str,
        *,
        hnsw_ef: int | None = None,
        auto_optimize_points: int = 5000,
        indexing_threshold_kb: int = 1000,
        background_optimize: bool = True,
        full_scan_threshold_kb: int | None = None,
        search_threads: int | None = None,
        quantize: bool = True,
    ):
        """
        hnsw_ef: search breadth (None = Qdrant's default); raise it for recall, lower it for speed.
        auto_optimize_points: points written since the last optimize that trigger one (0 = never).
        indexing_threshold_kb: segments with more vector data than this get an HNSW index; below
            it brute force is as fast (Qdrant's own default, 10 MB, would leave 50,000 words unindexed).
        background_optimize: False runs the automatic optimize inside the write that triggers it.
        full_scan_threshold_kb: below this much vector data a search scans instead of walking the
            graph (None = Qdrant's default, 10 MB, where a scan is as fast); tests lower it.
        search_threads: threads of each shard's search pool (None = `default_search_threads()`).
        quantize: int8 scalar quantization of the vectors, with rescoring (see base.QUANTIZATION_*);
            a store created without it gets it built by a background optimize when opened with it.
        """
        self._root = Path(root)
        self._hnsw_ef = hnsw_ef
        self._auto_optimize_points = auto_optimize_points
        self._indexing_threshold_kb = indexing_threshold_kb
        self._background = background_optimize
        self._full_scan_threshold_kb = full_scan_threshold_kb
        if search_threads is not None and search_threads < 0:
            raise ValueError(f"search_threads must not be negative, got {search_threads}")
        self._search_threads = search_threads or default_search_threads()
        self._quantize = quantize
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dims: dict[str, dict[str, int]] = {}
        self._pending: dict[str, int] = {IMAGES: 0, WORDS: 0}
        self._admin_lock = threading.RLock()
        self._write_locks = {IMAGES: threading.Lock(), WORDS: threading.Lock()}
        self._optimize_lock = threading.Lock()
        self._optimize_wanted = threading.Event()
        self._optimizer: threading.Thread | None = None
        self._closed = False
        self._lock_file = _lock_dir(self._root)
        try:
            for name in (IMAGES, WORDS):
                stored = self._stored_vectors(name)
                if stored is not None:
                    dims = {vname: int(params["size"]) for vname, params in stored.items()}
                    quantized = all(params.get("quantization_config") for params in stored.values())
                    self._shards[name] = self._edge_call(
                        qe.EdgeShard.load, str(self._path(name)), self._config(dims)
                    )
                    self._dims[name] = dims
                    if quantize and not quantized:  # build the quantized vectors of an older store
                        self._pending[name] = max(1, self._auto_optimize_points)
                        self._optimize_soon()
        except BaseException:
            self._closed = True
            self._optimize_wanted.set()  # ends an optimizer started for an older store
            for shard in self._shards.values():
                shard.close()
            self._lock_file.close()
            raise

    # -- collections -------------------------------------------------------------------------

    def ensure_collections(self, visual_dim: int, semantic_dim: int, word_dim: int) -> None:
        wanted = {IMAGES: {VISUAL: visual_dim, SEMANTIC: semantic_dim}, WORDS: {"": word_dim}}
        with self._admin_lock:
            self._check_open()
            for name, dims in wanted.items():
                have = self._dims.get(name)
                if have is not None and have != dims:
                    raise FailedPrecondition(
                        f"collection {name!r} has vector sizes {_fmt(have)}, the models give {_fmt(dims)}; "
                        f"reindex (drop the collection and ingest again) to switch models"
                    )
            for name, dims in wanted.items():
                if name not in self._shards:
                    self._create(name, dims)

    def collection_dims(self) -> CollectionDims | None:
        images, words = self._dims.get(IMAGES), self._dims.get(WORDS)
        if images is None or words is None:
            return None
        return CollectionDims(visual=images[VISUAL], semantic=images[SEMANTIC], word=words[""])

    def drop_collection(self, name: str) -> None:
        if name not in (IMAGES, WORDS):
            raise InvalidArgument(f"unknown collection {name!r}")
        with self._optimize_lock, self._admin_lock, self._write_locks[name]:
            shard = self._shards.pop(name, None)
            self._dims.pop(name, None)
            if shard is not None:
                shard.close()
            shutil.rmtree(self._path(name), ignore_errors=True)
            self._pending[name] = 0

    # -- images ------------------------------------------------------------------------------

    def upsert_images(self, points: list[ImagePoint]) -> None:
        if not points:
            return
        dims = self._require_dims(IMAGES)
        edge_points = [
            qe.Point(
                check_point_id(p.id),
                {
                    VISUAL: as_vector(p.visual, dims[VISUAL], "visual vector"),
                    SEMANTIC: as_vector(p.semantic, dims[SEMANTIC], "semantic vector"),
                },
                payloads.to_stored(p.payload),
            )
            for p in points
        ]
        with self._write_locks[IMAGES]:
            self._edge_call(self._shard(IMAGES).update, qe.UpdateOperation.upsert_points(edge_points))
        self._wrote(IMAGES, len(points))

    def existing_ids(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        wanted = [check_point_id(i) for i in ids]
        records = self._edge_call(self._shard(IMAGES).retrieve, wanted, False, False)
        return {str(r.id) for r in records}

    def get_image(self, id: str) -> ImagePoint | None:
        records = self._edge_call(self._shard(IMAGES).retrieve, [check_point_id(id)], True, True)
        return image_from_record(records[0]) if records else None

    def search_images(
        self, vector: np.ndarray, using: VectorName, k: int, flt: PayloadFilter | None = None
    ) -> list[Hit]:
        dims = self._require_dims(IMAGES)
        if using not in (VISUAL, SEMANTIC):
            raise InvalidArgument(f"unknown vector {using!r}; use 'visual' or 'semantic'")
        query = qe.QueryRequest(
            limit=check_k(k),
            query=qe.Query.Nearest(as_vector(vector, dims[using], f"{using} query"), using=using),
            filter=_filter(flt),
            with_payload=True,
            params=self._params(),
        )
        scored = self._edge_call(self._shard(IMAGES).query, query)
        return [
            Hit(id=str(p.id), score=float(p.score), payload=payloads.from_stored(p.payload)) for p in scored
        ]

    def delete_images(
        self, ids: list[str] | None = None, flt: PayloadFilter | None = None, all: bool = False
    ) -> int:
        shard = self._shard(IMAGES)
        with self._write_locks[IMAGES]:
            if all:
                deleted = self._count(shard, None)
                op = qe.UpdateOperation.delete_points_by_filter(qe.Filter())
            elif ids:
                wanted = [check_point_id(i) for i in ids]
                deleted = len(self.existing_ids(wanted))
                op = qe.UpdateOperation.delete_points(wanted)
            elif flt is not None and not flt.is_empty():
                deleted = self._count(shard, _filter(flt))
                op = qe.UpdateOperation.delete_points_by_filter(_filter(flt))
            else:
                raise InvalidArgument("delete needs ids, a non-empty filter, or all=True")
            if deleted:
                self._edge_call(shard.update, op)
        return deleted

    def count_images(self, flt: PayloadFilter | None = None) -> int:
        return self._count(self._shard(IMAGES), _filter(flt))

    def iter_images(self, batch: int = 256) -> Iterator[ImagePoint]:
        offset: Any = None
        while True:
            request = qe.ScrollRequest(offset=offset, limit=batch, with_payload=True, with_vector=True)
            records, offset = self._edge_call(self._shard(IMAGES).scroll, request)
            yield from (image_from_record(r) for r in records)
            if offset is None:
                return

    # -- words -------------------------------------------------------------------------------

    def upsert_words(self, start_rank: int, words: list[str], vectors: np.ndarray) -> None:
        matrix = word_matrix(words, vectors, self._require_dims(WORDS)[""])
        edge_points = [
            qe.Point(start_rank + i, matrix[i], {payloads.WORD: w, payloads.RANK: start_rank + i})
            for i, w in enumerate(words)
            if np.any(matrix[i])  # a zero vector has no cosine direction; Qdrant would store NaNs
        ]
        with self._write_locks[WORDS]:
            self._edge_call(self._shard(WORDS).update, qe.UpdateOperation.upsert_points(edge_points))
        self._wrote(WORDS, len(edge_points))

    def search_words(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        dim = self._require_dims(WORDS)[""]
        query = qe.QueryRequest(
            limit=check_k(k),
            query=qe.Query.Nearest(as_vector(vector, dim, "word query")),
            with_payload=True,
            params=self._params(),
        )
        scored = self._edge_call(self._shard(WORDS).query, query)
        return [(str(p.payload[payloads.WORD]), float(p.score)) for p in scored]

    def word_vector(self, word: str) -> np.ndarray | None:
        request = qe.ScrollRequest(
            limit=1,
            filter=qe.Filter(must=[qe.FieldCondition(payloads.WORD, match=qe.MatchValue(word))]),
            with_payload=False,
            with_vector=True,
        )
        records, _ = self._edge_call(self._shard(WORDS).scroll, request)
        if not records:
            return None
        vector = records[0].vector
        if isinstance(vector, dict):
            vector = vector[""]
        return np.asarray(vector, dtype=np.float32)

    def count_words(self) -> int:
        return self._count(self._shard(WORDS), None)

    # -- lifecycle ---------------------------------------------------------------------------

    def optimize(self) -> None:
        self._optimize_now(force=True)

    def indexed_vectors(self, name: str = IMAGES) -> int:
        """Vectors covered by an HNSW index (both named vectors count): shows optimize() took effect."""
        return int(self._edge_call(self._shard(name).info).indexed_vectors_count)

    def flush(self) -> None:
        with self._admin_lock:
            for shard in self._shards.values():
                self._edge_call(shard.flush)

    def close(self) -> None:
        with self._admin_lock:
            if self._closed:
                return
            self._closed = True
            self._optimize_wanted.set()
            optimizer = self._optimizer
        if optimizer is not None:
            optimizer.join()
        with self._optimize_lock, self._admin_lock:
            try:
                for shard in self._shards.values():
                    shard.flush()
                    shard.close()
            finally:
                self._shards.clear()
                self._lock_file.close()  # releases the directory lock

    def describe(self) -> str:
        return f"qdrant-edge {_edge_version()} (embedded) at {self._root}"

    # -- internals ---------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self._root / name

    def _stored_vectors(self, name: str) -> dict[str, dict[str, Any]] | None:
        """Vector parameters (size, quantization) from the shard's own config file, or None when the
        shard does not exist."""
        path = self._path(name) / _CONFIG_FILE
        if not path.exists():
            return None
        return json.loads(path.read_text())["vectors"]

    def _config(self, dims: dict[str, int]) -> qe.EdgeConfig:
        quantization = (
            qe.ScalarQuantizationConfig(
                type=qe.ScalarType.Int8, quantile=QUANTIZATION_QUANTILE, memory=qe.Memory.Pinned
            )
            if self._quantize
            else None
        )
        params = {
            vname: qe.EdgeVectorParams(
                size=size, distance=qe.Distance.Cosine, quantization_config=quantization
            )
            for vname, size in dims.items()
        }
        return qe.EdgeConfig(
            vectors=params[""] if list(params) == [""] else params,
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=self._indexing_threshold_kb),
            max_search_threads=self._search_threads,
            hnsw_config=None
            if self._full_scan_threshold_kb is None
            else qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=self._full_scan_threshold_kb),
        )

    def _create(self, name: str, dims: dict[str, int]) -> None:
        path = self._path(name)
        if path.exists():  # a half-created shard (no config file): start it over
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shard = self._edge_call(qe.EdgeShard.create, str(path), self._config(dims))
        keyword = qe.PayloadSchemaType.Keyword
        fields = [payloads.LABEL, payloads.META_KV] if name == IMAGES else [payloads.WORD]
        for key in fields:
            shard.update(qe.UpdateOperation.create_field_index(key, keyword))
        if name == WORDS:
            shard.update(qe.UpdateOperation.create_field_index(payloads.RANK, qe.PayloadSchemaType.Integer))
        shard.flush()
        self._shards[name] = shard
        self._dims[name] = dims
        log.info("created collection %s (%s) at %s", name, _fmt(dims), path)

    def _shard(self, name: str) -> qe.EdgeShard:
        shard = self._shards.get(name)
        if shard is None:
            self._check_open()
            raise FailedPrecondition(f"collection {name!r} does not exist yet (ensure_collections first)")
        return shard

    def _require_dims(self, name: str) -> dict[str, int]:
        self._shard(name)
        return self._dims[name]

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("the vector store is closed")

    def _params(self) -> qe.SearchParams | None:
        if not self._quantize:  # search the original vectors, even of a collection quantized before
            return qe.SearchParams(
                hnsw_ef=self._hnsw_ef, quantization=qe.QuantizationSearchParams(ignore=True)
            )
        rescore = qe.QuantizationSearchParams(rescore=True, oversampling=QUANTIZATION_OVERSAMPLING)
        return qe.SearchParams(hnsw_ef=self._hnsw_ef, quantization=rescore)

    def _count(self, shard: qe.EdgeShard, flt: qe.Filter | None) -> int:
        return int(self._edge_call(shard.count, qe.CountRequest(exact=True, filter=flt)))

    def _edge_call(self, fn: Any, *args: Any) -> Any:
        """Calls into the engine, turning its plain Exceptions into domain errors."""
        try:
            return fn(*args)
        except Exception as e:
            text = str(e)
            if "not initialized" in text:
                raise FailedPrecondition("the vector store is closed") from e
            if "ncompatible" in text:
                raise FailedPrecondition(f"qdrant-edge: {text}") from e
            raise

    def _wrote(self, name: str, n: int) -> None:
        if self._auto_optimize_points <= 0:
            return
        with self._admin_lock:
            self._pending[name] += n
            due = self._pending[name] >= self._auto_optimize_points
        if not due:
            return
        if not self._background:
            self._optimize_now(force=False)
            return
        self._optimize_soon()

    def _optimize_soon(self) -> None:
        """Wakes the background optimizer (started on first use) for the collections that are due."""
        with self._admin_lock:
            if self._closed:
                return
            if self._optimizer is None:
                self._optimizer = threading.Thread(
                    target=self._optimizer_loop, name="edge-optimizer", daemon=True
                )
                self._optimizer.start()
            self._optimize_wanted.set()

    def _optimizer_loop(self) -> None:
        while True:
            self._optimize_wanted.wait()
            self._optimize_wanted.clear()
            if self._closed:
                return
            try:
                self._optimize_now(force=False)
            except Exception:  # keep serving; the next trigger or close() retries
                log.exception("background optimize failed")

    def _optimize_now(self, force: bool) -> None:
        with self._optimize_lock:
            for name in (IMAGES, WORDS):
                with self._admin_lock:
                    shard = self._shards.get(name)
                    if shard is None or (not force and self._pending[name] < self._auto_optimize_points):
                        continue
                    self._pending[name] = 0
                changed = self._edge_call(shard.optimize)
                log.info("optimized %s (changed=%s)", name, changed)


def _lock_dir(root: Path) -> Any:
    """Takes `<root>/.lock` so that a second process (or store) cannot open the same shards."""
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / ".lock", "a+")  # noqa: SIM115 - held open for the store's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise FailedPrecondition(
            f"{root} is in use by another process; one process owns an embedded store "
            f"(run the others against it over gRPC, or use a Qdrant server)"
        ) from None
    return handle


def _filter(flt: PayloadFilter | None) -> qe.Filter | None:
    if flt is None or flt.is_empty():
        return None
    must: list[Any] = []
    if flt.label:
        must.append(qe.FieldCondition(payloads.LABEL, match=qe.MatchValue(flt.label)))
    for key, value in sorted(flt.metadata.items()):
        must.append(qe.FieldCondition(payloads.META_KV, match=qe.MatchValue(payloads.meta_token(key, value))))
    must_not = [qe.HasIdCondition({check_point_id(i) for i in flt.exclude_ids})] if flt.exclude_ids else None
    return qe.Filter(must=must or None, must_not=must_not)


def _fmt(dims: dict[str, int]) -> str:
    return ", ".join(f"{name or 'word'}={size}" for name, size in dims.items())


def _edge_version() -> str:
    try:
        return pkg_metadata.version("qdrant-edge-py")
    except pkg_metadata.PackageNotFoundError:
        return "?"
