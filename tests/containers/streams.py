"""gRPC ingest streams of real photos for the load the container tests put on a server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

from imgsearch.protogen.imagesearch.v1 import indexer_pb2, indexer_pb2_grpc

MAX_MESSAGE = 64 * 1024 * 1024


def indexer(addr: str) -> tuple[grpc.Channel, indexer_pb2_grpc.IndexerStub]:
    channel = grpc.insecure_channel(
        addr,
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
        ],
    )
    return channel, indexer_pb2_grpc.IndexerStub(channel)


def photo_requests(
    photos: dict[str, Path], copies: int, first: int = 0, on_each: Callable[[int], None] | None = None
) -> Iterator[indexer_pb2.IngestRequest]:
    """Each photo `copies` times with distinct bytes (trailing zero bytes after the image data, so
    each copy is a new image); `on_each(i)` is called before the i-th request is sent."""
    i = 0
    for copy in range(first, first + copies):
        for name, path in sorted(photos.items()):
            if on_each:
                on_each(i)
            yield indexer_pb2.IngestRequest(
                image=path.read_bytes() + b"\0" * copy, uri=f"{path}#{copy}", label=name
            )
            i += 1


def stored_images(stub: indexer_pb2_grpc.IndexerStub) -> int:
    return stub.GetStats(indexer_pb2.GetStatsRequest(), timeout=30).images
