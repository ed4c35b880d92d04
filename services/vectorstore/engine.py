"""What the store hands its engines, and the request parts built the same way for both of them.

Qdrant Edge (`qdrant_edge`) and qdrant-client (`qdrant_client.models`) name their filter and
search-parameter classes alike and take the same keywords, so each builder here is written once
and given the engine's namespace; the one class they spell differently comes in as a function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

# Scalar (int8) quantization of every stored vector, kept in RAM: a search walks the graph over
# vectors a quarter of the size, then rescores OVERSAMPLING x k candidates with the original vectors,
# so the scores returned are exact. On 100,000 images: direct search 0.22 -> 0.15 ms, recall@10
# 0.998 -> 0.991 (without rescoring 0.95), and less of the search's slowdown between gRPC calls
# (benchmarks/README.md). IMGSEARCH_QUANTIZATION=none stores plain float32 only.
QUANTIZATION_QUANTILE = 0.99
QUANTIZATION_OVERSAMPLING = 2.0
QUANTIZATIONS = ("int8", "binary", "product", "none")  # storage.py builds each


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector: dimension ids ascending, one value each (an image's ImageNet classes)."""

    indices: tuple[int, ...] = ()
    values: tuple[float, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.indices)


class Page(NamedTuple):
    """One scroll request: up to `limit` records from `offset` (None: the first) in id order,
    matching `match`, with or without payloads and vectors."""

    limit: int
    offset: Any
    match: Match | None
    with_payload: bool = True
    with_vector: bool = True


class Row(NamedTuple):
    """One point to write: an image (UUID id, named vectors, and sparse ones) or a word (rank id,
    one vector)."""

    id: str | int
    vector: np.ndarray | dict[str, np.ndarray | SparseVector]
    payload: dict[str, Any]


@dataclass(frozen=True)
class Match:
    """An engine-neutral filter: every (payload key, value) of `must` matches, each `any_of` key has
    one of its values, no `must_not` pair matches, the `present` paths have a value and the
    `absent` ones none, and no listed id may match.

    An empty Match selects every point (a delete of everything); "no filter" is None.
    """

    must: tuple[tuple[str, str], ...] = ()
    exclude_ids: tuple[str, ...] = ()
    any_of: tuple[tuple[str, tuple[str, ...]], ...] = ()
    must_not: tuple[tuple[str, str], ...] = ()
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


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
    # sparse vector lexical.using (IDF weighted by the engine), over the `candidates` best of each:
    # a match lifts s toward 1 (by the share sat of the gap), never past it, and s stays as it was
    # without one. Fused rankings take it as one more ranking instead.
    lexical: Bonus | None = None


class Branch(NamedTuple):
    """One more ranking of a fused query: nearest to `vector` by the named vector `using`, away from
    `negatives` (the engine's recommend query), weighted `weight` in the fusion (see RRF_K)."""

    vector: np.ndarray
    negatives: tuple[np.ndarray, ...]
    using: str
    weight: float


# Reciprocal rank fusion, as both engines compute it: a point at 1-based rank r of a ranking
# weighted w scores 1 / (RRF_K - 1 + r / w), summed over the rankings (w = 1: Qdrant's plain RRF).
# A heavier weight flattens its ranking's top (its first w ranks score almost alike), so the other
# rankings order those points: a weight says how many of a ranking's top points count as its best.
class Bonus(NamedTuple):
    """A sparse ranking added to a ranking's scores: `weight` x (point's `using` vector . `vector`)."""

    using: str
    vector: SparseVector
    weight: float


RRF_K = 60

# The BM25 score at which a lexical match adds half its weight to a hybrid score: a word in one
# image of a thousand scores about 6.5 (adds 0.76 of the weight), a label one image in ten carries
# about 2.3 (0.53). Not tuned beyond that.
LEXICAL_HALF = 2.0


def engine_filter(
    match: Match | None, ns: Any, has_id: Callable[[set[str]], Any], is_empty: Callable[[str], Any]
) -> Any:
    """`match` as the Filter of the engine whose model classes live in `ns`.

    has_id, is_empty: build the engine's HasIdCondition and IsEmptyCondition (Edge takes their
    argument positionally, qdrant-client as `has_id=` and `is_empty=PayloadField(key=...)`).
    """
    if match is None:
        return None

    def equals(key: str, value: str) -> Any:
        return ns.FieldCondition(key=key, match=ns.MatchValue(value=value))

    must = [equals(key, value) for key, value in match.must]
    must += [ns.FieldCondition(key=key, match=ns.MatchAny(any=list(values))) for key, values in match.any_of]
    must += [is_empty(path) for path in match.absent]
    must_not = [has_id(set(match.exclude_ids))] if match.exclude_ids else []
    must_not += [equals(key, value) for key, value in match.must_not]
    must_not += [is_empty(path) for path in match.present]
    return ns.Filter(must=must or None, must_not=must_not or None)


def search_params(
    ns: Any, hnsw_ef: int | None, quantize: bool, oversampling: float = QUANTIZATION_OVERSAMPLING
) -> Any:
    """The SearchParams every search sends, for the engine whose model classes live in `ns`.

    With quantization the quantized vectors are searched and `oversampling` x k candidates
    rescored; without it the original vectors are searched, even of a collection that was
    quantized before.
    """
    if quantize:
        quantization = ns.QuantizationSearchParams(rescore=True, oversampling=oversampling)
    else:
        quantization = ns.QuantizationSearchParams(ignore=True)
    return ns.SearchParams(hnsw_ef=hnsw_ef, quantization=quantization)
