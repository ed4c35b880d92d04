"""The one client of the Embedder service: remote replicas behind the same methods as
EmbedderRuntime (the `Embedder` protocol), so the indexer and query services use either without
knowing which, and the Python client's embedder calls go through it too.

Balancing (round_robin) and retrying UNAVAILABLE on another replica are the channel's job
(imgsearch.rpc.channels); this class adds deadlines and maps failures to domain errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import grpc
import numpy as np

from imgsearch.embedder import convert
from imgsearch.embedder.results import (
    ClassScores,
    ImageOutcome,
    ModelInfo,
    TextEmbedding,
    Thumbnailer,
    VocabularyChunk,
)
from imgsearch.errors import ServiceError, Unavailable, error_for_code
from imgsearch.protogen.imagesearch.v1 import embedder_pb2, embedder_pb2_grpc
from imgsearch.rpc.channels import auth_metadata, make_channel
from imgsearch.rpc.status import rpc_status

SERVICE = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name
T = TypeVar("T")


def error_from_rpc(exc: grpc.RpcError, what: str) -> ServiceError:
    """A domain error for a failed call: the dependency's own status where it is the caller's
    fault (INVALID_ARGUMENT, NOT_FOUND...), UNAVAILABLE when the dependency is down or slow."""
    code, details = rpc_status(exc)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return Unavailable(f"{what} unavailable ({code.name}): {details}")
    return error_for_code(code.name, details or code.name)


class RemoteEmbedder:
    """Embedder replicas at `addresses` (its own balancing channel), or the Embedder service on a
    channel the caller owns (`on_channel`, as the Python client does)."""

    def __init__(
        self,
        addresses: str | Sequence[str],
        *,
        token: str | None = None,
        tls_ca: str | None = None,
        timeout: float = 60.0,
    ):
        channel = make_channel(
            addresses, [SERVICE], tls_ca=tls_ca, health_service=SERVICE, wait_for_ready=False
        )
        self._setup(channel, str(addresses), auth_metadata(token), timeout, None, owns_channel=True)

    @classmethod
    def on_channel(
        cls,
        channel: grpc.Channel,
        *,
        metadata: tuple[tuple[str, str], ...] = (),
        timeout: float = 60.0,
        wait_for_ready: bool | None = None,
        what: str = "embedder",
    ) -> RemoteEmbedder:
        self = cls.__new__(cls)
        self._setup(channel, what, metadata, timeout, wait_for_ready, owns_channel=False)
        return self

    def _setup(
        self,
        channel: grpc.Channel,
        what: str,
        metadata: tuple[tuple[str, str], ...],
        timeout: float,
        wait_for_ready: bool | None,
        owns_channel: bool,
    ) -> None:
        self.addresses = what
        self._channel = channel
        self._stub = embedder_pb2_grpc.EmbedderStub(channel)
        self._metadata = metadata
        self._timeout = timeout
        self._wait_for_ready = wait_for_ready
        self._owns_channel = owns_channel

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def _call(self, fn: Callable[..., T], request, timeout: float | None = None) -> T:
        try:
            return fn(
                request,
                timeout=timeout or self._timeout,
                metadata=self._metadata,
                wait_for_ready=self._wait_for_ready,
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, f"embedder at {self.addresses}") from exc

    def embed_images(self, images: list[bytes], thumbnail: Thumbnailer | None = None) -> list[ImageOutcome]:
        """`thumbnail` is not made here: the pictures are decoded in the replica (the caller makes
        its thumbnails from the bytes)."""
        response = self._call(self._stub.EmbedImages, embedder_pb2.EmbedImagesRequest(images=images))
        return [convert.outcome_from_proto(m) for m in response.embeddings]

    def embed_text(self, text: str) -> TextEmbedding:
        r = self._call(self._stub.EmbedText, embedder_pb2.EmbedTextRequest(text=text), timeout=10.0)
        return TextEmbedding(
            np.asarray(r.vector, np.float32),
            list(r.known_words),
            list(r.unknown_words),
            convert.classes_from_proto(r.classes),
        )

    def model_info(self) -> ModelInfo:
        msg = self._call(self._stub.GetModelInfo, embedder_pb2.GetModelInfoRequest(), timeout=10.0)
        return convert.model_info_from_proto(msg)

    def embed_features(self, features: np.ndarray) -> np.ndarray:
        request = embedder_pb2.EmbedFeaturesRequest(features=convert.vectors_from_matrix(features))
        return convert.matrix_from_vectors(self._call(self._stub.EmbedFeatures, request).semantic)

    def classify_features(self, features: np.ndarray) -> list[ClassScores]:
        request = embedder_pb2.EmbedFeaturesRequest(features=convert.vectors_from_matrix(features))
        return [convert.classes_from_proto(c) for c in self._call(self._stub.EmbedFeatures, request).classes]

    def vocabulary(self, limit: int = 0, chunk_size: int = 5000) -> Iterator[VocabularyChunk]:
        request = embedder_pb2.StreamVocabularyRequest(limit=limit, chunk_size=chunk_size)
        try:
            for msg in self._stub.StreamVocabulary(request, timeout=600, metadata=self._metadata):
                yield convert.chunk_from_proto(msg)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, f"embedder at {self.addresses}") from exc
