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

An export pages through the store in id order (the engine's scroll; the server ends a page early
where more would pass its reply budget) and writes to `FILE.partial`, renamed to FILE once
complete and removed when the export fails or is interrupted, so a file at FILE is always whole.
An import reads the file a row group at a time in batches, after checking from the file's metadata
(before decompressing anything) that it is an export: the model it names, the columns and their
types, and that no row group holds more than MAX_ROW_GROUP_BYTES uncompressed (a small file may
hold a huge compressed string); anything else is a BadExport with one line saying why. It sends
the records to the Indexer's ImportImages in batches of at most IMPORT_BATCH records and
IMPORT_BYTES, which refuses records of another model or head (FAILED_PRECONDITION) and skips ids
already stored: an interrupted import is resumed by running it again, without duplicates.

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
EXPORT_PAGE = 500  # records per ListImages call and per row group (fewer where the server's page ends early)
IMPORT_BATCH = 256  # records per ImportImages call
IMPORT_BYTES = 16 * 1024 * 1024  # and bytes per call (records carry up to about 600 KB each)
# The most one row group may hold uncompressed: what reading it costs in memory, checked from the
# file's metadata before anything is decompressed (an export's row groups are one page, a few MB).
MAX_ROW_GROUP_BYTES = 256 * 1024 * 1024
PYARROW_MISSING = (
    "export and import need pyarrow, which comes with the server extra: "
    "pip install 'imgsearch[server]' (or pip install pyarrow)"
)


class PyarrowMissing(ImportError):
    """pyarrow is not installed (the client-only install)."""


class BadExport(ValueError):
    """The file is not an export this version can read; the message says why in one line."""


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
    try:
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
    except BaseException:  # a failed or interrupted export leaves no partial file behind
        partial.unlink(missing_ok=True)
        raise
    return ExportSummary(path, done, time.perf_counter() - start)


def read_header(path: str | Path) -> ExportHeader:
    """The model, namespace and record count an export file declares, after checking from its
    metadata alone that it can be read (BadExport otherwise; FileNotFoundError when missing)."""
    parquet = _open(path)
    meta = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in _file_meta(parquet).items()}
    if meta.get("imgsearch.format") != FORMAT:
        found = meta.get("imgsearch.format")
        raise BadExport(f"{path} is no imgsearch export (format {_short(found)}, want {FORMAT})")
    model = _model(path, meta.get("imgsearch.model"))
    _check_columns(path, parquet.schema_arrow, int(model["visual_dim"]), int(model["semantic_dim"]))
    _check_row_groups(path, parquet.metadata)
    try:
        exported_at = float(meta.get("imgsearch.exported_at") or 0.0)
    except ValueError:
        exported_at = 0.0
    return ExportHeader(
        model=model,
        namespace=meta.get("imgsearch.namespace", ""),
        records=parquet.metadata.num_rows,
        exported_at=exported_at,
    )


def _open(path: str | Path) -> Any:
    _, pq = _pyarrow()
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise BadExport(f"{path} is not a Parquet file: {_short(str(e), 200)}") from None


def _file_meta(parquet: Any) -> dict[bytes, bytes]:
    return dict(parquet.schema_arrow.metadata or {})


def _model(path: str | Path, text: str | None) -> dict:
    """The exporting model (ModelInfo as a JSON object with positive vector sizes)."""
    if not text:
        raise BadExport(f"{path} names no model (imgsearch.model is missing)")
    try:
        model = json.loads(text)
    except (ValueError, RecursionError):
        raise BadExport(f"{path}: imgsearch.model is not JSON") from None
    if not isinstance(model, dict):
        raise BadExport(f"{path}: imgsearch.model must be a JSON object (the exporting ModelInfo)")
    for key in ("visual_dim", "semantic_dim"):
        value = model.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 65536:
            raise BadExport(f"{path}: imgsearch.model has no valid {key}")
    return model


def _check_columns(path: str | Path, schema: Any, visual_dim: int, semantic_dim: int) -> None:
    """The columns an export has, with their types (class columns are optional: older exports)."""
    pa, _ = _pyarrow()
    want = _schema(pa, visual_dim, semantic_dim, {})
    optional = {"class_ids", "class_scores"}
    for field in want:
        if field.name not in schema.names:
            if field.name in optional:
                continue
            raise BadExport(f"{path} has no {field.name!r} column")
        have = schema.field(field.name).type
        if not have.equals(field.type):
            raise BadExport(f"{path}: column {field.name!r} is {_short(str(have))}, want {field.type}")


def _check_row_groups(path: str | Path, metadata: Any) -> None:
    """Refuses a file whose row groups would take more than MAX_ROW_GROUP_BYTES to read."""
    for n in range(metadata.num_row_groups):
        group = metadata.row_group(n)
        size = max(
            group.total_byte_size,
            sum(group.column(c).total_uncompressed_size for c in range(group.num_columns)),
        )
        if size > MAX_ROW_GROUP_BYTES:
            raise BadExport(
                f"{path}: row group {n} is {size} bytes uncompressed, over the {MAX_ROW_GROUP_BYTES} "
                "an import reads at a time; export it again with this version"
            )


def _short(text: object, most: int = 80) -> str:
    shown = repr(text) if not isinstance(text, str) else text
    return shown if len(shown) <= most else shown[:most] + "..."


def read_records(
    path: str | Path, batch: int = IMPORT_BATCH, namespace: str | None = None
) -> Iterator[list[StoredImage]]:
    """The file's records in batches, a row group at a time (read_header checks the file first);
    `namespace` set: every record goes into it. BadExport when a value cannot be read."""
    read_header(path)  # the checks, before anything is decompressed
    parquet = _open(path)
    columns = [c for c in parquet.schema_arrow.names if c in _COLUMNS]
    try:
        for group in range(parquet.metadata.num_row_groups):
            for chunk in parquet.iter_batches(batch_size=batch, row_groups=[group], columns=columns):
                yield _records(chunk, namespace)
    except (OSError, ValueError) as e:  # pyarrow's errors while decoding (ArrowInvalid is a ValueError)
        if isinstance(e, BadExport):
            raise
        raise BadExport(f"{path}: {_short(str(e), 200)}") from None


_COLUMNS = frozenset(
    [
        "id",
        "namespace",
        "uri",
        "label",
        "metadata",
        "ingested_at",
        "sha256",
        "width",
        "height",
        "visual",
        "semantic",
        "extra_json",
        "class_ids",
        "class_scores",
    ]
)


def _records(chunk: Any, namespace: str | None) -> list[StoredImage]:
    rows = chunk.drop_columns(["visual", "semantic"]).to_pydict()
    visual, semantic = _matrix(chunk.column("visual")), _matrix(chunk.column("semantic"))
    return [
        StoredImage(
            id=rows["id"][i] or "",
            namespace=(rows["namespace"][i] or "") if namespace is None else namespace,
            uri=rows["uri"][i] or "",
            label=rows["label"][i] or "",
            metadata={k: v or "" for k, v in rows["metadata"][i] or []},
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
        for part in _by_size(records, IMPORT_BYTES):
            got, had = client.import_images(part, header.model)
            imported += got
            skipped += had
            if progress:
                progress(imported + skipped, header.records)
    return ImportSummary(imported, skipped, time.perf_counter() - start)


def _by_size(records: list[StoredImage], most: int) -> Iterator[list[StoredImage]]:
    """`records` in runs of at most `most` bytes (about), at least one record each."""
    run: list[StoredImage] = []
    size = 0
    for r in records:
        cost = _size(r)
        if run and size + cost > most:
            yield run
            run, size = [], 0
        run.append(r)
        size += cost
    if run:
        yield run


def _size(r: StoredImage) -> int:
    """About what a record costs in an ImportImages request."""
    text = len(r.id) + len(r.namespace) + len(r.uri) + len(r.label) + len(r.sha256) + len(r.extra_json)
    metadata = sum(len(k) + len(v) + 8 for k, v in r.metadata.items())
    floats = sum(len(v) for v in (r.visual, r.semantic) if v is not None) + len(r.class_scores)
    vectors = 4 * floats + 5 * len(r.class_ids)
    return text + metadata + vectors + 64
