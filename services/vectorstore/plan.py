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
from imgsearch.vectorstore.schema import VISUAL

# The share of the gap to 1 a saturated lexical match closes in a hybrid search's score (see
# Ranking.lexical), 0 to 1: 1 lets a caption word lift an image the CNN hesitates on above the
# semantic ranking's best, as a user who typed the caption's word expects.
LEXICAL_WEIGHT = 1.0
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


# -- what a score means ----------------------------------------------------------------------------
#
# Every image search returns a relevance in [0, 1], whatever its mode or channels: 0 no relation, 1
# the best match there can be, and 0.5 the match threshold (MATCH_THRESHOLD): the score from which
# on a result counts as a match (`match_count`), set on the quality benchmark's judged queries where
# counting the results above it as matches agrees best with the judgements (highest F1;
# benchmarks/relevance_scale.py). Each kind of raw engine score reaches that scale by one monotone
# map (a Scale), so an order never changes and `min_score` cuts on relevance (the engine is asked
# for the raw floor it maps from).
MATCH_THRESHOLD = 0.5


@dataclass(frozen=True)
class Scale:
    """A monotone map from raw engine scores onto relevance in [0, 1]: linear from (`low`, 0) to
    (`threshold`, 0.5) and on to (`high`, 1), clipped outside."""

    threshold: float
    low: float = -1.0
    high: float = 1.0

    def relevance(self, raw: float) -> float:
        if raw <= self.threshold:
            return max(0.0, 0.5 * (raw - self.low) / (self.threshold - self.low))
        return min(1.0, 0.5 + 0.5 * (raw - self.threshold) / (self.high - self.threshold))

    def raw(self, relevance: float) -> float | None:
        """The raw score that maps to `relevance` (the engine's floor for a min_score); None for a
        relevance of 0 or below, which every score reaches."""
        if relevance <= 0:
            return None
        if relevance <= 0.5:
            return self.low + 2 * relevance * (self.threshold - self.low)
        return self.threshold + (2 * relevance - 1) * (self.high - self.threshold)


# Text searches (semantic similarity, with the taxonomic bonus and the lexical lift: raw in [-1, 1]):
# the threshold raw 0.57 has the best F1 on the quality benchmark (50 queries x 44 photos: precision
# 0.69, recall 0.61, 2.04 matches a query for 2.28 judged relevant; without a cutoff every query
# returned all 44; 14 queries keep no match, docs/scores.md). A result there is not yet as likely
# relevant as not: a logistic regression of the judgements puts that at 0.64, where 19 queries
# would keep no match.
TEXT_SCALE = Scale(threshold=0.57)
# Plain visual searches (visual cosine: diverse look-alikes, by the CNN features alone): the same on
# the benchmark's photo pairs judged relevant to one same word query (the two dog photos, the five
# fish, ...): threshold cosine 0.33 (F1 0.29, precision 0.38, recall 0.23: the CNN features'
# look-alikes are weak, issue 21.2). A change of the visual features (reindex) needs it measured again.
VISUAL_SCALE = Scale(threshold=0.33)
# Look-alikes (imgsearch.query.lookalike: the fused cosine of the visual and the kind vectors, which
# SimilarImages returns without diverse results): threshold 0.42, the best F1 on the judged
# look-alike groups (benchmarks/quality/lookalikes.json: precision 0.64, recall 0.95, 2.7 matches a
# photo for 1.8 judged alike). The word-query pairs above count two photos alike when one word wants
# both ("animal": a puppy and a fish), kinship rather than likeness: their best F1 (0.31) gave every
# photo 8.6 matches, a snowflake and a betta fish among a puppy's. A change of the fusion or of the
# features needs it measured again.
LOOKALIKE_SCALE = Scale(threshold=0.42)
# Lexical search: the mean BM25 saturation of the query's words is already in [0, 1) (lexical.py):
# a word once in a one-word label scores 0.71, in a label and caption of six tokens 0.51, of eight
# 0.45; one of two words half that.
LEXICAL_SCALE = Scale(threshold=0.5, low=0.0)
# Words (similar words, the tail of tags): the cosine similarity, a negative one as 0.
WORD_SCALE = Scale(threshold=0.5, low=0.0)


def fused_scale(weights: tuple[float, ...]) -> Scale:
    """Fused rankings: the RRF score over the best one there can be (first in every ranking), so 1
    is first everywhere and 0.5 about first in rankings holding half the weight, or some twenty
    places down in all of them."""
    top = sum(1.0 / (RRF_K - 1 + 1.0 / w) for w in weights)
    return Scale(threshold=top / 2, low=0.0, high=top)


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
    # s + lexical.weight x bm25 x (1 - s), bm25 its score by the sparse vector lexical.using (the
    # mean BM25 saturation of the query's words, in [0, 1): vectorstore/lexical.py), over the
    # `candidates` best of each: a match lifts s toward 1 (by the share bm25 of the gap), never past
    # it, and s stays as it was without one. Fused rankings take it as one more ranking instead.
    lexical: Bonus | None = None
    # The named vectors each hit carries back (the look-alike search reads its candidates' semantic
    # vectors and classes with them, in the same request).
    vectors: tuple[str, ...] = ()


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
# point), floats are constants.
class Score(NamedTuple):
    prefetch: int


class Sum(NamedTuple):
    terms: tuple[Expr, ...]


class Product(NamedTuple):
    factors: tuple[Expr, ...]


class Negated(NamedTuple):
    term: Expr


Expr = Union[Score, Sum, Product, Negated, float]  # noqa: UP007 - a runtime alias


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
    the request carries; each point comes back with its `vectors` (named vectors; none: without)."""

    query: Nearest | Formula | Fusion | Diverse
    prefetches: tuple[Candidates, ...]
    limit: int
    offset: int
    threshold: float | None
    params: str | None
    vectors: tuple[str, ...] = ()


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
            # score + weight x bm25 x (1 - score): lifted toward 1, never past it
            gap = Sum((1.0, Negated(formula)))
            formula = Sum((formula, Product((lexical.weight, bm25, gap))))
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
    return Plan(query, tuple(prefetches), limit, ranking.offset, ranking.min_score, using, ranking.vectors)


def scale_of(ranking: Ranking, using: str | None) -> Scale:
    """How the raw scores of `ranking` over the vector `using` map onto relevance."""
    if ranking.fused:
        extra = (1.0,) if ranking.lexical is not None else ()
        return fused_scale((ranking.weight, *(b.weight for b in ranking.fused), *extra))
    if isinstance(ranking.vector, SparseVector):
        return LEXICAL_SCALE
    return VISUAL_SCALE if using == VISUAL else TEXT_SCALE
