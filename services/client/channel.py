"""Client channels come from the project's one channel factory (imgsearch.rpc.channels):
round_robin, retry on UNAVAILABLE and waitForReady in the service config, message limits, TLS."""

from __future__ import annotations

import grpc

from imgsearch.rpc.channels import MAX_MESSAGE, make_channel

MAX_MESSAGE_BYTES = MAX_MESSAGE

# Every service of the contract plus health.
SERVICES = (
    "imagesearch.v1.Query",
    "imagesearch.v1.Indexer",
    "imagesearch.v1.Embedder",
    "grpc.health.v1.Health",
)


def create_channel(
    addr: str, *, tls_ca: str | None = None, max_message_bytes: int = MAX_MESSAGE_BYTES
) -> grpc.Channel:
    """An insecure channel, or a TLS one trusting the CA file `tls_ca` (PEM)."""
    return make_channel(addr, SERVICES, tls_ca=tls_ca, max_message_bytes=max_message_bytes)
