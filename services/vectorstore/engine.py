"""What the store hands its engines, and the request parts built the same way for both of them.

Qdrant Edge (`qdrant_edge`) and qdrant-client (`qdrant_client.models`) name their filter and
search-parameter classes alike and take the same keywords, so each builder here is written once
and given the engine's namespace; the one class they spell differently comes in as a function.
How a search ranks and scores (the query plan) is built once in imgsearch.vectorstore.plan.
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
    matching `match`, with or without payloads (or with these payload paths only) and vectors."""

    limit: int
    offset: Any
    match: Match | None
    with_payload: bool | tuple[str, ...] = True
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
