"""Conversions between the client's plain types and the protobuf messages (one place): what the
client sends is built here, and every answer becomes plain data here."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from imgsearch.client.types import (
    Filter,
    ImageEmbedding,
    ImageResult,
    PointVectors,
    QueryPart,
    SearchResult,
    StoredImage,
    WordResult,
)
from imgsearch.protogen.imagesearch.v1 import common_pb2, embedder_pb2, indexer_pb2, query_pb2
from imgsearch.rpc.packing import add_floats
from imgsearch.types.embeddings import ClassScores, ModelInfo, TextEmbedding
from imgsearch.types.items import STATUS_NAMES, IngestItem, IngestItemResult


def filter_to_proto(label: str | None, metadata: Mapping[str, str] | None) -> common_pb2.Filter | None:
    if not label and not metadata:
        return None
    return common_pb2.Filter(label=label or "", metadata=dict(metadata or {}))


def query_filter_to_proto(
    label: str | Sequence[str] | None, metadata: Mapping[str, str] | None, extra: Filter | None
) -> common_pb2.Filter | None:
    """The proto Filter of a query's `label` (one or any of several), `metadata` and `Filter`."""
    f = extra or Filter()
    labels = [*([label] if isinstance(label, str) else (label or ())), *f.labels]
    msg = common_pb2.Filter(
        # one label travels in `label`, which servers older than `labels` understand too
        label=labels[0] if len(labels) == 1 else "",
        labels=labels if len(labels) > 1 else [],
        metadata={**f.metadata, **(metadata or {})},
        exclude_labels=list(f.exclude_labels),
        exclude_metadata=[common_pb2.MetadataPair(key=k, value=v) for k, v in f.exclude_metadata],
        has_metadata=list(f.has_metadata),
        missing_metadata=list(f.missing_metadata),
    )
    return msg if msg.ByteSize() else None


def part_to_proto(part: QueryPart) -> query_pb2.QueryPart:
    msg = query_pb2.QueryPart(weight=part.weight)
    if part.text:
        msg.text = part.text
    if part.image:
        msg.image = part.image
    if part.id:
        msg.id = part.id
    return msg


SEARCH_MODES = {
    None: query_pb2.SearchTextRequest.MODE_UNSPECIFIED,
    "hybrid": query_pb2.SearchTextRequest.HYBRID,
    "semantic": query_pb2.SearchTextRequest.SEMANTIC,
    "lexical": query_pb2.SearchTextRequest.LEXICAL,
}


def search_mode_to_proto(mode: str | None) -> Any:
    """A search mode by name as the request's enum value; ValueError for another name."""
    if mode not in SEARCH_MODES:
        raise ValueError(f"unknown search mode {mode!r}; use 'hybrid', 'semantic' or 'lexical'")
    return SEARCH_MODES[mode]


def search_result_from_proto(response: query_pb2.SearchImagesResponse) -> SearchResult:
    return SearchResult(
        results=[
            ImageResult(
                id=h.id,
                score=h.score,
                uri=h.uri,
                label=h.label,
                metadata=dict(h.metadata),
                thumbnail=h.thumbnail,
            )
            for h in response.results
        ],
        unknown_terms=list(response.unknown_terms),
        ignored_terms=list(response.ignored_terms),
        match_count=response.match_count if response.HasField("match_count") else None,
    )


# StoredImage's fields that are the proto's scalars as they are (the vectors, the metadata map and
# the class lists are converted apart).
_STORED_SCALARS = (
    *("id", "namespace", "uri", "label", "ingested_at", "sha256", "width", "height", "extra_json"),
)


def stored_from_proto(msg: common_pb2.StoredImage, with_vectors: bool) -> StoredImage:
    return StoredImage(
        **{name: getattr(msg, name) for name in _STORED_SCALARS},
        metadata=dict(msg.metadata),
        visual=np.asarray(msg.visual, dtype=np.float32) if with_vectors else None,
        semantic=np.asarray(msg.semantic, dtype=np.float32) if with_vectors else None,
        class_ids=tuple(msg.class_ids),
        class_scores=tuple(msg.class_scores),
    )


def stored_to_proto(r: StoredImage) -> common_pb2.StoredImage:
    if r.visual is None or r.semantic is None:
        raise ValueError(f"record {r.id} has no vectors: import needs records listed with_vectors")
    msg = common_pb2.StoredImage(
        **{name: getattr(r, name) for name in _STORED_SCALARS},
        metadata=dict(r.metadata),
        class_ids=list(r.class_ids),
        class_scores=list(r.class_scores),
    )
    add_floats(msg, "visual", r.visual)
    add_floats(msg, "semantic", r.semantic)
    return msg


def words_from_proto(response: query_pb2.WordsResponse) -> list[WordResult]:
    return [WordResult(word=h.word, score=h.score) for h in response.results]


def model_info_from_proto(m: embedder_pb2.ModelInfo) -> dict:
    """The served model's description as a dict (ModelInfo's fields)."""
    return ModelInfo(**{f.name: getattr(m, f.name) for f in fields(ModelInfo)}).as_dict()


def embedding_from_proto(msg: embedder_pb2.ImageEmbedding) -> ImageEmbedding:
    """One image's vectors, or its error (code and message) with empty vectors."""
    if msg.HasField("error"):
        empty = np.zeros(0, np.float32)
        return ImageEmbedding(empty, empty, error_code=msg.error.code, error=msg.error.message)
    return ImageEmbedding(
        np.asarray(msg.visual, np.float32), np.asarray(msg.semantic, np.float32), msg.width, msg.height
    )


def text_embedding_from_proto(msg: embedder_pb2.EmbedTextResponse) -> TextEmbedding:
    if len(msg.classes.ids) != len(msg.classes.scores):
        raise ValueError(f"class scores of {len(msg.classes.ids)} ids but {len(msg.classes.scores)} scores")
    classes = ClassScores(tuple(int(i) for i in msg.classes.ids), tuple(float(v) for v in msg.classes.scores))
    return TextEmbedding(
        np.asarray(msg.vector, np.float32), list(msg.known_words), list(msg.unknown_words), classes
    )


def point_to_proto(p: PointVectors) -> indexer_pb2.PointVectors:
    return indexer_pb2.PointVectors(
        id=p.id,
        visual=np.asarray(p.visual, dtype=np.float32).tolist(),
        semantic=np.asarray(p.semantic, dtype=np.float32).tolist(),
        uri=p.uri,
        label=p.label,
        metadata=dict(p.metadata),
    )


def ingest_result_from_proto(
    r: indexer_pb2.IngestResult, base: int, chunk: list[IngestItem]
) -> IngestItemResult:
    """One item's result; `base` is the index of the chunk's first item in the whole call."""
    failed = r.status == indexer_pb2.IngestResult.FAILED
    return IngestItemResult(
        index=base + r.index,
        id=r.id,
        uri=r.uri or (chunk[r.index].uri if 0 <= r.index < len(chunk) else ""),
        status=STATUS_NAMES.get(r.status, "failed"),
        error_code=r.error.code if failed else 0,
        error=r.error.message if failed else "",
    )


def ingest_requests(
    chunk: list[IngestItem], on_sent: Callable[[IngestItem], None] | None, namespace: str = ""
) -> Iterator[indexer_pb2.IngestRequest]:
    for item in chunk:
        yield indexer_pb2.IngestRequest(
            image=item.image,
            id=item.id,
            uri=item.uri,
            label=item.label,
            metadata=dict(item.metadata),
            namespace=item.namespace or namespace,
            caption=item.caption,
        )
        if on_sent is not None:
            on_sent(item)
