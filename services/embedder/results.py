"""What the embedder hands back, as plain data shared by the local runtime and the remote client."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from services.errors import ServiceError


@dataclass(frozen=True)
class ImageVectors:
    """One embedded image: both vectors L2-normalised; `feature_norm` keeps the CNN features'
    length so the raw features (and the logits, a linear layer over them) can be recovered."""

    visual: np.ndarray
    semantic: np.ndarray
    width: int
    height: int
    feature_norm: float = 0.0


ImageOutcome = ImageVectors | ServiceError


@dataclass(frozen=True)
class ModelInfo:
    cnn: str
    head: str
    visual_dim: int
    semantic_dim: int
    vocabulary_size: int
    word_vectors: str
    max_batch: int
    head_detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VocabularyChunk:
    start_rank: int
    words: list[str]
    vectors: np.ndarray  # (len(words), dim) float32
