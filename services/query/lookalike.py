"""Look-alikes: images ranked by the weighted mean of their visual and semantic similarity.

The CNN's pooled features alone (the `visual` vector) crowd every photo between cosines 0.1 and 0.5:
a puppy's nearest look-alike was a rotary phone (0.27) before the other dog photo (0.26), a German
shepherd's two people in a bar. What a person calls a look-alike is first the same kind of thing,
which the semantic vector says (the ConSE mixture of the image's class words: retriever and pug
both lie near "dog"). The two cosines are fused as (visual + w x semantic) / (1 + w), w =
SEMANTIC_WEIGHT: the ratio of the two cosines' spreads over pairs of photos (0.079 / 0.193 on the
sample photos), so each channel moves the score as much as the other: a choice by the scales of
the two spaces, not by which weight scored best (benchmarks/README.md has the sweep).

The engine ranks candidates by the visual vector (at least the visual top 2 x (offset + k), in
pools of 20 x a power of 2: `candidate_depth`); their stored semantic vectors are read back (the
store's `semantic_vectors`: 50 floats each) and each candidate scores the fused cosine, so the
look-alikes are the visual candidates reordered by meaning (benchmarks/lookalike_latency.py
measures the cost: reading whole images back, 1280 floats each, took 0.9 ms for 20; a second,
semantic search 8 ms, its beam being wide for text recall). The store answers the visual search on
the relevance scale (imgsearch.vectorstore.plan.VISUAL_SCALE); its cosines are read back from it,
fused, and the fused cosine (a negative one as 0) is put on that same scale, so the order is the
fused cosines' and the scores mean what every other search's do.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from imgsearch.vectorstore.base import VectorStore
from imgsearch.vectorstore.plan import VISUAL_SCALE
from imgsearch.vectorstore.types import Hit, PayloadFilter

SEMANTIC_WEIGHT = 0.4
# Candidates taken from the visual ranking per result asked for (offset + k), at least MIN_CANDIDATES.
CANDIDATES_PER_RESULT = 2
MIN_CANDIDATES = 20


def candidate_depth(wanted: int, max_k: int) -> int:
    """How many visual candidates a page ending at `wanted` reorders: MIN_CANDIDATES doubled until
    it holds CANDIDATES_PER_RESULT x `wanted`, so pages of one size share their pool (pages of 10:
    the first from 20 candidates, the second from 40, the third and fourth from 80) and a page is a
    slice of the ranking a bigger page from the same pool shows."""
    depth = MIN_CANDIDATES
    while depth < CANDIDATES_PER_RESULT * wanted and depth < max_k:
        depth *= 2
    return min(max_k, depth)


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
    depth = candidate_depth(wanted, max_k)
    candidates = store.search_images(visual, "visual", depth, flt)  # schema.VISUAL
    if not candidates:
        return []
    meaning = store.semantic_vectors([h.id for h in candidates])
    s = _unit(semantic)
    scored = []
    for hit in candidates:
        found = meaning.get(hit.id)
        if found is None:
            continue  # deleted meanwhile
        visual_cosine = VISUAL_SCALE.raw(hit.score) or 0.0  # relevance -> cosine; None: relevance 0
        fused = fused_score(visual_cosine, float(_unit(found) @ s), weight)
        scored.append(replace(hit, score=VISUAL_SCALE.relevance(fused)))
    scored.sort(key=lambda h: -h.score)
    if min_score is not None:
        scored = [h for h in scored if h.score >= min_score]
    return scored[offset:wanted]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / (float(np.linalg.norm(v)) or 1.0)
