"""The collections the store keeps: their names, vectors, sparse vectors and payload indexes."""

from __future__ import annotations

from typing import Literal

from imgsearch.vectorstore import payloads
from imgsearch.vectorstore.lexical import TEXT

IMAGES = "images"
WORDS = "words"
VISUAL = "visual"
SEMANTIC = "semantic"

VectorName = Literal["visual", "semantic"]

# The sparse vector of the `images` collection: an image's most probable ImageNet classes (the
# taxonomic channel, imgsearch.embedder.channels.taxonomy). Collections made before it lack it until
# `imgsearch reindex` rebuilds them; until then text searches use the semantic channel alone.
CLASSES = "classes"
# And `text` (imgsearch.vectorstore.lexical): BM25 term weights of the image's label, caption and
# metadata values, which the engine weights by inverse document frequency (the lexical channel of
# hybrid search). Collections made before it search semantically only until a reindex rebuilds them.
SPARSE_VECTORS: dict[str, tuple[str, ...]] = {IMAGES: (CLASSES, TEXT)}
# The sparse vectors created with the engine's IDF modifier.
IDF_VECTORS = frozenset({TEXT})
# Payload keys of the `images` collection (besides user metadata under "metadata").
IMAGE_PAYLOAD_KEYS = ("uri", "label", "sha256", "width", "height", "ingested_at", "metadata")

# The payload indexes each collection is created with: what filters and word lookups match on.
# "tenant": a keyword index marked as the tenant (Qdrant's is_tenant), which the engine uses to keep
# each namespace's points together.
PAYLOAD_INDEXES: dict[str, dict[str, Literal["keyword", "integer", "tenant"]]] = {
    IMAGES: {payloads.LABEL: "keyword", payloads.META_KV: "keyword", payloads.NAMESPACE: "tenant"},
    WORDS: {payloads.WORD: "keyword", payloads.RANK: "integer"},
}
