"""Export and import of stored images as a Parquet file: every record's id, vectors and payload,
with the model that made the vectors, so a collection moves between servers and stores (Qdrant
Edge embedded <-> a Qdrant server) without running a single image through the CNN again.

The file (format "imgsearch-export/1"), one row per image:

    id           string   the image id (a UUID)
    namespace    string   "" for the default namespace
    uri, label   string
    metadata     map<string, string>
    ingested_at  double   unix seconds
    sha256       string   of the image bytes ("" for precomputed vectors)
    width        int32
    height       int32
    visual       list<float32>   the CNN vector (L2-normalised), ModelInfo.visual_dim values
    semantic     list<float32>   the word-space vector (L2-normalised), ModelInfo.semantic_dim values
    extra_json   string   the rest of the stored payload as a JSON object (CNN feature norm, thumbnail)
    class_ids    list<int32>     the image's most probable ImageNet classes (sparse `classes` vector)
    class_scores list<float32>   their scores (both empty when the store has no classes for it)

and in the file's key-value metadata `imgsearch.format`, `imgsearch.model` (the exporting
embedder's ModelInfo as JSON: cnn, head, head_detail, word_vectors, dimensions, ...),
`imgsearch.namespace` ("*" for every namespace) and `imgsearch.exported_at`.

An export pages through the store in id order (the engine's scroll) and writes to `FILE.partial`,
renamed to FILE once complete, so a file at FILE is always whole. An import sends the records in
batches to the Indexer's ImportImages, which refuses records of another model or head
(FAILED_PRECONDITION) and skips ids already stored: an interrupted import is resumed by running it
again, without duplicates.

pyarrow comes with the server extra; it is imported only here, when a file is written or read.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgsearch.client.types import StoredImage

if TYPE_CHECKING:
    from imgsearch.client.client import ImageSearchClient

FORMAT = "imgsearch-export/1"
EXPORT_PAGE = 500  # records per ListImages call and per row group
IMPORT_BATCH = 256  # records per ImportImages call
PYARROW_MISSING = (
    "export and import need pyarrow, which comes with the server extra: "
    "pip install 'imgsearch[server]' (or pip install pyarrow)"
)


class PyarrowMissing(ImportError):
    """pyarrow is not installed (the client-only install)."""


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise PyarrowMissing(PYARROW_MISSING) from e
    return pa, pq


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    records: int
    seconds: float


@dataclass(frozen=True)
class ImportSummary:
    imported: int
    skipped: int
    seconds: float


@dataclass(frozen=True)
class ExportHeader:
    """What an export file says about itself."""

    model: dict
    namespace: str  # "*" for every namespace
    records: int
    exported_at: float


def _schema(pa: Any, visual_dim: int, semantic_dim: int, meta: dict[str, str]) -> Any:
    return pa.schema(
        [
            ("id", pa.string()),
            ("namespace", pa.string()),
            ("uri", pa.string()),
            ("label", pa.string()),
            ("metadata", pa.map_(pa.string(), pa.string())),
            ("ingested_at", pa.float64()),
            ("sha256", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("visual", pa.list_(pa.float32(), visual_dim)),
            ("semantic", pa.list_(pa.float32(), semantic_dim)),
            ("extra_json", pa.string()),
            ("class_ids", pa.list_(pa.int32())),
            ("class_scores", pa.list_(pa.float32())),
        ],
        metadata={k: v.encode() for k, v in meta.items()},
    )


def _table(pa: Any, schema: Any, records: list[StoredImage]) -> Any:
    columns = {
        "id": [r.id for r in records],
        "namespace": [r.namespace for r in records],
        "uri": [r.uri for r in records],
        "label": [r.label for r in records],
        "metadata": [list(r.metadata.items()) for r in records],
        "ingested_at": [r.ingested_at for r in records],
        "sha256": [r.sha256 for r in records],
        "width": [r.width for r in records],
        "height": [r.height for r in records],
        "extra_json": [r.extra_json for r in records],
        "class_ids": [list(r.class_ids) for r in records],
        "class_scores": [list(r.class_scores) for r in records],
    }
    arrays = []
    for f in schema:
        if f.name in ("visual", "semantic"):
            flat = np.concatenate([np.asarray(getattr(r, f.name), np.float32) for r in records])
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), f.type.list_size))
        else:
            arrays.append(pa.array(columns[f.name], f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def export(
    client: ImageSearchClient,
    path: str | Path,
    *,
    namespace: str | None = None,
    all_namespaces: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Writes every record of `namespace` (default: the client's), or of every namespace, to a
    Parquet file at `path`; `progress(done, total)` after each page."""
    pa, pq = _pyarrow()
    path = Path(path)
    start = time.perf_counter()
    model = client.model_info()
    ns = "*" if all_namespaces else client._ns(namespace)
    total = 0 if all_namespaces else int(client.stats(namespace=ns)["images"])
    meta = {
        "imgsearch.format": FORMAT,
        "imgsearch.model": json.dumps(model),
        "imgsearch.namespace": ns,
        "imgsearch.exported_at": repr(time.time()),
    }
    schema = _schema(pa, int(model["visual_dim"]), int(model["semantic_dim"]), meta)
    partial = path.with_name(path.name + ".partial")
    done = 0
    with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
        pages = client.iter_images(
            page_size=EXPORT_PAGE,
            with_vectors=True,
            namespace=None if all_namespaces else ns,
            all_namespaces=all_namespaces,
        )
        for page in pages:
            if page.images:
                writer.write_table(_table(pa, schema, page.images))
                done += len(page.images)
            if progress:
                progress(done, max(total, done))
    os.replace(partial, path)
    return ExportSummary(path, done, time.perf_counter() - start)


def read_header(path: str | Path) -> ExportHeader:
    """The model, namespace and record count an export file declares (ValueError when it is no
    imgsearch export)."""
    _, pq = _pyarrow()
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ValueError(f"{path} is not a Parquet file: {e}") from e
    meta = {k.decode(): v.decode() for k, v in (parquet.schema_arrow.metadata or {}).items()}
    if meta.get("imgsearch.format") != FORMAT:
        found = meta.get("imgsearch.format")
        raise ValueError(f"{path} is no imgsearch export (format {found!r}, want {FORMAT})")
    return ExportHeader(
        model=json.loads(meta["imgsearch.model"]),
        namespace=meta.get("imgsearch.namespace", ""),
        records=parquet.metadata.num_rows,
        exported_at=float(meta.get("imgsearch.exported_at") or 0.0),
    )


def read_records(
    path: str | Path, batch: int = IMPORT_BATCH, namespace: str | None = None
) -> Iterator[list[StoredImage]]:
    """The file's records in batches; `namespace` set: every record goes into it."""
    _, pq = _pyarrow()
    parquet = pq.ParquetFile(path)
    for chunk in parquet.iter_batches(batch_size=batch):
        rows = chunk.drop_columns(["visual", "semantic"]).to_pydict()
        visual, semantic = _matrix(chunk.column("visual")), _matrix(chunk.column("semantic"))
        yield [
            StoredImage(
                id=rows["id"][i],
                namespace=rows["namespace"][i] if namespace is None else namespace,
                uri=rows["uri"][i] or "",
                label=rows["label"][i] or "",
                metadata=dict(rows["metadata"][i] or []),
                ingested_at=float(rows["ingested_at"][i] or 0.0),
                sha256=rows["sha256"][i] or "",
                width=int(rows["width"][i] or 0),
                height=int(rows["height"][i] or 0),
                visual=visual[i],
                semantic=semantic[i],
                extra_json=rows["extra_json"][i] or "",
                class_ids=tuple(rows["class_ids"][i] or ()) if "class_ids" in rows else (),
                class_scores=tuple(rows["class_scores"][i] or ()) if "class_scores" in rows else (),
            )
            for i in range(chunk.num_rows)
        ]


def _matrix(column: Any) -> np.ndarray:
    """A fixed-size list column as a (rows, size) float32 matrix, without a Python list per row."""
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(column), -1)


def import_file(
    client: ImageSearchClient,
    path: str | Path,
    *,
    namespace: str | None = None,
    batch: int = IMPORT_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Loads an export file through the Indexer (no re-embedding), each record into its own
    namespace or, with `namespace`, all into that one; ids already stored are skipped."""
    header = read_header(path)
    start = time.perf_counter()
    imported = skipped = 0
    for records in read_records(path, batch, namespace):
        got, had = client.import_images(records, header.model)
        imported += got
        skipped += had
        if progress:
            progress(imported + skipped, header.records)
    return ImportSummary(imported, skipped, time.perf_counter() - start)
