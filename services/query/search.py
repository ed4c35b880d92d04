"""Query logic as plain functions: validate, embed the query, search the store."""

from __future__ import annotations

from dataclasses import dataclass

from imgsearch.config.settings import Limits
from imgsearch.embedder.results import Embedder
from imgsearch.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from imgsearch.vectorstore.base import SEMANTIC, VISUAL, Hit, PayloadFilter, VectorStore, check_point_id
from imgsearch.vectorstore.checks import check_k


@dataclass(frozen=True)
class ImageSource:
    """Either encoded image bytes or the id of a stored image."""

    image: bytes = b""
    id: str = ""


def search_text(
    embedder: Embedder, store: VectorStore, text: str, k: int, flt: PayloadFilter | None, limits: Limits
) -> tuple[list[Hit], list[str]]:
    """Images nearest to the mean of the text's known words; (hits, unknown words)."""
    check_k(k, limits.max_k)
    embedded = embedder.embed_text(text)
    return store.search_images(embedded.vector, SEMANTIC, k, flt), list(embedded.unknown_words)


def _image_vectors(embedder: Embedder, store: VectorStore, source: ImageSource):
    """(visual, semantic) of stored or given image."""
    if source.id:
        point = store.get_image(check_point_id(source.id))
        if point is None:
            raise NotFound(f"no image with id {source.id}")
        return point.visual, point.semantic
    if not source.image:
        raise InvalidArgument("give an image (bytes) or the id of a stored image")
    (outcome,) = embedder.embed_images([source.image])
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome.visual, outcome.semantic


def similar_images(
    embedder: Embedder,
    store: VectorStore,
    source: ImageSource,
    k: int,
    flt: PayloadFilter | None,
    limits: Limits,
) -> list[Hit]:
    """Images nearest by CNN features to the given or stored image (which comes first itself)."""
    check_k(k, limits.max_k)
    visual, _ = _image_vectors(embedder, store, source)
    return store.search_images(visual, VISUAL, k, flt)


def _need_words(store: VectorStore) -> None:
    if store.count_words() == 0:
        raise FailedPrecondition("the words collection is empty: load it with `imgsearch vocab`")


def tag_image(
    embedder: Embedder, store: VectorStore, source: ImageSource, k: int, limits: Limits
) -> list[tuple[str, float]]:
    """The words nearest to the image's semantic vector."""
    check_k(k, limits.max_k)
    _need_words(store)
    _, semantic = _image_vectors(embedder, store, source)
    return store.search_words(semantic, k)


def similar_words(
    embedder: Embedder, store: VectorStore, word: str, k: int, limits: Limits
) -> list[tuple[str, float]]:
    """Words nearest to a word (or to the mean of several)."""
    check_k(k, limits.max_k)
    _need_words(store)
    return store.search_words(embedder.embed_text(word).vector, k)
