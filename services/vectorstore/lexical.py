"""The lexical channel: BM25 over an image's free text, as a sparse vector the engine ranks.

An image's text is its label, its caption (metadata key `caption`) and its other metadata values.
Ingest and query share one tokenizer: lower-cased runs of letters and digits ("Golden-Retriever,"
-> "golden", "retriever"). A token's dimension is the 32-bit FNV-1a hash of its UTF-8 bytes, so no
vocabulary file is kept and every store maps a word to the same dimension (two distinct tokens
share one with odds of 1 in 2^32 per pair; a collision only merges the two words).

A document's value per token is BM25's term-frequency saturation, normalised to [0, 1):
tf / (tf + K1 (1 - B + B len / AVG_TOKENS)) (BM25's tf (K1 + 1) / (tf + ...) divided by K1 + 1). The
query gives each of its n distinct tokens 1 / n, so the dot product of a query with a document is the
mean of those saturations over the query's tokens: in [0, 1), a word once in a one-word label 0.71,
in a caption of eight tokens 0.45, and one word matched of three counts a third.

No inverse document frequency: the engine's IDF modifier counts documents per collection, so one
namespace's words changed another's scores (team-a's labels lowered team-b's; issue 20.6). Every
weight here depends on the image's own text alone, and AVG_TOKENS is fixed rather than measured (a
caption plus a label runs to about 8 tokens) so a document's vector never changes when others are
added. The price: a common word of a several-word query counts as much as a rare one. The vector is
named `lexical`; the IDF-weighted `text` vector of collections made before is left unread, and such
a collection searches without the lexical channel until `imgsearch reindex` rebuilds it.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from imgsearch.vectorstore.engine import SparseVector

TEXT = "lexical"  # the sparse vector's name in the `images` collection
LEGACY_TEXT = "text"  # the IDF-weighted one of collections made before (unread; reindex drops it)
CAPTION = "caption"  # the metadata key of an image's caption

K1 = 1.2
B = 0.75
AVG_TOKENS = 8.0
MAX_TOKENS = 512  # tokens of one image's text that count (the payload limits bound it anyway)

_TOKEN = re.compile(r"[^\W_]+")
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def tokens(text: str) -> list[str]:
    """The lower-cased tokens of a text, in order."""
    return _TOKEN.findall(text.lower())


@functools.lru_cache(maxsize=1 << 16)  # words repeat across images: a bulk load hashes each once
def token_id(token: str) -> int:
    """The token's dimension: 32-bit FNV-1a of its UTF-8 bytes."""
    h = _FNV_OFFSET
    for byte in token.encode("utf-8", "surrogatepass"):
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def image_text(payload: dict[str, Any]) -> str:
    """The free text of an image: label, then caption, then the other metadata values."""
    metadata = payload.get("metadata") or {}
    parts = [str(payload.get("label") or ""), str(metadata.get(CAPTION) or "")]
    parts += [str(v) for k, v in sorted(metadata.items()) if k != CAPTION]
    return " ".join(p for p in parts if p)


def document_vector(text: str) -> SparseVector:
    """The normalised BM25 term-frequency weights of a document's tokens, each in (0, 1) (empty
    when it has none)."""
    found = tokens(text)[:MAX_TOKENS]
    if not found:
        return SparseVector()
    norm = K1 * (1.0 - B + B * len(found) / AVG_TOKENS)
    weights: dict[int, float] = {}
    for token, tf in Counter(found).items():
        i = token_id(token)
        weights[i] = weights.get(i, 0.0) + tf / (tf + norm)
    ids = tuple(sorted(weights))
    return SparseVector(ids, tuple(weights[i] for i in ids))


def query_vector(words: Iterable[tuple[str, float]]) -> SparseVector:
    """The query's (word, weight) pairs with a positive weight as a sparse vector: each distinct
    token once, at its word's share of the weights (1 / n for n plain words), so a document's score
    is the mean saturation of the query's tokens in its text, in [0, 1): matching one word of three
    counts a third of matching all three. Empty when none has a token."""
    weights: dict[int, float] = {}
    for word, weight in words:
        if weight <= 0:
            continue
        for token in tokens(word):
            i = token_id(token)
            weights[i] = max(weights.get(i, 0.0), float(weight))
    total = sum(weights.values())
    ids = tuple(sorted(weights))
    return SparseVector(ids, tuple(weights[i] / total for i in ids))
