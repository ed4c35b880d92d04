"""Query logic as plain functions: validate, embed the query, search the store."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from imgsearch.config.settings import Limits
from imgsearch.embedder.results import Embedder, entry_kind
from imgsearch.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
)
from imgsearch.query import syntax
from imgsearch.types.queries import QueryPart
from imgsearch.vectorstore import checks, lexical
from imgsearch.vectorstore.base import SparseVector, VectorStore, check_point_id
from imgsearch.vectorstore.checks import check_k
from imgsearch.vectorstore.plan import MATCH_THRESHOLD, Branch
from imgsearch.vectorstore.schema import CLASSES, SEMANTIC, VISUAL
from imgsearch.vectorstore.types import Hit, PayloadFilter

DEFAULT_K = 10  # what k = 0 (unset over gRPC) means, as in Qdrant
# A text search scores an image by the weighted mean of its cosine similarity and the probability the
# CNN gives to the classes the query's words name (the taxonomic channel), this the classes' weight:
# 1 is the plain mean, not tuned.
CLASSES_WEIGHT = 1.0

# Which channels rank a text search: "hybrid" (semantic + the lexical channel, BM25 over the images'
# label, caption and metadata values, where the collection has it), "semantic", "lexical".
Mode = Literal["hybrid", "semantic", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "semantic", "lexical")


@dataclass(frozen=True)
class ImageSource:
    """Either encoded image bytes or the id of a stored image."""

    image: bytes = b""
    id: str = ""


@dataclass(frozen=True)
class Page:
    """Which results of a ranking: `k` (0 = DEFAULT_K) after `offset`, none scoring below
    `min_score`; `mmr_lambda` set: diverse results by the engine's maximal marginal relevance."""

    k: int = 0
    offset: int = 0
    min_score: float | None = None
    mmr_lambda: float | None = None


@dataclass(frozen=True)
class TextSearch:
    """What a text search found, and which query words were unknown or ignored as stop words."""

    hits: list[Hit]
    unknown_terms: list[str]
    ignored_terms: list[str]

    @property
    def match_count(self) -> int:
        return match_count(self.hits)


def match_count(hits: list[Hit]) -> int:
    """How many of the hits are matches: relevance at or above the threshold (vectorstore.plan
    MATCH_THRESHOLD, chosen on the quality benchmark). Hits come best first, so these lead."""
    return sum(1 for h in hits if h.score >= MATCH_THRESHOLD)


def check_page(page: Page, limits: Limits) -> int:
    """The number of results to return (the store's one page check, with the service's max_k)."""
    return checks.check_page(page.k or DEFAULT_K, page.offset, page.min_score, limits.max_k)


def _search(store: VectorStore, vector, using, flt, page: Page, limits: Limits, negatives=()) -> list[Hit]:
    return store.search_images(
        vector,
        using,
        check_page(page, limits),
        flt,
        offset=page.offset,
        min_score=page.min_score,
        negatives=tuple(negatives),
        mmr_lambda=page.mmr_lambda,
    )


def _word_vectors(
    embedder: Embedder, terms: tuple[syntax.Term, ...], classes: list | None = None
) -> tuple[list, list[str]]:
    """(vector, weight) of each known term, and the unknown words; with `classes`, appends to it
    the (ClassScores, weight) of the ImageNet classes the terms name (the taxonomic channel).

    Terms of one weight (the plain query) are embedded in one call: the embedder's normalised mean
    of unit word vectors points where their sum does. Otherwise each word is embedded alone."""
    if not terms:
        return [], []
    if len({t.weight for t in terms}) == 1:
        try:
            embedded = embedder.embed_text(" ".join(t.word for t in terms))
        except NotFound:
            return [], [t.word for t in terms]
        if classes is not None:
            classes.append((embedded.classes, terms[0].weight))
        return [(embedded.vector, terms[0].weight * len(embedded.known_words))], list(embedded.unknown_words)
    found, unknown = [], []
    for term in terms:
        try:
            embedded = embedder.embed_text(term.word)
        except NotFound:
            unknown.append(term.word)
            continue
        found.append((embedded.vector, term.weight))
        if classes is not None:
            classes.append((embedded.classes, term.weight))
    return found, unknown


@dataclass
class _Parts:
    """A query's embedded parts: (semantic vector, weight) of words, (visual, semantic, weight) of
    images; negative weights push away."""

    words: list = field(default_factory=list)
    images: list = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    classes: list = field(default_factory=list)  # (ClassScores, weight) of the words


def _embed_parts(embedder: Embedder, store: VectorStore, terms, parts: tuple[QueryPart, ...]) -> _Parts:
    out = _Parts()
    out.words, out.unknown = _word_vectors(embedder, terms, out.classes)
    images = []
    for part in parts:
        syntax.check_weight(part.weight, "query part")
        if sum(bool(x) for x in (part.text, part.image, part.id)) != 1:
            raise InvalidArgument("a query part is exactly one of: text, image bytes, a stored image's id")
        if part.text:
            parsed = syntax.parse(part.text)
            weighted = tuple(replace(t, weight=t.weight * part.weight) for t in parsed.terms)
            found, missing = _word_vectors(embedder, weighted, out.classes)
            out.words += found
            out.unknown += missing
        elif part.id:
            point = store.get_image(check_point_id(part.id))
            if point is None:
                raise NotFound(f"no image with id {part.id}")
            out.images.append((point.visual, point.semantic, part.weight))
        else:
            images.append(part)
    if images:
        for part, outcome in zip(images, embedder.embed_images([p.image for p in images]), strict=True):
            if isinstance(outcome, ServiceError):
                raise outcome
            out.images.append((outcome.visual, outcome.semantic, part.weight))
    return out


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / (np.linalg.norm(v) or 1.0)


def _sum(pairs) -> np.ndarray:
    """The normalised weighted sum of unit vectors; InvalidArgument when they cancel out."""
    total = sum(w * _unit(v) for v, w in pairs)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise InvalidArgument("the query's parts cancel out")
    return total / norm


def plan(found: _Parts) -> tuple[Branch, tuple[Branch, ...]]:
    """The query as engine rankings: the first, and the ones fused with it.

    Words rank by the semantic vector, images by the visual one (what `similar` uses); weights mix
    the words into one vector and the images into another. With both, the engine fuses the two
    rankings by reciprocal rank fusion (equal weights: the engine's weighted RRF flattens a heavier
    ranking's top rather than favouring it, see vectorstore.plan.RRF_K): on the real photos that
    beat one mixed semantic vector (benchmarks/query_language_bench.py, part c). Negative parts go
    to the engine's recommend query
    (best-score strategy) of their ranking: images nearer a negative than the query rank last;
    negative images without positive ones push away in the semantic space. A query of negatives
    only searches away from them."""
    pos_words = [(v, w) for v, w in found.words if w > 0]
    neg_words = [(v, -w) for v, w in found.words if w < 0]
    pos_images = [(vis, sem, w) for vis, sem, w in found.images if w > 0]
    neg_images = [(vis, sem, -w) for vis, sem, w in found.images if w < 0]
    if pos_images and not found.words:  # images only: the visual space
        visual = _sum([(vis, w) for vis, _, w in pos_images])
        return Branch(visual, tuple(_unit(v) for v, _, _ in neg_images), VISUAL, 1.0), ()
    semantic_neg = [v for v, _ in neg_words]
    if not pos_images:
        semantic_neg += [sem for _, sem, _ in neg_images]
    if pos_words:
        vector = _sum(pos_words)
    elif pos_images:  # words only push away: from the images' meaning
        vector = _sum([(sem, w) for _, sem, w in pos_images])
    else:  # negatives only
        vector = _sum([(v, -w) for v, w in neg_words] + [(sem, -w) for _, sem, w in neg_images])
    semantic = Branch(vector, tuple(_unit(v) for v in semantic_neg), SEMANTIC, 1.0)
    if not pos_images:
        return semantic, ()
    visual = _sum([(vis, w) for vis, _, w in pos_images])
    visual_branch = Branch(visual, tuple(_unit(v) for v, _, _ in neg_images), VISUAL, 1.0)
    return semantic, (visual_branch,)


def search_text(
    embedder: Embedder,
    store: VectorStore,
    text: str,
    page: Page | int,
    flt: PayloadFilter | None,
    limits: Limits,
    parts: tuple[QueryPart, ...] = (),
    mode: Mode = "hybrid",
) -> TextSearch:
    """Images for the weighted query (see syntax for the text, `plan` for how parts combine).

    mode "hybrid" adds the lexical channel (the store's BM25 over the images' text, for the positive
    words) to the semantic ranking, where the collection has it; "lexical" ranks by BM25 alone
    (words only); "semantic" leaves the lexical channel out."""
    if mode not in MODES:
        raise InvalidArgument(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
    if not isinstance(page, Page):
        page = Page(k=page)
    k = check_page(page, limits)
    if len(text) > limits.max_text_chars:
        raise ResourceExhausted(
            f"text of {len(text)} characters, over the limit max_text_chars={limits.max_text_chars}"
        )
    parsed = syntax.parse(text)
    if not parsed.terms and not parts:
        if parsed.ignored:
            raise InvalidArgument(
                f"the query has only stop words ({', '.join(parsed.ignored)}), which are ignored: "
                f"add a word that describes the images"
            )
        raise InvalidArgument("empty query: give at least one word")
    words = _lexical_words(parsed.terms, parts)
    if mode == "lexical":
        return _search_lexical(store, words, parts, page, k, flt, parsed)
    found = _embed_parts(embedder, store, parsed.terms, tuple(parts))
    if not found.words and not found.images:
        if mode == "hybrid" and words and not parts and page.mmr_lambda is None and store.has_text():
            # words the embedder lacks (names, codes) may still be in the images' text
            by_text = _search_lexical(store, words, parts, page, k, flt, parsed, found.unknown)
            if by_text.hits or (  # found, only all below min_score: no results, the words are known
                page.min_score is not None
                and _search_lexical(store, words, parts, replace(page, min_score=None), k, flt, parsed).hits
            ):
                return by_text
        raise NotFound(f"no known word in the query; unknown words: {', '.join(found.unknown)}")
    first, fused = plan(found)
    if fused and page.mmr_lambda is not None:
        raise InvalidArgument("diverse results are not offered for queries of words and images together")
    if not fused and not found.images and page.mmr_lambda is None:
        fused = taxonomic_branches(found.classes)
    hits = store.search_images(
        first.vector,
        first.using,  # type: ignore[arg-type]  # plan() ranks by VISUAL or SEMANTIC first
        k,
        flt,
        offset=page.offset,
        min_score=page.min_score,
        negatives=first.negatives,
        mmr_lambda=page.mmr_lambda,
        fused=fused,
        weight=first.weight,
        lexical=lexical.query_vector(words) if mode == "hybrid" and words else None,
    )
    return TextSearch(hits, found.unknown, list(parsed.ignored))


def _lexical_words(terms: tuple[syntax.Term, ...], parts: tuple[QueryPart, ...]) -> list[tuple[str, float]]:
    """(word, weight) of the query's positive words, those of text parts included (the words the
    lexical channel matches; stop words are already dropped)."""
    words = [(t.word, t.weight) for t in terms if t.weight > 0]
    for part in parts:
        if part.text and part.weight > 0:
            words += [(t.word, t.weight * part.weight) for t in syntax.parse(part.text).positives]
    return words


def _search_lexical(
    store: VectorStore,
    words: list[tuple[str, float]],
    parts: tuple[QueryPart, ...],
    page: Page,
    k: int,
    flt: PayloadFilter | None,
    parsed: syntax.ParsedQuery,
    unknown: list[str] | None = None,
) -> TextSearch:
    """The images whose text matches the query's positive words best by BM25."""
    if any(p.image or p.id for p in parts):
        raise InvalidArgument("a lexical search takes words only, not images")
    if page.mmr_lambda is not None:
        raise InvalidArgument("diverse results are not offered for lexical searches")
    if not words:
        raise InvalidArgument("a lexical search needs at least one word that is not pushed away")
    hits = store.search_lexical(
        lexical.query_vector(words), k, flt, offset=page.offset, min_score=page.min_score
    )
    return TextSearch(hits, list(unknown or []), list(parsed.ignored))


def taxonomic_branches(classes: list, weight: float = CLASSES_WEIGHT) -> tuple[Branch, ...]:
    """The taxonomic channel of a words-only query: the ImageNet classes (and a face, colours, sky) its
    positive words name, weighted as the words. The store scores an image (similarity + `weight` x
    evidence) / (1 + `weight`), the evidence being the image's entries dotted with these; scaled so
    that evidence is at most 1 (an image's entries of one kind sum to at most 1), raw scores stay
    within [-1, 1] (before the relevance scale, vectorstore.plan). None when no word names anything
    (benchmarks/quality_bench.py measures the channels)."""
    total: dict[int, float] = {}
    for scores, w in classes:
        if w <= 0:
            continue  # a pushed-away word's classes are left to the semantic channel
        for i, s in zip(scores.ids, scores.scores, strict=True):
            total[i] = total.get(i, 0.0) + w * s
    heaviest: dict[str, float] = {}
    for i, s in total.items():
        kind = entry_kind(i)
        heaviest[kind] = max(heaviest.get(kind, 0.0), s)
    bound = sum(heaviest.values())
    if bound <= 0:
        return ()
    ids = tuple(sorted(total))
    vector = SparseVector(ids, tuple(total[i] / bound for i in ids))
    return (Branch(vector, (), CLASSES, weight),)  # type: ignore[arg-type]


def _image_vectors(embedder: Embedder, store: VectorStore, source: ImageSource):
    """(visual, semantic, classes) of stored or given image (classes: None where not known)."""
    if source.id:
        point = store.get_image(check_point_id(source.id))
        if point is None:
            raise NotFound(f"no image with id {source.id}")
        return point.visual, point.semantic, point.classes
    if not source.image:
        raise InvalidArgument("give an image (bytes) or the id of a stored image")
    (outcome,) = embedder.embed_images([source.image])
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome.visual, outcome.semantic, outcome.classes


def similar_images(
    embedder: Embedder,
    store: VectorStore,
    source: ImageSource,
    page: Page | int,
    flt: PayloadFilter | None,
    limits: Limits,
    include_self: bool = False,
) -> list[Hit]:
    """Images that look like the given or stored image (imgsearch.query.lookalike: CNN features
    and meaning, fused); a stored image itself is left out unless `include_self`. Diverse results
    (`mmr_lambda`) rank by the CNN features alone."""
    from imgsearch.query import lookalike

    if not isinstance(page, Page):
        page = Page(k=page)
    k = check_page(page, limits)
    visual, semantic, classes = _image_vectors(embedder, store, source)
    if source.id and not include_self:
        flt = flt or PayloadFilter()
        flt = replace(flt, exclude_ids=(*flt.exclude_ids, source.id))
    if page.mmr_lambda is not None:
        return _search(store, visual, VISUAL, flt, page, limits)
    face = lookalike.face_of(classes)
    return lookalike.similar(
        store, visual, semantic, k, page.offset, flt, page.min_score, limits.max_k, face=face
    )


def _need_words(store: VectorStore) -> None:
    if store.count_words() == 0:
        raise FailedPrecondition("the words collection is empty: load it with `imgsearch vocab`")


def tag_image(
    embedder: Embedder, store: VectorStore, source: ImageSource, k: int, limits: Limits
) -> list[tuple[str, float]]:
    """The image's tags, scores in [0, 1]: the words of its own evidence first, then its nearest
    words (imgsearch.query.tags)."""
    from imgsearch.query.tags import image_tags

    k = check_k(k or DEFAULT_K, limits.max_k)
    _need_words(store)
    return image_tags(embedder, store, source.image, source.id, k)


def similar_words(
    embedder: Embedder, store: VectorStore, word: str, k: int, limits: Limits
) -> list[tuple[str, float]]:
    """Words nearest to a word (or to the mean of several)."""
    k = check_k(k or DEFAULT_K, limits.max_k)
    _need_words(store)
    return store.search_words(embedder.embed_text(word).vector, k)


def facet(
    store: VectorStore, metadata_key: str, flt: PayloadFilter | None, limit: int, limits: Limits
) -> list[tuple[str, int]]:
    """(value, images) per label, or per value of a metadata key, under the filter; most first."""
    limit = limit or DEFAULT_K
    if not 1 <= limit <= limits.max_k:
        raise InvalidArgument(f"limit must be between 1 and {limits.max_k}, got {limit}")
    return store.facet_images(metadata_key or None, flt, limit)
