"""The collections the store keeps: their names, vectors, sparse vectors and payload indexes."""

from __future__ import annotations

from typing import Literal

from imgsearch.vectorstore import payloads
from imgsearch.vectorstore.lexical import LEGACY_TEXT, TEXT

IMAGES = "images"
WORDS = "words"
VISUAL = "visual"
SEMANTIC = "semantic"

VectorName = Literal["visual", "semantic"]

# The sparse vector of the `images` collection: an image's most probable ImageNet classes (the
# taxonomic channel, imgsearch.embedder.channels.taxonomy). Collections made before it lack it until
# `imgsearch reindex` rebuilds them; until then text searches use the semantic channel alone.
CLASSES = "classes"
# And `lexical` (imgsearch.vectorstore.lexical): normalised BM25 term weights of the image's label,
# caption and metadata values, with no collection statistics (the lexical channel of hybrid search).
# Collections made before it search semantically only until a reindex rebuilds them.
SPARSE_VECTORS: dict[str, tuple[str, ...]] = {IMAGES: (CLASSES, TEXT)}
# The sparse vectors opened with the engine's IDF modifier: the `text` vector of collections made
# before `lexical` (unread, kept as it was made until a reindex rebuilds the collection).
IDF_VECTORS = frozenset({LEGACY_TEXT})

# The payload indexes each collection is created with: what filters and word lookups match on.
# "tenant": a keyword index marked as the tenant (Qdrant's is_tenant), which the engine uses to keep
# each namespace's points together.
PAYLOAD_INDEXES: dict[str, dict[str, Literal["keyword", "integer", "tenant"]]] = {
    IMAGES: {payloads.LABEL: "keyword", payloads.META_KV: "keyword", payloads.NAMESPACE: "tenant"},
    WORDS: {payloads.WORD: "keyword", payloads.RANK: "integer"},
}
