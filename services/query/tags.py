"""Tags of an image: the words of its own evidence (classes, their WordNet hypernyms, a face,
colours; imgsearch.embedder.tagwords), then its nearest words in the word space."""

from __future__ import annotations

import threading
import weakref

from imgsearch.embedder.results import ClassScores, Embedder
from imgsearch.embedder.tagwords import TagWords
from imgsearch.errors import InvalidArgument, NotFound, ServiceError
from imgsearch.query.stopwords import STOP_WORDS
from imgsearch.vectorstore.base import VectorStore, check_point_id

# Word-space neighbours fetched per tag asked for: most are dropped (stop words, abstract nouns,
# words the evidence already gave), so the tail needs many to choose from.
NEIGHBOURS_PER_TAG = 8
MIN_NEIGHBOURS = 50

_lock = threading.Lock()
_loaded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tag_words(embedder: Embedder) -> TagWords | None:
    """The tag vocabulary of an embedder's word space, built once per embedder (about 0.5 s);
    None where WordNet is missing (tags are then the nearest words that are not stop words)."""
    with _lock:
        if embedder not in _loaded:
            _loaded[embedder] = TagWords.load(embedder, STOP_WORDS)
        return _loaded[embedder]


def image_evidence(embedder: Embedder, store: VectorStore, image: bytes, id_: str):
    """(semantic vector, class vector) of a stored image (by id) or of given image bytes."""
    if id_:
        point = store.get_image(check_point_id(id_))
        if point is None:
            raise NotFound(f"no image with id {id_}")
        sparse = point.classes
        classes = ClassScores(tuple(sparse.indices), tuple(sparse.values)) if sparse else ClassScores()
        return point.semantic, classes
    if not image:
        raise InvalidArgument("give an image (bytes) or the id of a stored image")
    (outcome,) = embedder.embed_images([image])
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome.semantic, outcome.classes


def image_tags(
    embedder: Embedder, store: VectorStore, image: bytes, id_: str, k: int
) -> list[tuple[str, float]]:
    """The image's `k` best tags with scores in [0, 1], best first."""
    semantic, classes = image_evidence(embedder, store, image, id_)
    neighbours = store.search_words(semantic, max(MIN_NEIGHBOURS, NEIGHBOURS_PER_TAG * k))
    words = tag_words(embedder)
    if words is None:
        kept = [(w, max(0.0, min(1.0, s))) for w, s in neighbours if w.lower() not in STOP_WORDS]
        return kept[:k]
    return words.tags(classes, neighbours, k)
