"""Look-alikes: images ranked by the weighted mean of their visual and semantic similarity.

The CNN's pooled features alone (the `visual` vector) crowd every photo between cosines 0.1 and 0.5:
a puppy's nearest look-alike was a rotary phone (0.27) before the other dog photo (0.26), a German
shepherd's two people in a bar. What a person calls a look-alike is first the same kind of thing,
which the semantic vector says (the ConSE mixture of the image's class words: retriever and pug
both lie near "dog"). The two cosines are fused as (visual + w x semantic) / (1 + w), w =
SEMANTIC_WEIGHT: the ratio of the two cosines' spreads over pairs of photos (0.079 / 0.193 on the
sample photos), so each channel moves the score as much as the other: a choice by the scales of
the two spaces, not by which weight scored best (benchmarks/README.md has the sweep).

The engine ranks candidates by the visual vector and, in a second search, by the semantic one;
each candidate's fused score takes its semantic cosine from the second search, or, when it is not
among that search's candidates, the lowest cosine found there (a bound: it can only be lower).
Scores are in [0, 1] (visual cosines of ReLU features are never negative; a negative fused score
is 0).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from imgsearch.vectorstore.base import VectorStore
from imgsearch.vectorstore.schema import SEMANTIC, VISUAL
from imgsearch.vectorstore.types import Hit, PayloadFilter

SEMANTIC_WEIGHT = 0.4
# Candidates taken from the visual ranking per result asked for (offset + k), at least MIN_CANDIDATES;
# the semantic search looks SEMANTIC_FACTOR times as deep, so most candidates find their cosine there.
CANDIDATES_PER_RESULT = 2
MIN_CANDIDATES = 20
SEMANTIC_FACTOR = 2


def fused_score(visual: float, semantic: float, weight: float = SEMANTIC_WEIGHT) -> float:
    """The look-alike score of two cosines, clipped to [0, 1]."""
    return float(min(1.0, max(0.0, (visual + weight * semantic) / (1.0 + weight))))


def similar(
    store: VectorStore,
    visual: np.ndarray,
    semantic: np.ndarray,
    k: int,
    offset: int,
    flt: PayloadFilter | None,
    min_score: float | None,
    max_k: int,
    weight: float = SEMANTIC_WEIGHT,
) -> list[Hit]:
    """The `k` best look-alikes after `offset`, scoring at least `min_score`."""
    wanted = offset + k
    depth = min(max_k, max(MIN_CANDIDATES, CANDIDATES_PER_RESULT * wanted))
    by_look = store.search_images(visual, VISUAL, depth, flt)
    if not by_look:
        return []
    by_meaning = store.search_images(semantic, SEMANTIC, min(max_k, SEMANTIC_FACTOR * depth), flt)
    meaning = {h.id: h.score for h in by_meaning}
    floor = min(meaning.values(), default=0.0)
    scored = [replace(h, score=fused_score(h.score, meaning.get(h.id, floor), weight)) for h in by_look]
    scored.sort(key=lambda h: -h.score)
    if min_score is not None:
        scored = [h for h in scored if h.score >= min_score]
    return scored[offset:wanted]
