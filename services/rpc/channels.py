"""The one channel factory: round_robin over replicas, retries on UNAVAILABLE via the service
config (never hand-written loops), wait-for-ready, message limits, token and TLS.

A target is a list of addresses (`host:port,host:port`, resolved once to IPs) or one gRPC target
name (`dns:///embedder:50051` re-resolves, which is what a headless Kubernetes Service wants).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence

import grpc

MAX_MESSAGE = 64 * 1024 * 1024


def service_config(
    services: Sequence[str], health_service: str | None = None, wait_for_ready: bool = True
) -> str:
    """Retry UNAVAILABLE on another replica (round_robin picks the next one) with backoff.

    wait_for_ready: calls wait (up to their deadline) for a replica to connect, as a client
    starting beside its server wants; services calling services say False, so that with every
    replica down a call fails fast with UNAVAILABLE instead of hanging until its deadline."""
    config: dict = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": s} for s in services],
                "waitForReady": wait_for_ready,
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
    if health_service is not None:
        config["healthCheckConfig"] = {"serviceName": health_service}
    return json.dumps(config)


def resolve_target(addresses: str | Sequence[str]) -> str:
    """One gRPC target for one address, a `dns:///` name, or a list of host:port (as ipv4:/ipv6:)."""
    items = [a.strip() for a in ([addresses] if isinstance(addresses, str) else addresses)]
    items = [p.strip() for a in items for p in a.split(",") if p.strip()]
    if not items:
        raise ValueError("no address given")
    if len(items) == 1:
        return items[0]
    resolved = []
    for item in items:
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        info = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        ip = str(info[0][4][0])
        resolved.append(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
    if any(r.startswith("[") for r in resolved):
        return "ipv6:" + ",".join(resolved)
    return "ipv4:" + ",".join(resolved)


def channel_options(
    services: Sequence[str],
    health_service: str | None = None,
    max_message_bytes: int = MAX_MESSAGE,
    wait_for_ready: bool = True,
) -> list[tuple[str, object]]:
    """Options of every channel: limits, keepalive, retries and balancing (see service_config)."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.enable_retries", 1),
        ("grpc.per_rpc_retry_buffer_size", max_message_bytes),
        ("grpc.retry_buffer_size", 4 * max_message_bytes),
        ("grpc.service_config", service_config(services, health_service, wait_for_ready)),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]


def make_channel(
    addresses: str | Sequence[str],
    services: Sequence[str],
    *,
    tls_ca: str | None = None,
    health_service: str | None = None,
    max_message_bytes: int = MAX_MESSAGE,
    wait_for_ready: bool = True,
) -> grpc.Channel:
    """A channel to `addresses` that balances and retries calls to `services` (full names).

    The retry buffer holds a whole request, so even a 32-image batch is retried on another
    replica when the one serving it dies mid-call.
    """
    options = channel_options(services, health_service, max_message_bytes, wait_for_ready)
    target = resolve_target(addresses)
    if tls_ca:
        with open(tls_ca, "rb") as f:
            return grpc.secure_channel(target, grpc.ssl_channel_credentials(f.read()), options=options)
    return grpc.insecure_channel(target, options=options)


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
