"""EdgeStore: the embedded default, Qdrant Edge (the Qdrant engine in-process), one shard per collection.

Why this shape:
- An `EdgeShard` is safe to query from many threads while another thread writes (measured: four
  querying threads beside one upserting and optimizing thread), so searches take no Python lock.
  Writes to one collection are serialised by a lock so that delete counts are exact, and
  opening, dropping and closing shards take an admin lock.
- One process owns the shards: `<root>/.lock` (flock) refuses a second store on the same directory
  instead of letting two engines write the same files.
- Locks are always taken in the order optimize -> admin -> write.
- Qdrant Edge has no background optimizer; an `AutoOptimizer` builds HNSW after bulk writes.
- The engine raises plain `Exception`s, with no type or code to tell them apart, so failures are
  classified by what the store knows: a shard closed under a call, or a shard that will not load.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import threading
from collections.abc import Callable
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import qdrant_edge as qe

from imgsearch.config.cpus import usable_cpus
from imgsearch.errors import FailedPrecondition
from imgsearch.vectorstore.base import (
    IMAGES,
    PAYLOAD_INDEXES,
    WORDS,
    PayloadFilter,
    VectorStore,
    missing_collection,
)
from imgsearch.vectorstore.engine import QUANTIZATION_QUANTILE, Match, Row, engine_filter, search_params
from imgsearch.vectorstore.optimizer import AutoOptimizer, Job

log = logging.getLogger(__name__)

T = TypeVar("T")

_CONFIG_FILE = "edge_config.json"
_SCHEMA = {"keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer}


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
        quantize: int8 scalar quantization of the vectors, with rescoring (see engine.QUANTIZATION_*);
            a store created without it gets it built by a background optimize when opened with it.
        """
        if search_threads is not None and search_threads < 0:
            raise ValueError(f"search_threads must not be negative, got {search_threads}")
        self._root = Path(root)
        self._indexing_threshold_kb = indexing_threshold_kb
        self._full_scan_threshold_kb = full_scan_threshold_kb
        self._search_threads = search_threads or default_search_threads()
        self._quantize = quantize
        self._params = search_params(qe, hnsw_ef, quantize)
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dims: dict[str, dict[str, int]] = {}
        self._admin_lock = threading.RLock()
        self._write_locks = {IMAGES: threading.Lock(), WORDS: threading.Lock()}
        self._optimizer = AutoOptimizer(
            self._optimize_job,
            (IMAGES, WORDS),
            every=auto_optimize_points,
            background=background_optimize,
            admin=self._admin_lock,
        )
        self._lock_file = _lock_dir(self._root)
        try:
            for name in (IMAGES, WORDS):
                self._load(name)
        except BaseException:
            self._closed = True
            self._optimizer.stop()  # ends an optimizer started for an older store
            for shard in self._shards.values():
                shard.close()
            self._lock_file.close()
            raise

    # -- public methods that need this engine's locks ----------------------------------------

    def ensure_collections(self, visual_dim: int, semantic_dim: int, word_dim: int) -> None:
        with self._admin_lock:
            super().ensure_collections(visual_dim, semantic_dim, word_dim)

    def delete_images(
        self, ids: list[str] | None = None, flt: PayloadFilter | None = None, all: bool = False
    ) -> int:
        with self._write_locks[IMAGES]:  # the count and the delete see the same points
            return super().delete_images(ids, flt, all)

    def optimize(self) -> None:
        self._optimizer.run(force=True)

    def indexed_vectors(self, name: str = IMAGES) -> int:
        """Vectors covered by an HNSW index (both named vectors count): shows optimize() took effect."""
        return int(self._call(name, lambda shard: shard.info()).indexed_vectors_count)

    def flush(self) -> None:
        with self._admin_lock:
            for name in list(self._shards):
                self._call(name, lambda shard: shard.flush())

    def close(self) -> None:
        with self._admin_lock:
            if self._closed:
                return
            self._closed = True
        self._optimizer.stop()
        with self._optimizer.lock, self._admin_lock:
            try:
                for shard in self._shards.values():
                    shard.flush()
                    shard.close()
            finally:
                self._shards.clear()
                self._lock_file.close()  # releases the directory lock

    def describe(self) -> str:
        return f"qdrant-edge {_edge_version()} (embedded) at {self._root}"

    # -- primitives --------------------------------------------------------------------------

    def _stored_dims(self, name: str) -> dict[str, int] | None:
        return self._dims.get(name)  # every shard on disk is loaded when the store opens

    def _dims_of(self, name: str) -> dict[str, int]:
        self._shard(name)
        dims = self._dims.get(name)
        if dims is None:  # dropped meanwhile
            raise missing_collection(name)
        return dims

    def _create(self, name: str, dims: dict[str, int]) -> None:
        path = self._path(name)
        if path.exists():  # a half-created shard (no config file): start it over
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(path), self._config(dims))
        for key, kind in PAYLOAD_INDEXES[name].items():
            shard.update(qe.UpdateOperation.create_field_index(key, _SCHEMA[kind]))
        shard.flush()
        self._shards[name] = shard
        self._dims[name] = dims
        log.info("created collection %s (%s) at %s", name, dims, path)

    def _drop(self, name: str) -> None:
        with self._optimizer.lock, self._admin_lock, self._write_locks[name]:
            shard = self._shards.pop(name, None)
            self._dims.pop(name, None)
            if shard is not None:
                shard.close()
            shutil.rmtree(self._path(name), ignore_errors=True)
            self._optimizer.forget(name)

    def _upsert(self, name: str, rows: list[Row]) -> None:
        operation = qe.UpdateOperation.upsert_points([qe.Point(*row) for row in rows])
        with self._write_locks[name]:
            self._call(name, lambda shard: shard.update(operation))
        self._optimizer.wrote(name, len(rows))

    def _retrieve(self, name: str, ids: list[str], full: bool) -> list[Any]:
        return self._call(name, lambda shard: shard.retrieve(ids, full, full))

    def _query(
        self, name: str, vector: np.ndarray, using: str | None, limit: int, match: Match | None
    ) -> list[Any]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector, using=using),
            filter=_filter(match),
            with_payload=True,
            params=self._params,
        )
        return self._call(name, lambda shard: shard.query(request))

    def _scroll(
        self, name: str, limit: int, offset: Any, match: Match | None, with_payload: bool
    ) -> tuple[list[Any], Any]:
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=_filter(match), with_payload=with_payload, with_vector=True
        )
        return self._call(name, lambda shard: shard.scroll(request))

    def _count(self, name: str, match: Match | None) -> int:
        request = qe.CountRequest(exact=True, filter=_filter(match))
        return int(self._call(name, lambda shard: shard.count(request)))

    def _delete(self, name: str, target: list[str] | Match) -> None:
        """Callers hold the collection's write lock (delete_images)."""
        if isinstance(target, list):
            operation = qe.UpdateOperation.delete_points(target)
        else:
            operation = qe.UpdateOperation.delete_points_by_filter(_filter(target))
        self._call(name, lambda shard: shard.update(operation))

    # -- internals ---------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self._root / name

    def _load(self, name: str) -> None:
        """Opens the shard the directory holds, if any, with this store's settings."""
        path = self._path(name) / _CONFIG_FILE
        if not path.exists():  # no shard, or a half-created one (`_create` starts it over)
            return
        stored = json.loads(path.read_text())["vectors"]
        dims = {vname: int(params["size"]) for vname, params in stored.items()}
        try:
            self._shards[name] = qe.EdgeShard.load(str(self._path(name)), self._config(dims))
        except Exception as e:  # the engine gives no error type: a shard it refuses cannot be served
            raise FailedPrecondition(f"qdrant-edge cannot open collection {name!r}: {e}") from e
        self._dims[name] = dims
        quantized = all(params.get("quantization_config") for params in stored.values())
        if self._quantize and not quantized:  # build the quantized vectors of an older store
            self._optimizer.request(name)

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

    def _shard(self, name: str) -> qe.EdgeShard:
        shard = self._shards.get(name)
        if shard is None:
            self._check_open()
            raise missing_collection(name)
        return shard

    def _call(self, name: str, fn: Callable[[qe.EdgeShard], T]) -> T:
        """Runs `fn` on the collection's shard.

        A search takes no lock, so close() or drop_collection() may close the shard under it; the
        engine then fails with a plain Exception, which the store's own state explains.
        """
        shard = self._shard(name)
        try:
            return fn(shard)
        except Exception as e:
            if self._closed:
                raise FailedPrecondition("the vector store is closed") from e
            if self._shards.get(name) is not shard:
                raise missing_collection(name) from e
            raise

    def _optimize_job(self, name: str) -> Job | None:
        shard = self._shards.get(name)
        return None if shard is None else shard.optimize


def _filter(match: Match | None) -> qe.Filter | None:
    return engine_filter(match, qe, qe.HasIdCondition)


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


def _edge_version() -> str:
    try:
        return pkg_metadata.version("qdrant-edge-py")
    except pkg_metadata.PackageNotFoundError:
        return "?"
