"""The vector-store interface the indexer and query services program against.

Two implementations stand behind it: Qdrant Edge in-process (the embedded default) and a Qdrant
server through qdrant-client. Callers see plain dataclasses and numpy arrays, never Qdrant types,
so the services and their tests do not care which one is configured.

`VectorStore` is a template: its public methods validate input, apply the store's rules and build
an engine-neutral request (`Row`, `Match`) once; an adapter implements only the primitives
(`_create`, `_upsert`, `_query`, ...) that speak to its engine.
"""

from __future__ import annotations

import base64
import functools
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from itertools import groupby
from typing import Any

import numpy as np

from imgsearch.errors import FailedPrecondition, InvalidArgument
from imgsearch.vectorstore import payloads, plan
from imgsearch.vectorstore.checks import (
    as_vector,
    check_k,
    check_page,
    check_point_id,
    check_sparse,
    word_matrix,
)
from imgsearch.vectorstore.engine import Match, Page, Row, SparseVector
from imgsearch.vectorstore.filters import in_namespace, match_of
from imgsearch.vectorstore.ids import (
    check_public_id,
    content_id_of,
    legacy_content_id,
    point_id,
    public_id,
    with_public_id,
)
from imgsearch.vectorstore.lexical import TEXT, document_vector, image_text
from imgsearch.vectorstore.payloads import DEFAULT_NAMESPACE, check_namespace, namespace_of
from imgsearch.vectorstore.plan import (
    FUSION_CANDIDATES,
    LEXICAL_WEIGHT,
    MMR_CANDIDATES,
    SCORE_SLACK,
    Bonus,
    Branch,
    Ranking,
)
from imgsearch.vectorstore.records import image_from_record, record_to_point
from imgsearch.vectorstore.schema import (
    CLASSES,
    IMAGES,
    SEMANTIC,
    VISUAL,
    WORDS,
    VectorName,
)
from imgsearch.vectorstore.storage import WORD_SPACE_EF, word_space_beam
from imgsearch.vectorstore.types import CollectionDims, Hit, ImagePoint, PayloadFilter

log = logging.getLogger(__name__)
# How often a search recounts the images to choose the semantic beam (storage.word_space_beam).
SIZE_RECOUNT_S = 30.0

# Records a metadata facet reads per scroll page.
FACET_PAGE = 1000

# Most records one page of a listing holds.
MAX_PAGE = 1000


class VectorStore(ABC):
    """Typed access to the `images` and `words` collections.

    Every method may be called from several threads at once (a gRPC server's pool). Methods
    raise imgsearch.errors: FailedPrecondition when the collections are missing or have other
    dimensions, Unavailable when a remote store cannot be reached, InvalidArgument for bad input.
    """

    _closed: bool = False
    # True where this process is the store's only writer (the embedded engine): it then knows
    # whether any image lies outside the default namespace, and while none does, searches of the
    # default namespace leave out the namespace condition, which matches every point and costs
    # a payload check per point the graph walk visits (1.2 -> 4.1 ms a search at 50,000 images).
    _sole_writer: bool = False
    _named_namespaces: bool | None = None  # whether images of a named namespace exist; None: unknown
    # The engine's search parameters for the visual vectors and for the word space (semantic,
    # words: never quantized, a wider beam); the adapters build them in their engine's classes.
    _params: Any = None
    _word_params: Any = None
    # ... and for the semantic vectors of a large images collection (storage.word_space_beam); None
    # keeps _word_params (a beam the operator set, or an engine that takes no parameters).
    _large_word_params: Any = None
    _images_size: tuple[float, int] = (-float("inf"), 0)  # (when counted, monotonic; points)

    # -- collections -------------------------------------------------------------------------

    def ensure_collections(self, visual_dim: int, semantic_dim: int, word_dim: int) -> None:
        """Creates `images` and `words` if missing; FailedPrecondition if they exist with other sizes."""
        wanted = {IMAGES: {VISUAL: visual_dim, SEMANTIC: semantic_dim}, WORDS: {"": word_dim}}
        self._check_open()
        have = {name: self._stored_dims(name) for name in wanted}
        for name, dims in wanted.items():
            if have[name] is not None and have[name] != dims:
                raise FailedPrecondition(
                    f"collection {name!r} has vector sizes {_fmt(have[name])}, the models give {_fmt(dims)}; "
                    f"reindex (drop the collection and ingest again) to switch models"
                )
        for name, dims in wanted.items():
            if have[name] is None:
                self._create(name, dims)
            else:  # a store made before namespaces gets the index, and its images the default one
                self._add_missing_indexes(name)
                if name == IMAGES:
                    self._fill_default_namespace()
                    self._move_named_points()

    def collection_dims(self) -> CollectionDims | None:
        """Sizes of the existing collections, or None when they do not exist yet."""
        images, words = self._stored_dims(IMAGES), self._stored_dims(WORDS)
        if images is None or words is None:
            return None
        return CollectionDims(visual=images[VISUAL], semantic=images[SEMANTIC], word=words[""])

    def drop_collection(self, name: str) -> None:
        """Deletes one collection with all its points (a head or word-vector change needs new sizes)."""
        if name not in (IMAGES, WORDS):
            raise InvalidArgument(f"unknown collection {name!r}")
        self._check_open()
        self._drop(name)
        if name == IMAGES:
            self._named_namespaces = None

    # -- images ------------------------------------------------------------------------------

    def upsert_images(self, points: list[ImagePoint]) -> None:
        """Inserts or replaces images by id, each in the namespace its payload names (an id is one
        image per namespace: imgsearch.vectorstore.ids)."""
        if not points:
            return
        dims = self._dims_of(IMAGES)
        has_text = self.has_text()
        rows = [
            Row(
                point_id(pid := check_public_id(p.id), check_namespace(namespace_of(p.payload))),
                {
                    VISUAL: as_vector(p.visual, dims[VISUAL], "visual vector"),
                    SEMANTIC: as_vector(p.semantic, dims[SEMANTIC], "semantic vector"),
                    **({CLASSES: check_sparse(p.classes)} if p.classes and self.has_classes() else {}),
                    **({TEXT: text} if has_text and (text := document_vector(image_text(p.payload))) else {}),
                },
                with_public_id(payloads.to_stored(p.payload), pid),
            )
            for p in points
        ]
        if any(namespace_of(p.payload) != DEFAULT_NAMESPACE for p in points):
            self._named_namespaces = True  # before the write: a search that starts now keeps the condition
        self._upsert(IMAGES, rows)

    def has_classes(self) -> bool:
        """Whether the `images` collection has the sparse `classes` vector (one made before it
        has not, until `imgsearch reindex` rebuilds it)."""
        self._dims_of(IMAGES)
        return CLASSES in self._sparse_names(IMAGES)

    def has_text(self) -> bool:
        """Whether the `images` collection has the sparse `text` vector (the lexical channel; one
        made before it has not, until `imgsearch reindex` rebuilds it)."""
        self._dims_of(IMAGES)
        return TEXT in self._sparse_names(IMAGES)

    def existing_ids(self, ids: list[str], namespace: str = DEFAULT_NAMESPACE) -> set[str]:
        """The subset of `ids` stored in `namespace` (another namespace's images never count)."""
        return set(self.stored_payloads(ids, namespace))

    def stored_payloads(
        self, ids: list[str], namespace: str = DEFAULT_NAMESPACE
    ) -> dict[str, dict[str, Any]]:
        """id -> payload (without vectors) of the images of `namespace` among `ids`."""
        return {
            public_id(r): payloads.from_stored(r.payload)
            for r in self._records(ids, namespace, with_vectors=False)
        }

    def stored_hashes(self, ids: list[str], namespace: str = DEFAULT_NAMESPACE) -> dict[str, str]:
        """The images of `namespace` among `ids` with the SHA-256 of their bytes ("" for one stored
        without it, as UpsertVectors stores): whether an id already holds the same content."""
        return {
            public_id(r): str((r.payload or {}).get("sha256") or "")
            for r in self._records(ids, namespace, with_vectors=False)
        }

    def _records(self, ids: list[str], namespace: str, with_vectors: bool | list[str]) -> list[Any]:
        """The stored records of the images of `namespace` among the public `ids`."""
        check_namespace(namespace)
        wanted = dict.fromkeys(point_id(check_public_id(i), namespace) for i in ids)
        if not wanted:
            return []
        self._dims_of(IMAGES)
        records = self._retrieve(IMAGES, list(wanted), full=True, with_vectors=with_vectors)
        return [r for r in records if namespace_of(r.payload) == namespace]

    def get_image(self, id: str, namespace: str = DEFAULT_NAMESPACE) -> ImagePoint | None:
        """One image of `namespace` with its vectors, or None."""
        found = self.get_images([id], namespace, with_vectors=True)
        return found[0] if found else None

    def get_images(
        self, ids: list[str], namespace: str = DEFAULT_NAMESPACE, with_vectors: bool = False
    ) -> list[ImagePoint]:
        """The images of `namespace` among `ids`, in the order asked (vectors empty unless asked for)."""
        wanted = dict.fromkeys(check_public_id(i) for i in ids)
        by_id = {public_id(r): r for r in self._records(list(wanted), namespace, with_vectors)}
        return [record_to_point(by_id[i], with_vectors) for i in wanted if i in by_id]

    def list_images(
        self,
        flt: PayloadFilter | None = None,
        namespace: str | None = DEFAULT_NAMESPACE,
        limit: int = 100,
        page_token: str = "",
        with_vectors: bool = False,
    ) -> tuple[list[ImagePoint], str]:
        """One page of the images of `namespace` (None: of every namespace) under the filter, in
        the order of their point ids (imgsearch.vectorstore.ids), and the token of the next page
        ("" after the last).

        The token is the point id the next page starts at (the engine's scroll offset; `point_id`
        of an image's id and namespace, so a reply may end its page early there): an image added
        before it is not listed, one deleted is not listed, and no image is listed twice.
        """
        check_k(limit, MAX_PAGE)
        offset = check_point_id(page_token) if page_token else None
        self._dims_of(IMAGES)
        match = in_namespace(match_of(flt), namespace)
        records, next_offset = self._scroll(IMAGES, Page(limit, offset, match, with_vector=with_vectors))
        points = [record_to_point(r, with_vectors) for r in records]
        return points, "" if next_offset is None else str(next_offset)

    def update_images(
        self,
        ids: list[str] | None = None,
        flt: PayloadFilter | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        label: str | None = None,
        set_metadata: dict[str, str] | None = None,
        remove_metadata: tuple[str, ...] = (),
    ) -> int:
        """Sets the label (when given) and sets / removes metadata keys of the images of `namespace`
        with these ids, else those matching a non-empty filter; vectors stay as they are. Returns
        how many images matched."""
        set_metadata = dict(set_metadata or {})
        for key in [*set_metadata, *remove_metadata]:
            payloads.meta_path(key)  # the same key rule as filters
        if label is None and not set_metadata and not remove_metadata:
            raise InvalidArgument("update needs a label, metadata to set or metadata keys to remove")
        if ids:
            found = self.stored_payloads(list(ids), namespace)
            pages: Iterator[list[tuple[str, dict[str, Any]]]] = iter([list(found.items())])
        elif (match := match_of(flt)) is not None:
            pages = self._payload_pages(in_namespace(match, namespace))
        else:
            raise InvalidArgument("update needs ids or a non-empty filter")
        updated = 0
        for page in pages:
            rows = []
            for pid, payload in page:
                metadata = {**payload.get("metadata", {}), **set_metadata}
                for key in remove_metadata:
                    metadata.pop(key, None)
                changed = {**payload, "metadata": metadata}
                if label is not None:
                    changed["label"] = label
                rows.append((point_id(pid, namespace), with_public_id(payloads.to_stored(changed), pid)))
            if rows:
                self._overwrite_payloads(IMAGES, rows)
                self._update_text(rows)
            updated += len(rows)
        return updated

    def _update_text(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Rewrites the lexical vector of images whose label or metadata changed (a text that has
        no token left keeps its old vector; a reindex clears it)."""
        if not self.has_text():
            return
        text_rows = [
            Row(pid, {TEXT: text}, {})
            for pid, payload in rows
            if (text := document_vector(image_text(payloads.from_stored(payload))))
        ]
        if text_rows:
            self._update_vectors(IMAGES, text_rows)

    def import_images(self, points: list[ImagePoint]) -> tuple[int, int]:
        """Stores exported images (vectors and payload as given, each payload naming its namespace)
        unless their id is already stored in that namespace; of an id given twice in one namespace
        the first is kept. (imported, skipped)."""
        if not points:
            return 0, 0
        first: dict[tuple[str, str], ImagePoint] = {}
        for p in points:
            key = (check_namespace(namespace_of(p.payload)), check_public_id(p.id))
            first.setdefault(key, replace(p, id=key[1]))
        fresh = []
        for namespace, keys in groupby(sorted(first), key=lambda k: k[0]):
            wanted = [i for _, i in keys]
            have = self.existing_ids(wanted, namespace)
            fresh += [first[namespace, i] for i in wanted if i not in have]
        self.upsert_images(fresh)
        return len(fresh), len(points) - len(fresh)

    def _relevant(
        self,
        ranking: Ranking,
        using: str,
        k: int,
        match: Match | None,
        namespace: str,
        min_score: float | None,
    ) -> list[Hit]:
        """The ranking's hits with relevance scores (plan.Scale), none below `min_score` nor
        without any score (a lexical search's images without a query word)."""
        scale = plan.scale_of(ranking, using)
        floor = None if min_score is None else scale.raw(min_score)
        # the engine may compare quantized or rounded scores: ask with some slack, cut exactly below
        ranking = replace(ranking, min_score=None if floor is None else floor - SCORE_SLACK)
        hits = [
            Hit(
                id=public_id(p),
                score=scale.relevance(float(p.score)),
                payload=payloads.from_stored(p.payload),
                vectors=_hit_vectors(p.vector) if ranking.vectors else {},
            )
            for p in self._scoped_query(ranking, using, k, match, namespace)
            if p.score > 0 or not isinstance(ranking.vector, SparseVector)
        ]
        return [h for h in hits if min_score is None or h.score >= min_score]

    def _scoped_query(
        self, ranking: Ranking, using: str | None, k: int, match: Match | None, namespace: str
    ) -> list[Any]:
        """The images' `_query` within `namespace`; see `_sole_writer` for when the condition is
        left out. A hit from a named namespace (written while the search ran) redoes it with it."""
        if namespace != DEFAULT_NAMESPACE or not self._sole_writer or self._has_named_namespaces():
            return self._query(IMAGES, ranking, using, k, in_namespace(match, namespace))
        scored = self._query(IMAGES, ranking, using, k, match)
        if any(namespace_of(p.payload) != DEFAULT_NAMESPACE for p in scored):
            return self._query(IMAGES, ranking, using, k, in_namespace(match, namespace))
        return scored

    def _params_for(self, using: str | None) -> Any:
        """The search parameters for a query on the vector named `using`."""
        if using == VISUAL:
            return self._params
        large = self._large_word_params
        if using == SEMANTIC and large is not None and word_space_beam(self._images_points()) > WORD_SPACE_EF:
            return large
        return self._word_params

    def _images_points(self) -> int:
        """The images collection's points, counted at most every SIZE_RECOUNT_S seconds: the beam
        follows the collection's size, which a search need not know to the point."""
        counted_at, points = self._images_size
        now = time.monotonic()
        if now - counted_at >= SIZE_RECOUNT_S:
            points = self._count(IMAGES, None)
            self._images_size = (now, points)
        return points

    def _has_named_namespaces(self) -> bool:
        if self._named_namespaces is None:
            named = Match(must_not=((payloads.NAMESPACE, DEFAULT_NAMESPACE),))
            self._named_namespaces = self._count(IMAGES, named) > 0
        return self._named_namespaces

    def _payload_pages(self, match: Match, batch: int = 256) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        offset: Any = None
        while True:
            records, offset = self._scroll(IMAGES, Page(batch, offset, match, with_vector=False))
            yield [(public_id(r), payloads.from_stored(r.payload)) for r in records]
            if offset is None:
                return

    def thumbnails(self, ids: list[str], namespace: str = DEFAULT_NAMESPACE) -> dict[str, bytes]:
        """id -> the thumbnail the indexer stored, for the ids of `namespace` that exist and have one."""
        out = {}
        for record in self._records(ids, namespace, with_vectors=False):
            text = (record.payload or {}).get(payloads.THUMBNAIL)
            if text and isinstance(text, str):  # an import checks it; one stored before may be anything
                try:
                    out[public_id(record)] = base64.b64decode(text, validate=True)
                except ValueError:
                    log.warning("image %s: its thumbnail is not base64; serving none", public_id(record))
        return out

    def search_images(
        self,
        vector: np.ndarray,
        using: VectorName,
        k: int,
        flt: PayloadFilter | None = None,
        *,
        offset: int = 0,
        min_score: float | None = None,
        negatives: tuple[np.ndarray, ...] = (),
        mmr_lambda: float | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        fused: tuple[Branch, ...] = (),
        weight: float = 1.0,
        lexical: SparseVector | None = None,
        lexical_weight: float = LEXICAL_WEIGHT,
        with_vectors: tuple[str, ...] = (),
    ) -> list[Hit]:
        """The k nearest images of `namespace` by the named vector, best first, after skipping `offset`.

        Scores are relevances in [0, 1] (plan.Scale: 0.5 is the match threshold), each a monotone
        map of the engine's raw score; min_score drops results below it. negatives: the engine's
        recommend query (best-score strategy) ranks every image nearer a negative than `vector`
        after all others. mmr_lambda: the engine's maximal marginal relevance picks varied results
        among the nearest candidates (1 = relevance only, 0 = novelty only); scores stay those of
        the similarity to `vector`, in the engine's pick order.
        fused: more rankings (another vector, its negatives, its weight) that the engine fuses with
        this one (weighted `weight`) by reciprocal rank fusion (scores: plan.fused_scale).
        A branch `using` CLASSES (a SparseVector over the `classes` vector: the taxonomic channel)
        is not ranked apart: each image's raw score is its similarity to `vector` plus the branch's
        weight times its classes' dot product with the branch's vector, over 1 + the weight (the
        engine's score formula), so it stays on a plain search's scale. Without other branches
        only; a collection made before the `classes` vector leaves it out.
        lexical: a query over the `lexical` vector (lexical.query_vector; hybrid search): an image
        of raw score s above gets s + `lexical_weight` x bm25 x (1 - s), bm25 the mean BM25
        saturation of the query's words in its text (0 without any: s unchanged); with fused
        rankings the lexical ranking is fused as one more. Left out with `mmr_lambda`, when empty,
        and in a collection made before the `lexical` vector.
        with_vectors: the named vectors (visual, semantic, classes) each hit carries back in
        `Hit.vectors` (dense ones as sequences of floats), read in the same request; `classes` is
        left out in a collection made before it.
        """
        dims = self._dims_of(IMAGES)
        if using not in (VISUAL, SEMANTIC):
            raise InvalidArgument(f"unknown vector {using!r}; use 'visual' or 'semantic'")
        if unknown := [v for v in with_vectors if v not in (VISUAL, SEMANTIC, CLASSES)]:
            raise InvalidArgument(f"unknown vector(s) {unknown}; hits carry visual, semantic or classes")
        if CLASSES in with_vectors and not self.has_classes():
            with_vectors = tuple(v for v in with_vectors if v != CLASSES)
        k = check_page(k, offset, min_score)
        if mmr_lambda is not None and not 0.0 <= mmr_lambda <= 1.0:
            raise InvalidArgument(f"the diversity lambda must be between 0 and 1, got {mmr_lambda}")
        if fused and mmr_lambda is not None:
            raise InvalidArgument("diverse results are not offered for fused rankings")
        sparse = tuple(b for b in fused if b.using == CLASSES and b.vector)
        fused = tuple(b for b in fused if b.using != CLASSES)
        for b in fused:
            if b.using not in (VISUAL, SEMANTIC):
                raise InvalidArgument(f"unknown vector {b.using!r}; use 'visual' or 'semantic'")
        branches = tuple(
            Branch(
                as_vector(b.vector, dims[b.using], f"{b.using} query"),
                tuple(as_vector(n, dims[b.using], f"negative {b.using} query") for n in b.negatives),
                b.using,
                b.weight,
            )
            for b in fused
        )
        bonus = None
        if sparse and not fused and self.has_classes():
            if mmr_lambda is not None:
                raise InvalidArgument("diverse results are not offered for fused rankings")
            (b, *more) = sparse
            if more:
                raise InvalidArgument("one branch over the classes vector at most")
            bonus = Bonus(CLASSES, check_sparse(b.vector), float(b.weight))  # type: ignore[arg-type]  # a classes branch holds a SparseVector
        lexical_bonus = None
        if lexical and mmr_lambda is None and self.has_text():
            if not 0 < lexical_weight <= 1:
                raise InvalidArgument(f"the lexical weight must be in (0, 1], got {lexical_weight}")
            lexical_bonus = Bonus(TEXT, check_sparse(lexical), float(lexical_weight))
        ranking = Ranking(
            vector=as_vector(vector, dims[using], f"{using} query"),
            negatives=tuple(as_vector(n, dims[using], f"negative {using} query") for n in negatives),
            offset=offset,
            mmr_lambda=mmr_lambda,
            candidates=max(FUSION_CANDIDATES, 2 * (offset + k))
            if fused
            else max(MMR_CANDIDATES, 4 * (offset + k)),
            weight=weight,
            fused=branches,
            bonus=bonus,
            lexical=lexical_bonus,
            vectors=tuple(dict.fromkeys(with_vectors)),
        )
        return self._relevant(ranking, using, k, match_of(flt), namespace, min_score)

    def search_lexical(
        self,
        vector: SparseVector,
        k: int,
        flt: PayloadFilter | None = None,
        *,
        offset: int = 0,
        min_score: float | None = None,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> list[Hit]:
        """The k images of `namespace` whose text best matches the query's words by BM25 (`vector`:
        lexical.query_vector), best first after skipping `offset`; scores are the mean BM25
        saturation of the query's words in the image's text, in [0, 1) (lexical.py), and images
        without any of the words are not returned. FailedPrecondition in a collection made before
        the `lexical` vector."""
        if not self.has_text():
            raise FailedPrecondition(
                "this images collection has no lexical (text) index: it was made before it; "
                "`imgsearch reindex` rebuilds it with one"
            )
        k = check_page(k, offset, min_score)
        vector = check_sparse(vector)
        if not vector:
            return []
        ranking = Ranking(vector=vector, offset=offset)  # type: ignore[arg-type]
        return self._relevant(ranking, TEXT, k, match_of(flt), namespace, min_score)

    def facet_images(
        self,
        metadata_key: str | None,
        flt: PayloadFilter | None = None,
        limit: int = 10,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> list[tuple[str, int]]:
        """(value, number of images) per label, or per value of one metadata key, under the filter;
        highest counts first (ties by value), at most `limit`."""
        check_k(limit)
        self._dims_of(IMAGES)
        if metadata_key is None:
            counts = self._facet(IMAGES, payloads.LABEL, in_namespace(match_of(flt), namespace), limit)
        else:
            counts = list(self._count_values(metadata_key, flt, namespace).items())
        return sorted(counts, key=lambda c: (-c[1], c[0]))[:limit]

    def _count_values(self, key: str, flt: PayloadFilter | None, namespace: str) -> Counter[str]:
        """value -> images, of one metadata key over the images that have it under the filter.

        Exact: every such image's value is read, by scrolling with that one payload path (a facet
        of the `_meta_kv` tokens would count every key's values of those images, and read only a
        bounded number of them: 2,000 images x 30 keys lost key "k29"). The time grows with the
        images that have the key: 100,000 images of 30 keys each in 2.2 s on 2 busy cores (70 s and
        possibly wrong before; benchmarks/README.md)."""
        with_key = replace(flt or PayloadFilter(), has_metadata=(key,))
        match = in_namespace(match_of(with_key), namespace)
        path = payloads.meta_path(key)  # the filter above checked the key
        counts: Counter[str] = Counter()
        offset: Any = None
        while True:
            page = Page(FACET_PAGE, offset, match, with_payload=(path,), with_vector=False)
            records, offset = self._scroll(IMAGES, page)
            for r in records:
                value = ((r.payload or {}).get("metadata") or {}).get(key)
                if value is not None:
                    counts[str(value)] += 1
            if offset is None:
                return counts

    def delete_images(
        self,
        ids: list[str] | None = None,
        flt: PayloadFilter | None = None,
        all: bool = False,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> int:
        """Deletes the images of `namespace` by ids, else by a non-empty filter, else all of them
        when `all` is asked for explicitly (the narrowest selection given wins, so a stray `all`
        never widens a delete); returns how many points were deleted."""
        target: list[str] | Match
        check_namespace(namespace)
        if ids:
            target = [check_public_id(i) for i in ids]
        elif (match := match_of(flt)) is not None:  # None: no filter, or an empty one
            target = in_namespace(match, namespace)
        elif all:
            target = in_namespace(Match(), namespace)
        else:
            raise InvalidArgument("delete needs ids, a non-empty filter, or all=True")
        self._dims_of(IMAGES)
        if isinstance(target, list):  # only the ids of this namespace's images
            target = [point_id(i, namespace) for i in self.stored_payloads(target, namespace)]
            deleted = len(target)
        else:
            deleted = self._count(IMAGES, target)
        if deleted:
            self._delete(IMAGES, target)
        return deleted

    def count_images(
        self, flt: PayloadFilter | None = None, namespace: str | None = DEFAULT_NAMESPACE
    ) -> int:
        """The images of `namespace` (None: of every namespace) under the filter."""
        self._dims_of(IMAGES)
        return self._count(IMAGES, in_namespace(match_of(flt), namespace))

    def iter_images(self, batch: int = 256) -> Iterator[ImagePoint]:
        """Every stored image of every namespace with vectors, in batches (reindexing after a head
        change)."""
        self._dims_of(IMAGES)
        offset: Any = None
        while True:
            records, offset = self._scroll(IMAGES, Page(batch, offset, None))
            yield from (image_from_record(r) for r in records)
            if offset is None:
                return

    # -- words -------------------------------------------------------------------------------

    def upsert_words(self, start_rank: int, words: list[str], vectors: np.ndarray) -> None:
        """Stores words with ids start_rank, start_rank + 1, ... (rank = frequency order)."""
        matrix = word_matrix(words, vectors, self._dims_of(WORDS)[""])
        rows = [
            Row(start_rank + i, matrix[i], {payloads.WORD: w, payloads.RANK: start_rank + i})
            for i, w in enumerate(words)
            if np.any(matrix[i])  # a zero vector has no cosine direction; Qdrant would store NaNs
        ]
        if rows:
            self._upsert(WORDS, rows)

    def search_words(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k nearest words with their cosine similarity (a negative one as 0: plan.WORD_SCALE), best
        first."""
        query = as_vector(vector, self._dims_of(WORDS)[""], "word query")
        scored = self._query(WORDS, Ranking(query), None, check_k(k), None)
        return [(str(p.payload[payloads.WORD]), plan.WORD_SCALE.relevance(float(p.score))) for p in scored]

    def word_vector(self, word: str) -> np.ndarray | None:
        """The stored (normalised) vector of a word, or None."""
        self._dims_of(WORDS)
        match = Match(must=((payloads.WORD, word),))
        records, _ = self._scroll(WORDS, Page(1, None, match, with_payload=False))
        if not records:
            return None
        vector = records[0].vector
        if isinstance(vector, dict):
            vector = vector[""]
        return np.asarray(vector, dtype=np.float32)

    def count_words(self) -> int:
        self._dims_of(WORDS)
        return self._count(WORDS, None)

    # -- lifecycle ---------------------------------------------------------------------------

    @abstractmethod
    def optimize(self) -> None:
        """Brings indexes up to date after bulk loads; blocks until done."""

    @abstractmethod
    def flush(self) -> None:
        """Makes every acknowledged write durable."""

    @abstractmethod
    def close(self) -> None:
        """Flushes and releases the store; later calls raise FailedPrecondition."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data lives, for logs and stats."""

    def _fill_default_namespace(self) -> None:
        """Puts the images stored without a namespace key (before namespaces) in the default one."""
        unset = Match(absent=(payloads.NAMESPACE,))
        if self._count(IMAGES, unset):
            self._set_payload(IMAGES, unset, {payloads.NAMESPACE: DEFAULT_NAMESPACE})

    def _move_named_points(self, batch: int = 256) -> None:
        """Moves the images of named namespaces that versions before per-namespace points stored
        under their public id to their derived point id (imgsearch.vectorstore.ids); one whose id
        was such a version's namespace-derived content id takes the content id namespaces now share."""
        legacy = Match(must_not=((payloads.NAMESPACE, DEFAULT_NAMESPACE),), absent=(payloads.PUBLIC_ID,))
        while True:
            records, _ = self._scroll(IMAGES, Page(batch, None, legacy))
            if not records:
                return
            moved = []
            for record in records:
                point = image_from_record(record)
                sha = str(point.payload.get("sha256") or "")
                if sha and point.id == legacy_content_id(sha, namespace_of(point.payload)):
                    point = replace(point, id=content_id_of(sha))
                moved.append(point)
            self.upsert_images(moved)
            self._delete(IMAGES, [str(r.id) for r in records])

    def in_namespace(self, namespace: str) -> NamespaceView:
        """The store as one namespace sees it: every image call takes that namespace."""
        return NamespaceView(self, check_namespace(namespace))

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what an adapter implements ----------------------------------------------------------
    # `name` is IMAGES or WORDS; the public methods have checked the input and, except for the
    # collection primitives, that the collection exists.

    @abstractmethod
    def _stored_dims(self, name: str) -> dict[str, int] | None:
        """The collection's vector sizes as the engine has them now, or None when it does not exist."""

    @abstractmethod
    def _dims_of(self, name: str) -> dict[str, int]:
        """The sizes of an existing collection (may be remembered); FailedPrecondition otherwise."""

    @abstractmethod
    def _create(self, name: str, dims: dict[str, int]) -> None:
        """Creates the collection with cosine vectors of `dims` (`""` = unnamed) and PAYLOAD_INDEXES."""

    @abstractmethod
    def _drop(self, name: str) -> None:
        """Deletes the collection if it exists."""

    @abstractmethod
    def _upsert(self, name: str, rows: list[Row]) -> None: ...

    @abstractmethod
    def _retrieve(
        self, name: str, ids: list[str], full: bool, with_vectors: bool | list[str] | None = None
    ) -> list[Any]:
        """Records (`.id`, and with `full` `.payload` and, unless `with_vectors` is False, `.vector`)
        of the ids that exist."""

    @abstractmethod
    def _query(
        self, name: str, ranking: Ranking, using: str | None, limit: int, match: Match | None
    ) -> list[Any]:
        """Scored points (`.id`, `.score`, `.payload`) in the ranking's order."""

    @abstractmethod
    def _facet(self, name: str, key: str, match: Match | None, limit: int) -> list[tuple[str, int]]:
        """(value, count) of a keyword-indexed payload key over the matching points, exact."""

    @abstractmethod
    def _scroll(self, name: str, page: Page) -> tuple[list[Any], Any]:
        """One page of records in id order, and the offset of the next page (None after the last)."""

    @abstractmethod
    def _overwrite_payloads(self, name: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Replaces the whole payload of each (id, payload); vectors stay as they are."""

    @abstractmethod
    def _update_vectors(self, name: str, rows: list[Row]) -> None:
        """Sets the named vectors each row gives on its existing point; its other vectors and its
        payload stay as they are."""

    @abstractmethod
    def _set_payload(self, name: str, match: Match, payload: dict[str, Any]) -> None:
        """Sets these payload keys (others kept) on every point that matches."""

    @abstractmethod
    def _add_missing_indexes(self, name: str) -> None:
        """Creates the PAYLOAD_INDEXES an existing collection lacks (one made by an older version)."""

    @abstractmethod
    def _count(self, name: str, match: Match | None) -> int:
        """The exact number of points that match."""

    @abstractmethod
    def _delete(self, name: str, target: list[str] | Match) -> None:
        """Deletes the points with these ids, or those matching."""

    def _sparse_names(self, name: str) -> tuple[str, ...]:
        """The sparse vectors the collection has (SPARSE_VECTORS[name] for one made now)."""
        return ()

    # -- helpers -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("the vector store is closed")


class NamespaceView:
    """A VectorStore whose image reads and writes take one namespace (the Query service hands it
    to the search functions, which then never see another namespace's images); words are shared."""

    NAMESPACED = frozenset(
        {
            "search_images",
            "search_lexical",
            "facet_images",
            "get_image",
            "get_images",
            "list_images",
            "thumbnails",
            "count_images",
            "delete_images",
            "update_images",
        }
    )

    def __init__(self, store: VectorStore, namespace: str):
        self.store = store
        self.namespace = namespace

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if name in self.NAMESPACED:
            return functools.partial(attr, namespace=self.namespace)
        return attr


def _hit_vectors(stored: Any) -> dict[str, Any]:
    """A scored point's returned vectors: dense ones as the engine gives them (a sequence of floats:
    a caller that stacks many converts them at once), sparse ones (the engine's class) as
    SparseVector."""
    return {
        name: SparseVector(tuple(v.indices), tuple(v.values)) if hasattr(v, "indices") else v
        for name, v in (stored or {}).items()
    }


def _fmt(dims: dict[str, int] | None) -> str:
    return ", ".join(f"{name or 'word'}={size}" for name, size in (dims or {}).items())
