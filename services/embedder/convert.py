"""Conversions between the Embedder's protobuf messages and plain results (one place)."""

from __future__ import annotations

from dataclasses import fields

import grpc
import numpy as np

from imgsearch.embedder.results import ClassScores, ImageOutcome, ImageVectors, ModelInfo, VocabularyChunk
from imgsearch.errors import InvalidArgument, ServiceError, error_for_code
from imgsearch.protogen.imagesearch.v1 import common_pb2, embedder_pb2
from imgsearch.rpc.convert import item_error


def outcome_to_proto(outcome: ImageOutcome) -> embedder_pb2.ImageEmbedding:
    if isinstance(outcome, ServiceError):
        return embedder_pb2.ImageEmbedding(error=item_error(outcome))
    return embedder_pb2.ImageEmbedding(
        visual=outcome.visual.tolist(),
        semantic=outcome.semantic.tolist(),
        width=outcome.width,
        height=outcome.height,
        feature_norm=outcome.feature_norm,
        classes=classes_to_proto(outcome.classes),
    )


def outcome_from_proto(msg: embedder_pb2.ImageEmbedding) -> ImageOutcome:
    if msg.HasField("error"):
        return error_from_item(msg.error)
    return ImageVectors(
        np.asarray(msg.visual, np.float32),
        np.asarray(msg.semantic, np.float32),
        msg.width,
        msg.height,
        msg.feature_norm,
        classes_from_proto(msg.classes),
    )


def classes_to_proto(classes: ClassScores) -> embedder_pb2.ClassScores:
    return embedder_pb2.ClassScores(ids=list(classes.ids), scores=list(classes.scores))


def classes_from_proto(msg: embedder_pb2.ClassScores) -> ClassScores:
    if len(msg.ids) != len(msg.scores):
        raise InvalidArgument(f"class scores of {len(msg.ids)} ids but {len(msg.scores)} scores")
    return ClassScores(tuple(int(i) for i in msg.ids), tuple(float(s) for s in msg.scores))


def error_from_item(item: common_pb2.ItemError) -> ServiceError:
    """The domain error for a per-item error code (unknown codes become a plain ServiceError)."""
    name = next((c.name for c in grpc.StatusCode if c.value[0] == item.code), "INTERNAL")
    return error_for_code(name, item.message)


def model_info_to_proto(info: ModelInfo) -> embedder_pb2.ModelInfo:
    return embedder_pb2.ModelInfo(**info.as_dict())


def model_info_from_proto(msg: embedder_pb2.ModelInfo) -> ModelInfo:
    return ModelInfo(**{f.name: getattr(msg, f.name) for f in fields(ModelInfo)})


def chunk_to_proto(chunk: VocabularyChunk) -> embedder_pb2.VocabularyChunk:
    return embedder_pb2.VocabularyChunk(
        start_rank=chunk.start_rank,
        words=chunk.words,
        vectors=np.asarray(chunk.vectors, np.float32).ravel().tolist(),
        dim=int(chunk.vectors.shape[1]),
    )


def chunk_from_proto(msg: embedder_pb2.VocabularyChunk) -> VocabularyChunk:
    vectors = np.asarray(msg.vectors, np.float32).reshape(len(msg.words), msg.dim)
    return VocabularyChunk(msg.start_rank, list(msg.words), vectors)


def matrix_from_vectors(vectors) -> np.ndarray:
    """Repeated `Vector` messages as an (N, dim) float32 matrix (InvalidArgument if ragged)."""
    rows = [np.asarray(v.values, np.float32) for v in vectors]
    if len({len(r) for r in rows}) > 1:
        raise InvalidArgument("vectors of different lengths in one request")
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def vectors_from_matrix(matrix: np.ndarray) -> list[common_pb2.Vector]:
    return [common_pb2.Vector(values=row.tolist()) for row in np.asarray(matrix, np.float32)]
