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
QUANTIZATIONS = ("int8", "none")


class Row(NamedTuple):
    """One point to write: an image (UUID id, named vectors) or a word (rank id, one vector)."""

    id: str | int
    vector: np.ndarray | dict[str, np.ndarray]
    payload: dict[str, Any]


@dataclass(frozen=True)
class Match:
    """An engine-neutral filter: every (payload key, value) must match, and no listed id may.

    An empty Match selects every point (a delete of everything); "no filter" is None.
    """

    must: tuple[tuple[str, str], ...] = ()
    exclude_ids: tuple[str, ...] = ()


def engine_filter(match: Match | None, ns: Any, has_id: Callable[[set[str]], Any]) -> Any:
    """`match` as the Filter of the engine whose model classes live in `ns`.

    has_id: builds the engine's HasIdCondition (Edge takes the ids positionally, qdrant-client as
    `has_id=`).
    """
    if match is None:
        return None
    must = [ns.FieldCondition(key=key, match=ns.MatchValue(value=value)) for key, value in match.must]
    must_not = [has_id(set(match.exclude_ids))] if match.exclude_ids else None
    return ns.Filter(must=must or None, must_not=must_not)


def search_params(ns: Any, hnsw_ef: int | None, quantize: bool) -> Any:
    """The SearchParams every search sends, for the engine whose model classes live in `ns`.

    With quantization the quantized vectors are searched and the candidates rescored; without it
    the original vectors are searched, even of a collection that was quantized before.
    """
    if quantize:
        quantization = ns.QuantizationSearchParams(rescore=True, oversampling=QUANTIZATION_OVERSAMPLING)
    else:
        quantization = ns.QuantizationSearchParams(ignore=True)
    return ns.SearchParams(hnsw_ef=hnsw_ef, quantization=quantization)
