"""One server interceptor for the cross-cutting work of every RPC: the shared-secret check,
concurrency caps, the idle timeout of client streams, metrics and logs, and turning domain errors
(imgsearch.errors) into gRPC status codes.

Servicers stay thin: they raise `ServiceError`s and never build status codes themselves.

No client can hold the server: calls past `max_concurrent_calls` (client streams past
`max_concurrent_streams`) are refused at once with RESOURCE_EXHAUSTED, a client stream that sends
nothing for `stream_idle_seconds` is ended with DEADLINE_EXCEEDED, and health and reflection are
never counted (the server keeps workers beyond the caps free for them). A request that does not
parse is INVALID_ARGUMENT; a call the client cancelled is CANCELLED and logged at INFO.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from imgsearch.errors import InvalidArgument, ServiceError, StreamIdle
from imgsearch.rpc import scopes
from imgsearch.rpc.policy import CallError, CallPolicy, status_of
from imgsearch.telemetry.metrics import RPC_LATENCY, RPC_REQUESTS

log = logging.getLogger(__name__)


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


class Malformed:
    """Stands in for a request message that did not parse (grpc would answer INTERNAL)."""

    def __init__(self, error: Exception):
        self.error = error


class ServingInterceptor(grpc.ServerInterceptor):
    """Auth (when a token is configured), caps, metrics, logging and error mapping for every RPC,
    by the server's CallPolicy (policy.py), which the HTTP side shares."""

    def __init__(self, policy: CallPolicy):
        self.policy = policy
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # per method: built once, not per call

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        service, method = _split(details.method)
        metadata = dict(details.invocation_metadata or ())
        try:
            scope = self.policy.authorize(details.method, metadata.get("authorization", ""))
        except CallError as refused:
            return _refusal(handler, refused.code, refused.message)
        wrapped = self._wrapped.get(details.method)
        if wrapped is None:
            wrapped = self._wrapped[details.method] = _wrap(handler, service, method, self.policy)
        # a scoped token's calls run with its scope, which the servicers check per namespace
        return wrapped if scope is scopes.FULL else _in_scope(wrapped, scope)


def _client_ended(context: grpc.ServicerContext) -> str | None:
    """The code of a call the client already ended (cancelled, or past its deadline), else None."""
    if context.is_active():
        return None
    remaining = context.time_remaining()
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"


def _abort_for(exc: BaseException, context: grpc.ServicerContext, service: str, method: str) -> None:
    """Ends the call with the status that fits `exc` (raises, as context.abort does)."""
    if _client_ended(context):  # nobody to answer: end quietly (no traceback, no answer to serialize)
        context.abort(grpc.StatusCode.CANCELLED, "the client ended the call")
    if isinstance(exc, (ServiceError, CallError)):
        status = status_of(exc)
        context.abort(status.code, status.message)
    if context.code() not in (None, grpc.StatusCode.OK):
        raise exc  # the servicer already aborted
    log.exception("internal error in %s/%s", service, method)
    status = status_of(exc)
    context.abort(status.code, status.message)


def _text(details: str | bytes | None) -> str:
    """Status details as text (grpc hands them back as bytes)."""
    if isinstance(details, bytes):
        return details.decode("utf-8", "replace")
    return details or ""


def _record(
    service: str, method: str, start: float, context: grpc.ServicerContext, ended: str | None = None
) -> None:
    """Counts and times the call; `ended`: the code of a call the client ended (not in context)."""
    code = context.code() or grpc.StatusCode.OK
    name = ended or (code.name if isinstance(code, grpc.StatusCode) else str(code))
    elapsed = time.perf_counter() - start
    RPC_REQUESTS.labels(service, method, name).inc()
    RPC_LATENCY.labels(service, method).observe(elapsed)
    if name != "OK":
        log.info(
            "%s/%s -> %s: %s",
            service,
            method,
            name,
            _text(context.details()) if ended is None else "ended by the client",
            extra={
                "service": service,
                "method": method,
                "code": name,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )


def _wrap(
    handler: grpc.RpcMethodHandler, service: str, method: str, policy: CallPolicy
) -> grpc.RpcMethodHandler:
    streaming = bool(handler.request_streaming)
    idle = policy.limits.stream_idle_seconds
    full_name = f"/{service}/{method}"

    def admit(request: Any, context: grpc.ServicerContext) -> tuple[Any, Callable[[], None]]:
        """The request (client streams: bounded by the idle timeout) and the slot's release."""
        try:
            release = policy.enter(full_name, streaming)
        except CallError as full:
            context.abort(full.code, full.message)
        if streaming:
            return _checked_stream(request, idle), release
        if isinstance(request, Malformed):
            release()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request message: {request.error}")
        return request, release

    def unary_response(behavior: Callable) -> Callable:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            ended = None
            release = _released
            try:
                request, release = admit(request, context)
                response = behavior(request, context)
                # a client stream the client cancelled may look ended to the servicer: its answer
                # goes nowhere, and the call counts as what it was
                ended = _client_ended(context)
                return response
            except Exception as exc:  # noqa: BLE001 - every error must become a status
                ended = _client_ended(context)
                _abort_for(exc, context, service, method)
            finally:
                release()
                _record(service, method, start, context, ended)

        return call

    def stream_response(behavior: Callable) -> Callable:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            ended = None
            release = _released
            try:
                request, release = admit(request, context)
                yield from behavior(request, context)
            except Exception as exc:  # noqa: BLE001
                ended = _client_ended(context)
                _abort_for(exc, context, service, method)
            finally:
                release()
                _record(service, method, start, context, ended)

        return call

    return _rebuild(handler, unary_response, stream_response)


def _released() -> None:
    """What a call that took no slot releases."""


_END = object()


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def _checked_stream(requests: Iterator[Any], idle: float) -> Iterator[Any]:
    """The client's messages, each checked to have parsed; with `idle` > 0, StreamIdle when the
    client sends nothing for `idle` seconds.

    gRPC's request iterator cannot wait with a timeout, so a reader thread takes the messages
    and hands them over one at a time (it never reads ahead more than one, so a fast client is
    held back by flow control, as without it). The reader ends with the call."""
    if idle <= 0:
        for request in requests:
            yield _parsed(request)
        return
    handoff: queue.Queue = queue.Queue(maxsize=1)
    done = threading.Event()

    def read() -> None:
        try:
            for request in requests:
                if not _put(handoff, request, done):
                    return
            _put(handoff, _END, done)
        except BaseException as exc:  # noqa: BLE001 - the consumer re-raises it
            _put(handoff, _Raised(exc), done)

    threading.Thread(target=read, name="stream-reader", daemon=True).start()
    try:
        while True:
            try:
                item = handoff.get(timeout=idle)
            except queue.Empty:
                raise StreamIdle(
                    f"the stream sent nothing for {idle:g} s (stream_idle_seconds); send messages "
                    "steadily or close the stream"
                ) from None
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield _parsed(item)
    finally:
        done.set()  # the reader stops handing over (it ends with the call)


def _put(handoff: queue.Queue, item: Any, done: threading.Event) -> bool:
    """Hands one item over, waiting for the consumer; False once the consumer is gone."""
    while not done.is_set():
        try:
            handoff.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False


def _parsed(request: Any) -> Any:
    if isinstance(request, Malformed):
        raise InvalidArgument(f"malformed request message: {request.error}")
    return request


def _in_scope(handler: grpc.RpcMethodHandler, scope: scopes.Scope) -> grpc.RpcMethodHandler:
    """`handler` running with `scope` as the call's scope (set in the thread that runs the call)."""

    def unary(behavior: Callable) -> Callable:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            with scopes.acting_as(scope):
                return behavior(request, context)

        return call

    def stream(behavior: Callable) -> Callable:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with scopes.acting_as(scope):
                yield from behavior(request, context)

        return call

    return _rebuild(handler, unary, stream, tolerant=False)  # its deserializer is tolerant already


def _refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return _rebuild(handler, lambda _: deny, lambda _: deny)


def _rebuild(
    handler: grpc.RpcMethodHandler, wrap_unary: Callable, wrap_stream: Callable, tolerant: bool = True
) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` whose behaviour is wrapped (unary or streaming
    response); `tolerant` makes its deserializer answer bytes that do not parse (see _tolerant)."""
    deserializer = handler.request_deserializer
    kwargs = {
        "request_deserializer": _tolerant(deserializer) if tolerant else deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap_unary(handler.unary_unary), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap_unary(handler.stream_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap_stream(handler.unary_stream), **kwargs)
    return grpc.stream_stream_rpc_method_handler(wrap_stream(handler.stream_stream), **kwargs)


def _tolerant(deserializer: Callable | None) -> Callable | None:
    """A deserializer that never raises: bytes that do not parse become `Malformed`, answered as
    INVALID_ARGUMENT by the wrapped behaviour (grpc itself would answer INTERNAL)."""
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
            return Malformed(exc)

    return parse
