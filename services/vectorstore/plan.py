"""The one query plan: how a `Ranking` becomes the engine's query, written once for both engines.

A plan is a small tree of engine-neutral parts (a ranked vector, the candidates a prefetch hands
on, a score formula, a fusion, a diverse pick). `build` makes it from a Ranking; each adapter keeps
only a translator of these parts into its engine's classes (EdgeStore._request, RemoteStore's
`_query`), so a change to scoring is made here, once. The scoring constants live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Union

import numpy as np

from imgsearch.vectorstore.engine import SparseVector

# The share of the gap to 1 a saturated lexical match closes in a hybrid search's score (see
# Ranking.lexical), 0 to 1: 1 lets a caption word lift an image the CNN hesitates on above the
# semantic ranking's best, as a user who typed the caption's word expects.
LEXICAL_WEIGHT = 1.0
# The BM25 score at which a lexical match adds half its weight to a hybrid score: a word in one
# image of a thousand scores about 6.5 (adds 0.76 of the weight), a label one image in ten carries
# about 2.3 (0.53). Not tuned beyond that.
LEXICAL_HALF = 2.0
# Candidates the engine's MMR picks diverse results from (at least; 4 x offset + k when larger).
MMR_CANDIDATES = 40
# Candidates each ranking of a fused query hands to the fusion (at least; 2 x offset + k when larger):
# at 100,000 images a fused query of two rankings took 32 ms at 100 candidates, 11 ms at 40 and
# about 4x a plain search at 20 on the loaded 2-core machine (benchmarks/query_language_bench.py).
FUSION_CANDIDATES = 20
# How far below `min_score` the engine is asked to go before the exact cut (see search_images).
SCORE_SLACK = 0.01
# Reciprocal rank fusion, as both engines compute it: a point at 1-based rank r of a ranking
# weighted w scores 1 / (RRF_K - 1 + r / w), summed over the rankings (w = 1: Qdrant's plain RRF).
# A heavier weight flattens its ranking's top (its first w ranks score almost alike), so the other
# rankings order those points: a weight says how many of a ranking's top points count as its best.
RRF_K = 60


# -- what a caller asks for ------------------------------------------------------------------------


class Branch(NamedTuple):
    """One more ranking of a fused query: nearest to `vector` by the named vector `using`, away from
    `negatives` (the engine's recommend query), weighted `weight` in the fusion (see RRF_K)."""

    vector: np.ndarray
    negatives: tuple[np.ndarray, ...]
    using: str
    weight: float


class Bonus(NamedTuple):
    """A sparse ranking added to a ranking's scores: `weight` x (point's `using` vector . `vector`)."""

    using: str
    vector: SparseVector
    weight: float


@dataclass(frozen=True)
class Ranking:
    """How a query orders points: nearest to `vector`; with `negatives`, the engine's recommend
    query (best-score strategy: an image nearer a negative than `vector` scores below 0, after all
    others); with `mmr_lambda`, the engine's maximal marginal relevance over the `candidates`
    nearest points (with negatives too: over those scoring above 0 in the recommend query).
    `offset` results are skipped, scores below `min_score` dropped.

    With `fused` branches, each branch and this ranking (weighted `weight`) rank `candidates`
    points by their own vector, and the engine fuses those rankings by weighted reciprocal rank
    fusion (RRF_K); scores are then RRF scores."""

    vector: np.ndarray
    negatives: tuple[np.ndarray, ...] = ()
    offset: int = 0
    min_score: float | None = None
    mmr_lambda: float | None = None
    candidates: int = 100
    weight: float = 1.0
    fused: tuple[Branch, ...] = ()
    # The taxonomic channel: with `bonus`, a point scores (its own score + bonus.weight x its score by
    # the sparse vector bonus.using) / (1 + bonus.weight), by the engine's score formula over the
    # `candidates` best of each; a point missing from one of the two counts 0 there.
    bonus: Bonus | None = None
    # The lexical channel (hybrid search): with `lexical`, a point's score s above becomes
    # s + lexical.weight x sat x (1 - s), sat = bm25 / (bm25 + LEXICAL_HALF) and bm25 its score by the
    # sparse vector lexical.using, over the `candidates` best of each: a match lifts s toward 1 (by
    # the share sat of the gap), never past it, and s stays as it was without one. Fused rankings
    # take it as one more ranking instead.
    lexical: Bonus | None = None


# -- the plan's parts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nearest:
    """Points nearest to `vector` by the vector `using` (None: the collection's only one); with
    `negatives`, the engine's recommend query (best-score strategy)."""

    vector: np.ndarray | SparseVector
    using: str | None
    negatives: tuple[np.ndarray, ...] = ()

    @property
    def sparse(self) -> bool:
        return isinstance(self.vector, SparseVector)


@dataclass(frozen=True)
class Candidates:
    """A prefetch: the `limit` best points of `source`, only those scoring above `threshold`
    (None: any); `filtered`: the request's filter is given here too (a fused query leaves it to the
    request, which reaches every prefetch: given twice it is checked twice, 2x a plain query's time
    instead of about 1.2x at 100,000 images)."""

    source: Nearest
    limit: int
    filtered: bool = True
    threshold: float | None = None


# A score formula over the prefetches' scores: Score(i) is prefetch i's score (0 where it lacks the
# point), floats are constants; Ratio is 0 where its divisor is.
class Score(NamedTuple):
    index: int


class Sum(NamedTuple):
    terms: tuple[Expr, ...]


class Product(NamedTuple):
    factors: tuple[Expr, ...]


class Ratio(NamedTuple):
    left: Expr
    right: Expr


class Negated(NamedTuple):
    term: Expr


Expr = Union[Score, Sum, Product, Ratio, Negated, float]  # noqa: UP007 - a runtime alias


@dataclass(frozen=True)
class Formula:
    """Points scored by `expr` over the prefetches' candidates."""

    expr: Expr


@dataclass(frozen=True)
class Fusion:
    """The prefetches' rankings fused by weighted reciprocal rank fusion (RRF_K), one weight each."""

    weights: tuple[float, ...]


@dataclass(frozen=True)
class Diverse:
    """The engine's maximal marginal relevance: `candidates` points nearest `vector` (by `using`),
    picked for relevance (`lambda_` = 1) against novelty (0)."""

    vector: np.ndarray
    using: str | None
    lambda_: float
    candidates: int


@dataclass(frozen=True)
class Plan:
    """One request: `query` over the `prefetches` (or the whole collection), `limit` points after
    `offset`, none scoring below `threshold`; `params` names the vector whose search parameters
    the request carries."""

    query: Nearest | Formula | Fusion | Diverse
    prefetches: tuple[Candidates, ...]
    limit: int
    offset: int
    threshold: float | None
    params: str | None


def build(ranking: Ranking, using: str | None, limit: int) -> Plan:
    """The plan of `ranking` over the vector `using`, `limit` points."""
    first = Nearest(ranking.vector, using, ranking.negatives)
    lexical, n = ranking.lexical, ranking.candidates
    query: Nearest | Formula | Fusion | Diverse = first
    prefetches: list[Candidates] = []
    if ranking.bonus is not None or (lexical is not None and not ranking.fused):
        # own score (+ weight x sparse score) (+ lexical part), by the score formula
        prefetches.append(Candidates(first, n))
        formula: Expr = Score(0)
        if (bonus := ranking.bonus) is not None:
            prefetches.append(Candidates(Nearest(bonus.vector, bonus.using), n))
            summed = Sum((formula, Product((bonus.weight, Score(1)))))
            formula = Product((1.0 / (1.0 + bonus.weight), summed))
        if lexical is not None:
            bm25 = Score(len(prefetches))
            prefetches.append(Candidates(Nearest(lexical.vector, lexical.using), n))
            saturated = Ratio(bm25, Sum((bm25, LEXICAL_HALF)))
            # score + weight x saturated x (1 - score): lifted toward 1, never past it
            gap = Sum((1.0, Negated(formula)))
            formula = Sum((formula, Product((lexical.weight, saturated, gap))))
        query = Formula(formula)
    elif ranking.fused:
        branches = [Nearest(ranking.vector, using, ranking.negatives)]
        branches += [Nearest(b.vector, b.using, b.negatives) for b in ranking.fused]
        weights = [ranking.weight, *(b.weight for b in ranking.fused)]
        if lexical is not None:  # the lexical ranking is fused as one more
            branches.append(Nearest(lexical.vector, lexical.using))
            weights.append(1.0)
        prefetches = [Candidates(b, n, filtered=False) for b in branches]
        query = Fusion(tuple(weights))
    elif ranking.mmr_lambda is not None:
        if ranking.negatives:  # MMR picks among the candidates nearer the query than any negative
            prefetches.append(Candidates(first, n, threshold=0.0))
        query = Diverse(ranking.vector, using, ranking.mmr_lambda, n)
    return Plan(query, tuple(prefetches), limit, ranking.offset, ranking.min_score, using)
