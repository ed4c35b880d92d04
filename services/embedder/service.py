"""The Embedder gRPC servicer: unpack, call EmbedderRuntime, pack."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from services.embedder import convert
from services.embedder.runtime import EmbedderRuntime
from services.errors import InvalidArgument
from services.protogen.imagesearch.v1 import embedder_pb2, embedder_pb2_grpc

SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name


class EmbedderServicer(embedder_pb2_grpc.EmbedderServicer):
    def __init__(self, runtime: EmbedderRuntime):
        self.runtime = runtime

    def EmbedImages(self, request, context: grpc.ServicerContext) -> embedder_pb2.EmbedImagesResponse:
        if not request.images:
            raise InvalidArgument("no images in the request")
        outcomes = self.runtime.embed_images(list(request.images))
        return embedder_pb2.EmbedImagesResponse(embeddings=[convert.outcome_to_proto(o) for o in outcomes])

    def EmbedText(self, request, context: grpc.ServicerContext) -> embedder_pb2.EmbedTextResponse:
        result = self.runtime.embed_text(request.text)
        return embedder_pb2.EmbedTextResponse(
            vector=result.vector.tolist(), known_words=result.known, unknown_words=result.unknown
        )

    def GetModelInfo(self, request, context: grpc.ServicerContext) -> embedder_pb2.ModelInfo:
        return convert.model_info_to_proto(self.runtime.model_info())

    def StreamVocabulary(
        self, request, context: grpc.ServicerContext
    ) -> Iterator[embedder_pb2.VocabularyChunk]:
        for chunk in self.runtime.vocabulary(request.limit, request.chunk_size):
            yield convert.chunk_to_proto(chunk)
