"""Input checks of the store layer: each rule is written once here and raises InvalidArgument.

They run before a request reaches an engine, so both adapters refuse the same input with the same
message, and the engine's own (untyped) complaints never reach callers.
"""

from __future__ import annotations

import math
import re
import uuid

import numpy as np

from imgsearch.errors import FailedPrecondition, InvalidArgument
from imgsearch.vectorstore.engine import SparseVector

# A UUID already in canonical form (what clients and this service send): kept as it is, as
# parsing every id of a bulk load (three times per point) cost 10% of an upsert.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_point_id(id: str) -> str:
    """Qdrant ids are UUIDs or integers; images use UUID strings, normalised to canonical form."""
    if isinstance(id, str) and _CANONICAL_UUID.fullmatch(id):
        return id
    try:
        return str(uuid.UUID(str(id)))
    except ValueError:
        shown = repr(id) if len(str(id)) <= 80 else f"{len(str(id))} characters"  # never echo a long id
        raise InvalidArgument(f"image id must be a UUID, got {shown}") from None


def check_k(k: int, most: int | None = None) -> int:
    """The one check of a result count: at least 1, and at most `most` where a service sets a limit."""
    if k < 1 or (most is not None and k > most):
        bound = "at least 1" if most is None else f"between 1 and {most}"
        raise InvalidArgument(f"k must be {bound}, got {k}")
    return k


def check_page(k: int, offset: int, min_score: float | None = None, most: int | None = None) -> int:
    """The one check of a page of results: k as check_k, 0 <= offset, offset + k at most `most`
    where a service sets a limit, and a finite score floor; returns k."""
    check_k(k, most)
    if offset < 0:
        raise InvalidArgument(f"offset must not be negative, got {offset}")
    if most is not None and offset + k > most:
        raise InvalidArgument(f"offset + k must be at most {most}, got {offset} + {k}")
    if min_score is not None and not math.isfinite(min_score):
        raise InvalidArgument(f"min_score must be a finite number, got {min_score}")
    return k


def as_vector(vector: np.ndarray | list[float], dim: int | None = None, what: str = "vector") -> np.ndarray:
    """A 1-d float32 vector of the expected size (InvalidArgument otherwise)."""
    v = np.asarray(vector, dtype=np.float32)
    if v.ndim != 1:
        raise InvalidArgument(f"{what} must be one-dimensional, got shape {v.shape}")
    if dim is not None and v.shape[0] != dim:
        raise InvalidArgument(f"{what} has {v.shape[0]} dimensions, the collection has {dim}")
    if not np.all(np.isfinite(v)):
        raise InvalidArgument(f"{what} contains NaN or infinity")
    return v


def word_matrix(words: list[str], vectors: np.ndarray, dim: int) -> np.ndarray:
    """Word vectors as a (len(words), dim) float32 matrix (InvalidArgument otherwise)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape != (len(words), dim):
        raise InvalidArgument(f"expected {len(words)} word vectors of size {dim}, got shape {matrix.shape}")
    return matrix


def missing_collection(name: str) -> FailedPrecondition:
    """The error of a call on a collection that was not created."""
    return FailedPrecondition(f"collection {name!r} does not exist yet (ensure_collections first)")


def check_sparse(vector: SparseVector) -> SparseVector:
    """A sparse vector with unique non-negative ids and finite values, ids ascending."""
    if len(vector.indices) != len(vector.values):
        raise InvalidArgument(f"sparse vector of {len(vector.indices)} ids but {len(vector.values)} values")
    pairs = sorted(zip((int(i) for i in vector.indices), (float(v) for v in vector.values), strict=True))
    if any(i < 0 for i, _ in pairs) or len({i for i, _ in pairs}) != len(pairs):
        raise InvalidArgument("sparse vector ids must be unique and not negative")
    if not all(math.isfinite(v) for _, v in pairs):
        raise InvalidArgument("sparse vector values must be finite")
    return SparseVector(tuple(i for i, _ in pairs), tuple(v for _, v in pairs))
