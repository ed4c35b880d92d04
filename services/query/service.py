"""The Query gRPC servicer: unpack, call imgsearch.query.search, pack."""

from __future__ import annotations

import grpc

from imgsearch.config import Settings
from imgsearch.embedder.results import Embedder
from imgsearch.protogen.imagesearch.v1 import common_pb2, query_pb2, query_pb2_grpc
from imgsearch.query import search
from imgsearch.rpc.convert import filter_from_proto, hit_to_proto
from imgsearch.vectorstore.base import VectorStore

SERVICE_NAME = query_pb2.DESCRIPTOR.services_by_name["Query"].full_name


def _source(request) -> search.ImageSource:
    which = request.WhichOneof("source")
    return search.ImageSource(
        image=request.image if which == "image" else b"", id=request.id if which == "id" else ""
    )


def _words(pairs: list[tuple[str, float]]) -> query_pb2.WordsResponse:
    return query_pb2.WordsResponse(results=[common_pb2.WordHit(word=w, score=s) for w, s in pairs])


class QueryServicer(query_pb2_grpc.QueryServicer):
    def __init__(self, embedder: Embedder, store: VectorStore, settings: Settings):
        self.embedder = embedder
        self.store = store
        self.limits = settings.limits

    def SearchText(self, request, context: grpc.ServicerContext) -> query_pb2.SearchImagesResponse:
        flt = filter_from_proto(request.filter) if request.HasField("filter") else None
        hits, unknown = search.search_text(
            self.embedder, self.store, request.text, request.k, flt, self.limits
        )
        return query_pb2.SearchImagesResponse(results=[hit_to_proto(h) for h in hits], unknown_terms=unknown)

    def SimilarImages(self, request, context: grpc.ServicerContext) -> query_pb2.SearchImagesResponse:
        flt = filter_from_proto(request.filter) if request.HasField("filter") else None
        hits = search.similar_images(self.embedder, self.store, _source(request), request.k, flt, self.limits)
        return query_pb2.SearchImagesResponse(results=[hit_to_proto(h) for h in hits])

    def TagImage(self, request, context: grpc.ServicerContext) -> query_pb2.WordsResponse:
        return _words(search.tag_image(self.embedder, self.store, _source(request), request.k, self.limits))

    def SimilarWords(self, request, context: grpc.ServicerContext) -> query_pb2.WordsResponse:
        return _words(search.similar_words(self.embedder, self.store, request.word, request.k, self.limits))
