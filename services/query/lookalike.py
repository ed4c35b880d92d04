"""Look-alikes: images ranked by the weighted mean of their visual similarity and their similarity of kind.

The CNN's pooled features alone (the `visual` vector) crowd every photo between cosines 0.1 and 0.5:
a puppy's nearest look-alike was a rotary phone (0.27) before the other dog photo (0.26), a German
shepherd's two people in a bar. What a person calls a look-alike is first the same kind of thing,
which the semantic vector says (the ConSE mixture of the image's class words: retriever and pug
both lie near "dog"). ImageNet has no class for a person, though, so a portrait's semantic vector
is a mixture of its clothes and props (suit, uniform, crash helmet), and two portraits are no more
alike by it than a portrait and a motorcycle. The embedder's face channel (the `classes` vector's
face entry, imgsearch.embedder.channels.faces) says "a person" where ImageNet cannot, so the kind
vector is the unit semantic vector with the face entry as one more dimension: two photos with faces
score (semantic cosine + 1) / 2. The face counts when the query image shows one (a query asks for
people); a query without a face is compared by its semantic vector alone, whose classes describe it,
and the candidates' classes are then not read (returning them costs about 0.07 ms for 20).

The two cosines are fused as (visual + w x kind) / (1 + w), w = SEMANTIC_WEIGHT: the ratio of the
two cosines' spreads over pairs of photos (0.079 / 0.193 on the sample photos; 0.40 with the face
dimension), so each channel moves the score as much as the other: a choice by the scales of the two
spaces, not by which weight scored best (benchmarks/README.md has the sweep).

The engine ranks candidates by the visual vector (at least the visual top 2 x (offset + k), in
pools of 20 x a power of 2: `candidate_depth`); the same search returns their semantic vectors (and
with a face, their classes), so the look-alikes are the visual candidates reordered by the fused
cosine without a second call (benchmarks/lookalike_latency.py measures the cost; reading the
vectors in a second call took 0.15 to 0.2 ms for 20, whole images 0.9 ms, a second, semantic
search 2.3 ms). The store answers the visual search on the visual relevance scale
(imgsearch.vectorstore.plan.VISUAL_SCALE); its cosines are read back from it, fused, and the fused
cosine (a negative one as 0) is put on the look-alike scale (plan.LOOKALIKE_SCALE, whose match
threshold was measured on the fused cosine), so the scores mean what every other search's do.
"""

from __future__ import annotations

import numpy as np

from imgsearch.embedder.results import FACE_ENTRY
from imgsearch.vectorstore.base import VectorStore
from imgsearch.vectorstore.plan import LOOKALIKE_SCALE, VISUAL_SCALE
from imgsearch.vectorstore.schema import CLASSES, SEMANTIC
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


def face_of(classes) -> float:
    """An image's face entry (1.0: a face was found; 0: none, or classes not known) from its stored
    classes (a SparseVector) or an embedder's ClassScores."""
    if not classes:
        return 0.0
    ids, values = (
        (classes.indices, classes.values) if hasattr(classes, "indices") else (classes.ids, classes.scores)
    )
    return float(values[ids.index(FACE_ENTRY)]) if FACE_ENTRY in ids else 0.0


def kind_cosines(semantic: np.ndarray, face: float, others: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The cosines of one image's kind vector with others': its unit semantic vector with its face
    entry as one more dimension (see the module's docstring). `others`: rows of semantic vectors,
    `faces` their face entries (all 0 where the query has no face: its semantic cosines alone)."""
    s = _unit(semantic)
    rows = np.asarray(others, dtype=np.float32)
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    faces = np.asarray(faces, dtype=np.float32) if face else np.zeros(len(rows), dtype=np.float32)
    return (rows @ s + faces * face) / np.sqrt((1.0 + faces * faces) * (1.0 + face * face))


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
    face: float = 0.0,
) -> list[Hit]:
    """The `k` best look-alikes after `offset`, scoring at least `min_score`; `face`: the query
    image's face entry (face_of)."""
    wanted = offset + k
    depth = candidate_depth(wanted, max_k)
    vectors = (SEMANTIC, CLASSES) if face else (SEMANTIC,)
    candidates = store.search_images(visual, "visual", depth, flt, with_vectors=vectors)  # schema.VISUAL
    candidates = [h for h in candidates if SEMANTIC in h.vectors]
    if not candidates:
        return []
    # relevance -> cosine (None: relevance 0, the scale's lowest cosine)
    visual_cosines = np.array(
        [VISUAL_SCALE.raw(h.score) or VISUAL_SCALE.low for h in candidates], dtype=np.float32
    )
    meaning = np.array([h.vectors[SEMANTIC] for h in candidates], dtype=np.float32)
    faces = np.array([face_of(h.vectors.get(CLASSES)) for h in candidates], dtype=np.float32)
    kinds = kind_cosines(semantic, face, meaning, faces)
    fused = np.clip((visual_cosines + weight * kinds) / (1.0 + weight), 0.0, 1.0)
    ranked: list[Hit] = []
    for i in np.argsort(-fused, kind="stable"):
        score = LOOKALIKE_SCALE.relevance(float(fused[i]))
        if len(ranked) == wanted or (min_score is not None and score < min_score):
            break  # enough, or the rest score less
        h = candidates[i]
        ranked.append(Hit(h.id, score, h.payload))
    return ranked[offset:wanted]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / (float(np.linalg.norm(v)) or 1.0)
