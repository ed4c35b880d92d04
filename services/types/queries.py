"""The parts of requests that the client builds and the services read, as plain data (mirroring
query.proto's QueryPart and indexer.proto's PointVectors)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class QueryPart:
    """One weighted part of a search beside its text: words, image bytes or a stored image's id
    (exactly one); a negative weight pushes results away from it."""

    text: str = ""
    image: bytes = b""
    id: str = ""
    weight: float = 1.0


@dataclass(frozen=True)
class PointVectors:
    """Precomputed vectors for `upsert_vectors`, for callers that embed elsewhere (the Indexer's
    UpsertVectors takes the same fields)."""

    id: str
    visual: np.ndarray | list[float]
    semantic: np.ndarray | list[float]
    uri: str = ""
    label: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
