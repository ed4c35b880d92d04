"""The Query gRPC servicer: unpack, call imgsearch.query.search, pack."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import cast

import grpc

from imgsearch.config import Settings
from imgsearch.embedder.results import Embedder
from imgsearch.errors import InvalidArgument
from imgsearch.protogen.imagesearch.v1 import common_pb2, query_pb2, query_pb2_grpc
from imgsearch.query import replies, search
from imgsearch.rpc.convert import filter_from_proto, hit_to_proto, record_to_proto
from imgsearch.rpc.scopes import require, require_every
from imgsearch.vectorstore.base import VectorStore, check_point_id
from imgsearch.vectorstore.ids import point_id
from imgsearch.vectorstore.payloads import namespace_of

SERVICE_NAME = query_pb2.DESCRIPTOR.services_by_name["Query"].full_name
DEFAULT_PAGE = 100  # records per ListImages page when `limit` is unset


def _source(request) -> search.ImageSource:
    which = request.WhichOneof("source")
    return search.ImageSource(
        image=request.image if which == "image" else b"", id=request.id if which == "id" else ""
    )


def _page(request) -> search.Page:
    return search.Page(
        k=request.k,
        offset=request.offset,
        min_score=request.min_score if request.HasField("min_score") else None,
        mmr_lambda=request.mmr_lambda if request.HasField("mmr_lambda") else None,
    )


def _mode(mode: int) -> search.Mode:
    """The request's search mode (unset: hybrid, which a collection without the lexical index
    searches semantically)."""
    if mode == query_pb2.SearchTextRequest.LEXICAL:
        return "lexical"
    if mode == query_pb2.SearchTextRequest.SEMANTIC:
        return "semantic"
    if mode in (query_pb2.SearchTextRequest.HYBRID, query_pb2.SearchTextRequest.MODE_UNSPECIFIED):
        return "hybrid"
    raise InvalidArgument(f"unknown search mode {mode}")


def _part(msg: query_pb2.QueryPart) -> search.QueryPart:
    which = msg.WhichOneof("value")
    return search.QueryPart(
        text=msg.text if which == "text" else "",
        image=msg.image if which == "image" else b"",
        id=msg.id if which == "id" else "",
        weight=msg.weight or 1.0,
    )


def _words(pairs: list[tuple[str, float]]) -> query_pb2.WordsResponse:
    return query_pb2.WordsResponse(results=[common_pb2.WordHit(word=w, score=s) for w, s in pairs])


def _thumbnails_on_request(method: Callable) -> Callable:
    """Fills each hit's `thumbnail` from the store when the request sets `with_thumbnails`."""

    @functools.wraps(method)
    def call(self, request, context):
        response = method(self, request, context)
        if request.with_thumbnails and response.results:
            found = self.store.thumbnails([hit.id for hit in response.results], namespace=request.namespace)
            replies.add_thumbnails(response, found, replies.budget(self.limits))
        return response

    return call


class QueryServicer(query_pb2_grpc.QueryServicer):
    def __init__(self, embedder: Embedder, store: VectorStore, settings: Settings):
        self.embedder = embedder
        self.store = store
        self.limits = settings.limits

    def _view(self, request) -> VectorStore:
        """The store as the request's namespace sees it, once the call's token may read it (a
        NamespaceView, which answers as the store does with the namespace filled in)."""
        return cast(VectorStore, self.store.in_namespace(require("read", request.namespace)))

    @_thumbnails_on_request
    def SearchText(self, request, context: grpc.ServicerContext) -> query_pb2.SearchImagesResponse:
        flt = filter_from_proto(request.filter) if request.HasField("filter") else None
        parts = tuple(_part(p) for p in request.parts)
        found = search.search_text(
            self.embedder,
            self._view(request),
            request.text,
            _page(request),
            flt,
            self.limits,
            parts,
            _mode(request.mode),
        )
        return query_pb2.SearchImagesResponse(
            results=[hit_to_proto(h) for h in found.hits],
            unknown_terms=found.unknown_terms,
            ignored_terms=found.ignored_terms,
            match_count=found.match_count,
        )

    @_thumbnails_on_request
    def SimilarImages(self, request, context: grpc.ServicerContext) -> query_pb2.SearchImagesResponse:
        flt = filter_from_proto(request.filter) if request.HasField("filter") else None
        source, page = _source(request), _page(request)
        hits = search.similar_images(
            self.embedder, self._view(request), source, page, flt, self.limits, request.include_self
        )
        return query_pb2.SearchImagesResponse(
            results=[hit_to_proto(h) for h in hits], match_count=search.match_count(hits)
        )

    def TagImage(self, request, context: grpc.ServicerContext) -> query_pb2.WordsResponse:
        view = self._view(request)
        return _words(search.tag_image(self.embedder, view, _source(request), request.k, self.limits))

    def SimilarWords(self, request, context: grpc.ServicerContext) -> query_pb2.WordsResponse:
        return _words(search.similar_words(self.embedder, self.store, request.word, request.k, self.limits))

    def Facet(self, request, context: grpc.ServicerContext) -> query_pb2.FacetResponse:
        flt = filter_from_proto(request.filter) if request.HasField("filter") else None
        counts = search.facet(self._view(request), request.metadata_key, flt, request.limit, self.limits)
        return query_pb2.FacetResponse(counts=[query_pb2.FacetCount(value=v, count=n) for v, n in counts])

    def GetImages(self, request, context: grpc.ServicerContext) -> query_pb2.GetImagesResponse:
        namespace = require("read", request.namespace)
        if len(request.ids) > self.limits.max_k:
            raise InvalidArgument(f"at most {self.limits.max_k} ids per call, got {len(request.ids)}")
        found = self.store.get_images(list(request.ids), namespace, request.with_vectors)
        have = {p.id for p in found}
        records = [record_to_proto(p, request.with_vectors) for p in found]
        replies.check_records_fit(records, replies.budget(self.limits))
        return query_pb2.GetImagesResponse(
            images=records, not_found=[i for i in request.ids if check_point_id(i) not in have]
        )

    def ListImages(self, request, context: grpc.ServicerContext) -> query_pb2.ListImagesResponse:
        if request.all_namespaces:
            require_every("read")
            namespace = None
        else:
            namespace = require("read", request.namespace)
        flt = filter_from_proto(request.filter) if request.HasField("filter") else None
        points, token = self.store.list_images(
            flt, namespace, request.limit or DEFAULT_PAGE, request.page_token, request.with_vectors
        )
        records = [record_to_proto(p, request.with_vectors) for p in points]
        fit = replies.records_that_fit(records, replies.budget(self.limits))
        if fit < len(records):  # the page ends early; the next one starts at the first left out
            token = point_id(points[fit].id, namespace_of(points[fit].payload))
        return query_pb2.ListImagesResponse(images=records[:fit], next_page_token=token)
