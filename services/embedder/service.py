"""The Embedder gRPC servicer: unpack, call EmbedderRuntime, pack."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from imgsearch.embedder import convert
from imgsearch.embedder.runtime import EmbedderRuntime
from imgsearch.errors import InvalidArgument, ResourceExhausted
from imgsearch.protogen.imagesearch.v1 import embedder_pb2, embedder_pb2_grpc

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
            vector=result.vector.tolist(),
            known_words=result.known_words,
            unknown_words=result.unknown_words,
            classes=convert.classes_to_proto(result.classes),
        )

    def GetModelInfo(self, request, context: grpc.ServicerContext) -> embedder_pb2.ModelInfo:
        return convert.model_info_to_proto(self.runtime.model_info())

    def EmbedFeatures(self, request, context: grpc.ServicerContext) -> embedder_pb2.EmbedFeaturesResponse:
        if not request.features:
            raise InvalidArgument("no features in the request")
        if len(request.features) > self.runtime.limits.max_images_per_request:
            raise ResourceExhausted(
                f"{len(request.features)} feature vectors, over the limit max_images_per_request="
                f"{self.runtime.limits.max_images_per_request}"
            )
        features = convert.matrix_from_vectors(request.features)
        semantic = self.runtime.embed_features(features)
        classes = self.runtime.classify_features(features)
        return embedder_pb2.EmbedFeaturesResponse(
            semantic=convert.vectors_from_matrix(semantic),
            classes=[convert.classes_to_proto(c) for c in classes],
        )

    def StreamVocabulary(
        self, request, context: grpc.ServicerContext
    ) -> Iterator[embedder_pb2.VocabularyChunk]:
        for chunk in self.runtime.vocabulary(request.limit, request.chunk_size):
            yield convert.chunk_to_proto(chunk)
