"""Creating a gRPC server with health, reflection and the shared interceptor.

`create_server` binds the port and returns it, so tests use port 0 and read the real one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from imgsearch.config import Settings
from imgsearch.rpc.interceptors import ServingInterceptor
from imgsearch.rpc.policy import CallPolicy, policy_for

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class Registration:
    """A servicer to add: its full service name and the generated `add_XServicer_to_server`."""

    name: str
    add: Callable[[grpc.Server], None]


@dataclass
class Served:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    names: tuple[str, ...]
    policy: CallPolicy | None = None  # who may call and the caps, shared with the HTTP side
    serving: bool = False
    draining: bool = False  # set when the drain starts (stop): the HTTP side refuses new calls

    def set_serving(self, serving: bool = True) -> None:
        """Reports every registered service (and the overall "" service) as SERVING or not."""
        self.serving = serving
        status = SERVING if serving else NOT_SERVING
        for name in ("", *self.names):
            self.health.set(name, status)


def server_options(settings: Settings) -> list[tuple[str, int]]:
    size = settings.limits.max_message_bytes
    return [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.so_reuseport", 0),
    ]


# Clients re-resolve DNS when a connection ends: ageing connections out lets embedder replicas that
# an autoscaler adds receive traffic within minutes. Only for servers of short calls (not Ingest
# streams, which could outlive the grace period).
AGE_OUT_CONNECTIONS = [("grpc.max_connection_age_ms", 300_000), ("grpc.max_connection_age_grace_ms", 60_000)]


# Workers beyond max_concurrent_calls: health checks, reflection and the refusals of calls past
# the caps always find a free worker, however busy the capped calls keep the others.
SPARE_WORKERS = 8


def check_tls(settings: Settings) -> None:
    """Fails closed: a certificate without its key (or a key without its certificate) is a
    mistake to stop on, never a reason to serve plaintext."""
    if bool(settings.tls_cert) != bool(settings.tls_key):
        given, missing = (
            ("IMGSEARCH_TLS_CERT", "IMGSEARCH_TLS_KEY")
            if settings.tls_cert
            else ("IMGSEARCH_TLS_KEY", "IMGSEARCH_TLS_CERT")
        )
        raise ValueError(
            f"{given} is set but {missing} is not: set both to serve TLS, or neither to serve plaintext"
        )
    if settings.token is not None and not settings.token.strip():
        raise ValueError("IMGSEARCH_TOKEN is blank: set a real secret, or unset it to serve without a token")


def create_server(
    settings: Settings,
    registrations: Sequence[Registration],
    port: int | None = None,
    workers: int | None = None,
    extra_options: Sequence[tuple[str, int]] = (),
    policy: CallPolicy | None = None,
) -> Served:
    """Builds, binds and starts a server; health starts NOT_SERVING until `set_serving()`.
    `policy`: the call policy it shares with the HTTP side (default: its own, from `settings`).

    ValueError for a partial TLS configuration or a token file that cannot be used, OSError when
    the port or the TLS files fail."""
    check_tls(settings)
    policy = policy or policy_for(settings)
    limits = settings.limits
    workers = workers or limits.max_concurrent_calls + SPARE_WORKERS
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        interceptors=[ServingInterceptor(policy)],
        options=[*server_options(settings), *extra_options],
        maximum_concurrent_rpcs=max(workers, limits.max_concurrent_calls) * 16,
    )
    for reg in registrations:
        reg.add(server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = tuple(reg.name for reg in registrations)
    reflection.enable_server_reflection(
        (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.port if port is None else port}"
    if settings.tls_cert and settings.tls_key:
        with open(settings.tls_key, "rb") as k, open(settings.tls_cert, "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        bound = server.add_secure_port(address, creds)
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise OSError(f"could not bind {address}")
    served = Served(server, bound, health_servicer, names, policy)
    served.set_serving(False)
    server.start()
    log.info(
        "listening on %s:%d (%s): TLS %s, token %s",
        settings.host,
        bound,
        ", ".join(names) or "health only",
        "on" if settings.tls_cert else "off (plaintext)",
        "required" if settings.token or settings.tokens_file else "off (no authentication)",
    )
    return served
