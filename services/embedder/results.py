"""What the embedder hands back, as plain data shared by the local runtime and the remote client,
and the `Embedder` protocol the indexer and query services program against (the types the Python
client shares live in imgsearch.types.embeddings).

Nothing here loads a model: the Python client and the services import it without TensorFlow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from imgsearch.embedder.channels.sky import entry_kind as sky_kind
from imgsearch.errors import ServiceError
from imgsearch.types.embeddings import ClassScores, ModelInfo, TextEmbedding

__all__ = [
    "ClassScores",
    "Embedder",
    "ImageOutcome",
    "ImageVectors",
    "ModelInfo",
    "TextEmbedding",
    "Thumbnailer",
    "VocabularyChunk",
    "entry_kind",
]


IMAGENET_CLASSES = 1000  # ids below: class probabilities (summing to at most 1)
FACE_ENTRY = 1000  # a face was found (imgsearch.embedder.channels.faces.PERSON)


def entry_kind(i: int) -> str:
    """Which kind of evidence an id of ClassScores is: 'class', 'face', 'colour', 'sky' or 'stars'
    (imgsearch.embedder.channels.sky). An image's entries of one kind sum to at most 1."""
    if i < IMAGENET_CLASSES:
        return "class"
    if i == FACE_ENTRY:
        return "face"
    return sky_kind(i) or "colour"


@dataclass(frozen=True)
class ImageVectors:
    """One embedded image: both vectors L2-normalised; `feature_norm` keeps the CNN features'
    length so the raw features (and the logits, a linear layer over them) can be recovered."""

    visual: np.ndarray
    semantic: np.ndarray
    width: int
    height: int
    feature_norm: float = 0.0
    classes: ClassScores = field(default_factory=lambda: ClassScores())
    # What the caller's `thumbnail` function made of the decoded picture (the in-process embedder
    # only); None when it was not asked for, or not made.
    thumbnail: bytes | None = None


ImageOutcome = ImageVectors | ServiceError
# A thumbnail's bytes from a decoded picture (a PIL image, oriented, RGB or L), or None; never raises.
Thumbnailer = Callable[[Any], bytes | None]


@dataclass(frozen=True)
class VocabularyChunk:
    start_rank: int
    words: list[str]
    vectors: np.ndarray  # (len(words), dim) float32


class Embedder(Protocol):
    """What the indexer and query services need of an embedder: the in-process runtime or remote
    replicas reached over gRPC (`RemoteEmbedder`)."""

    def embed_images(self, images: list[bytes], thumbnail: Thumbnailer | None = None) -> list[ImageOutcome]:
        """`thumbnail`: made of each decoded picture (a PIL image) by an embedder in this process,
        which then decodes each image once for all its uses; remote embedders ignore it."""
        ...

    def embed_text(self, text: str) -> TextEmbedding: ...
    def embed_features(self, features: np.ndarray) -> np.ndarray: ...
    def classify_features(self, features: np.ndarray) -> list[ClassScores]: ...
    def model_info(self) -> ModelInfo: ...
    def vocabulary(self, limit: int = 0, chunk_size: int = 5000) -> Iterator[VocabularyChunk]: ...
