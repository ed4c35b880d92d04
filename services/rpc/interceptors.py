"""One server interceptor for the cross-cutting work of every RPC: the shared-secret check,
metrics and logs, and turning domain errors (imgsearch.errors) into gRPC status codes.

Servicers stay thin: they raise `ServiceError`s and never build status codes themselves.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from imgsearch.errors import ServiceError
from imgsearch.rpc.metrics import RPC_LATENCY, RPC_REQUESTS

log = logging.getLogger(__name__)

# Health and reflection must answer without the token: probes and grpcurl discovery use them.
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


class ServingInterceptor(grpc.ServerInterceptor):
    """Auth (when a token is configured), metrics, logging and error mapping for every RPC."""

    def __init__(self, token: str | None = None):
        self._token = token
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # per method: built once, not per call

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        service, method = _split(details.method)
        if self._token and not service.startswith(OPEN_SERVICES):
            metadata = dict(details.invocation_metadata or ())
            given = metadata.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
                return _refusal(handler, "missing or wrong token (metadata authorization: Bearer <token>)")
        wrapped = self._wrapped.get(details.method)
        if wrapped is None:
            wrapped = self._wrapped[details.method] = _wrap(handler, service, method)
        return wrapped


def _abort_for(exc: BaseException, context: grpc.ServicerContext, service: str, method: str) -> None:
    """Ends the call with the status that fits `exc`."""
    if isinstance(exc, ServiceError):
        context.abort(getattr(grpc.StatusCode, exc.code_name), exc.message)
    if context.code() not in (None, grpc.StatusCode.OK):
        raise exc  # the servicer already aborted
    log.exception("internal error in %s/%s", service, method)
    context.abort(grpc.StatusCode.INTERNAL, "internal error (the server log has the details)")


def _text(details: str | bytes | None) -> str:
    """Status details as text (grpc hands them back as bytes)."""
    if isinstance(details, bytes):
        return details.decode("utf-8", "replace")
    return details or ""


def _record(service: str, method: str, start: float, context: grpc.ServicerContext) -> None:
    code = context.code() or grpc.StatusCode.OK
    name = code.name if isinstance(code, grpc.StatusCode) else str(code)
    elapsed = time.perf_counter() - start
    RPC_REQUESTS.labels(service, method, name).inc()
    RPC_LATENCY.labels(service, method).observe(elapsed)
    if name != "OK":
        log.info(
            "%s/%s -> %s: %s",
            service,
            method,
            name,
            _text(context.details()),
            extra={
                "service": service,
                "method": method,
                "code": name,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )


def _wrap(handler: grpc.RpcMethodHandler, service: str, method: str) -> grpc.RpcMethodHandler:
    def unary_response(behavior: Callable) -> Callable:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                return behavior(request, context)
            except Exception as exc:  # noqa: BLE001 - every error must become a status
                _abort_for(exc, context, service, method)
            finally:
                _record(service, method, start, context)

        return call

    def stream_response(behavior: Callable) -> Callable:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            try:
                yield from behavior(request, context)
            except Exception as exc:  # noqa: BLE001
                _abort_for(exc, context, service, method)
            finally:
                _record(service, method, start, context)

        return call

    return _rebuild(handler, unary_response, stream_response)


def _refusal(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return _rebuild(handler, lambda _: deny, lambda _: deny)


def _rebuild(
    handler: grpc.RpcMethodHandler, wrap_unary: Callable, wrap_stream: Callable
) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` whose behaviour is wrapped (unary or streaming response)."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap_unary(handler.unary_unary), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap_unary(handler.stream_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap_stream(handler.unary_stream), **kwargs)
    return grpc.stream_stream_rpc_method_handler(wrap_stream(handler.stream_stream), **kwargs)
