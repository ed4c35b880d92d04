"""The caps of the shared interceptor on a real gRPC server: busy calls past the cap are refused at
once and health still answers, idle client streams end after the idle timeout, a request that does
not parse is INVALID_ARGUMENT, and a long error message is cut before it reaches the client."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imgsearch.config import Settings
from imgsearch.config.settings import Limits
from imgsearch.errors import InvalidArgument
from imgsearch.protogen.imagesearch.v1 import indexer_pb2
from imgsearch.rpc.server import Registration, create_server

CALLS, STREAMS, IDLE = 3, 2, 1.0
release = threading.Event()


def _block(request: bytes, context) -> bytes:
    release.wait(30)
    return b"done"


def _long_error(request: bytes, context) -> bytes:
    raise InvalidArgument("x" * 100_000)


def _count(requests, context) -> bytes:
    return str(sum(1 for _ in requests)).encode()


def _parsed(request, context):
    return indexer_pb2.GetStatsRequest()


def _add(server: grpc.Server) -> None:
    handlers = {
        "Block": grpc.unary_unary_rpc_method_handler(_block),
        "LongError": grpc.unary_unary_rpc_method_handler(_long_error),
        "Count": grpc.stream_unary_rpc_method_handler(_count),
        "Parsed": grpc.unary_unary_rpc_method_handler(
            _parsed,
            request_deserializer=indexer_pb2.GetStatsRequest.FromString,
            response_serializer=indexer_pb2.GetStatsRequest.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Caps", handlers),))


@pytest.fixture(scope="module")
def channel():
    limits = replace(
        Limits(), max_concurrent_calls=CALLS, max_concurrent_streams=STREAMS, stream_idle_seconds=IDLE
    )
    settings = replace(Settings.from_env({}), host="127.0.0.1", limits=limits)
    served = create_server(settings, [Registration("test.Caps", _add)], port=0)
    served.set_serving(True)
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as ch:
        yield ch
    release.set()
    served.server.stop(0)


def _health(channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status


def test_calls_past_the_cap_are_refused_at_once_and_health_still_answers(channel):
    block = channel.unary_unary("/test.Caps/Block")
    release.clear()
    busy = [block.future(b"", timeout=30) for _ in range(CALLS)]
    try:
        time.sleep(0.5)
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            block(b"", timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrent_calls" in err.value.details()
        assert time.monotonic() - start < 1.0  # refused, not queued
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
    finally:
        release.set()
    assert [f.result(timeout=10) for f in busy] == [b"done"] * CALLS
    assert block(b"", timeout=10) == b"done"  # the slots came back


def test_idle_client_streams_end_and_free_their_slot(channel):
    count = channel.stream_unary("/test.Caps/Count")
    stop = threading.Event()

    def idle():
        yield b"one"
        stop.wait(30)
        return
        yield

    held = [count.future(idle(), timeout=30) for _ in range(STREAMS)]
    try:
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as err:
            count(iter([b"a"]), timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrent_streams" in err.value.details()
        for f in held:
            with pytest.raises(grpc.RpcError) as ended:
                f.result(timeout=IDLE + 5)
            assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "stream_idle_seconds" in ended.value.details()
    finally:
        stop.set()
    assert count(iter([b"a", b"b", b"c"]), timeout=5) == b"3"  # a stream that keeps sending is fine


def test_bytes_that_do_not_parse_are_invalid_argument(channel):
    parsed = channel.unary_unary("/test.Caps/Parsed")
    with pytest.raises(grpc.RpcError) as err:
        parsed(b"\xff\xff\xff\xff", timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in err.value.details()
    assert parsed(b"", timeout=5) == b""  # an empty message parses


def test_a_long_error_message_is_cut(channel):
    with pytest.raises(grpc.RpcError) as err:
        channel.unary_unary("/test.Caps/LongError")(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(err.value.details()) < 1100
