"""Prometheus metrics of every service, served on IMGSEARCH_METRICS_PORT when it is set."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

RPC_REQUESTS = Counter("imgsearch_rpc_requests_total", "RPCs handled", ["service", "method", "code"])
RPC_LATENCY = Histogram(
    "imgsearch_rpc_latency_seconds",
    "RPC latency",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "imgsearch_embedder_batch_size", "Images per CNN forward pass", buckets=(1, 2, 4, 8, 16, 24, 32)
)
IMAGES_EMBEDDED = Counter("imgsearch_images_embedded_total", "Images run through the CNN")
IMAGES_FAILED = Counter("imgsearch_images_failed_total", "Images refused or undecodable", ["code"])
IMAGES_INGESTED = Counter("imgsearch_images_ingested_total", "Images stored by the indexer", ["status"])
STORE_POINTS = Gauge("imgsearch_store_points", "Points in the vector store", ["collection"])
HTTP_REQUESTS = Counter(
    "imgsearch_http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "imgsearch_http_latency_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> int:
    """Serves /metrics on `port` (0 = disabled) on the interface `host` ("[::]" = every one, as for
    the gRPC port); returns the port or 0."""
    if port <= 0:
        return 0
    addr = host.strip("[]") or "0.0.0.0"
    start_http_server(port, addr="127.0.0.1" if addr == "localhost" else addr)
    log.info("metrics on %s:%d/metrics", host, port)
    return port
