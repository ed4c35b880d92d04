"""What the Embedder service answers, as plain data: a text's embedding, the sparse class scores
it carries, and the description of the served model (mirroring embedder.proto)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class ClassScores:
    """A sparse vector over the CNN's 1000 ImageNet classes (the taxonomic channel) and what pixels
    tell besides (a face: id 1000; colour shares: 1001 on): ids ascending, one score each. An image's
    holds its most probable classes with their probabilities, a face and its colours; a text's the
    entries its words name (imgsearch.embedder.channels.taxonomy)."""

    ids: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ids)


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
class TextEmbedding:
    """The L2-normalised mean of a text's known words' vectors, and which words were (un)known."""

    vector: np.ndarray
    known_words: list[str] = field(default_factory=list)
    unknown_words: list[str] = field(default_factory=list)
    classes: ClassScores = field(default_factory=lambda: ClassScores())
