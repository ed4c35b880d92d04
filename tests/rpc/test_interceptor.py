"""The shared interceptor on a real server: domain errors become their status codes, anything
else INTERNAL, the token guards every service but health, and each RPC is counted."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imgsearch.config import Settings
from imgsearch.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from imgsearch.rpc.server import Registration, create_server
from imgsearch.telemetry.logs import JsonFormatter
from imgsearch.telemetry.metrics import RPC_REQUESTS

ERRORS = {
    "invalid": InvalidArgument("bad k"),
    "missing": NotFound("no image with id x"),
    "big": ResourceExhausted("over max_image_bytes"),
    "state": FailedPrecondition("vocabulary not loaded"),
    "down": Unavailable("embedder down"),
    "bug": ZeroDivisionError("division by zero"),
}


def _behaviour(request: bytes, context) -> bytes:
    key = request.decode()
    if key in ERRORS:
        raise ERRORS[key]
    return b"echo:" + request


def _stream(request: bytes, context):
    yield b"first"
    raise NotFound("gone mid-stream")


def _add(server: grpc.Server) -> None:
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(_behaviour),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))


def _serve(token: str | None = None):
    settings = replace(Settings.from_env({}), host="127.0.0.1", token=token)
    served = create_server(settings, [Registration("test.Echo", _add)], port=0, workers=4)
    served.set_serving(True)
    return served


@pytest.fixture(scope="module")
def channel():
    served = _serve()
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as ch:
        yield ch
    served.server.stop(0)


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("invalid", "INVALID_ARGUMENT"),
        ("missing", "NOT_FOUND"),
        ("big", "RESOURCE_EXHAUSTED"),
        ("state", "FAILED_PRECONDITION"),
        ("down", "UNAVAILABLE"),
        ("bug", "INTERNAL"),
    ],
)
def test_errors_become_their_status_codes(channel, key, code):
    echo = channel.unary_unary("/test.Echo/Echo")
    before = RPC_REQUESTS.labels("test.Echo", "Echo", code)._value.get()
    with pytest.raises(grpc.RpcError) as err:
        echo(key.encode(), timeout=5)
    assert err.value.code().name == code
    if code == "INTERNAL":  # an unexpected exception's text stays in the server log
        assert str(ERRORS[key]) not in err.value.details() and "internal error" in err.value.details()
    else:
        assert str(ERRORS[key]) in err.value.details()
    assert RPC_REQUESTS.labels("test.Echo", "Echo", code)._value.get() == before + 1


def test_success_and_streams(channel):
    assert channel.unary_unary("/test.Echo/Echo")(b"hi", timeout=5) == b"echo:hi"
    stream = channel.unary_stream("/test.Echo/Stream")(b"", timeout=5)
    assert next(stream) == b"first"
    with pytest.raises(grpc.RpcError) as err:
        next(stream)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_token_guards_services_but_not_health():
    served = _serve(token="t0ken")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{served.port}") as ch:
            echo = ch.unary_unary("/test.Echo/Echo")
            with pytest.raises(grpc.RpcError) as err:
                echo(b"x", timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert echo(b"x", timeout=5, metadata=(("authorization", "Bearer t0ken"),)) == b"echo:x"
            health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="test.Echo"))
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        served.server.stop(0)


def test_health_is_not_serving_until_ready():
    settings = replace(Settings.from_env({}), host="127.0.0.1")
    served = create_server(settings, [Registration("test.Echo", _add)], port=0, workers=2)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{served.port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            assert (
                stub.Check(health_pb2.HealthCheckRequest()).status
                == health_pb2.HealthCheckResponse.NOT_SERVING
            )
            served.set_serving(True)
            assert (
                stub.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
            )
    finally:
        served.server.stop(0)


def test_json_logs_are_one_object_per_line():
    record = logging.LogRecord("imgsearch", logging.INFO, __file__, 1, "served %s", ("x",), None)
    record.code = "NOT_FOUND"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "served x" and entry["level"] == "info" and entry["code"] == "NOT_FOUND"
    assert entry["time"].endswith("Z")


def test_failed_calls_are_logged_with_readable_details(channel, caplog):
    with caplog.at_level(logging.INFO, logger="imgsearch.rpc.interceptors"), pytest.raises(grpc.RpcError):
        channel.unary_unary("/test.Echo/Echo")(b"missing", timeout=5)
    record = next(r for r in caplog.records if getattr(r, "code", "") == "NOT_FOUND")
    assert record.getMessage() == "test.Echo/Echo -> NOT_FOUND: no image with id x"
