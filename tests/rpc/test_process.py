"""ServerProcess: a real `imgsearch serve` child, waited for by its health check."""

from __future__ import annotations

import socket

import pytest

from imgsearch.app.process import ServerExited, ServerProcess, free_port


def test_free_port_is_bindable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))


def test_a_server_that_exits_is_reported_with_its_log(tmp_path):
    server = ServerProcess(tmp_path, "indexer", env={"PATH": "/usr/bin:/bin"})  # no embedder address
    with pytest.raises(ServerExited) as info:
        server.wait_serving(timeout=120)
    assert "status 2" in str(info.value) and "IMGSEARCH_EMBEDDER" in str(info.value)
    server.kill()


def test_a_server_still_starting_is_not_serving_and_stops_at_once_on_sigterm(tmp_path):
    dead = f"127.0.0.1:{free_port()}"  # nobody listens: the query service waits for its embedder
    server = ServerProcess(tmp_path, "query", env={"PATH": "/usr/bin:/bin", "IMGSEARCH_EMBEDDER": dead})
    seen = []
    try:
        with pytest.raises(TimeoutError, match="not SERVING after 3 s"):
            server.wait_serving(timeout=3, on_wait=seen.append)
        assert server.running() and not server.serving() and seen
    finally:
        # SIGTERM while it waits for its embedder: it gives up waiting and exits by itself (status 2)
        assert server.terminate(timeout=20) == 2


def test_sighup_rereads_the_token_file(tmp_path):
    """A token revoked in the file stops working on SIGHUP, without a restart (issue 20.4). The file
    is rewritten with its size and modification time kept, so only the signal can reveal it."""
    import json
    import os
    import signal
    import time

    import grpc

    from imgsearch.protogen.imagesearch.v1 import query_pb2, query_pb2_grpc

    tokens = tmp_path / "tokens.json"

    def write(secret: str) -> None:
        stamp = tokens.stat() if tokens.exists() else None
        tokens.write_text(json.dumps({"tokens": [{"token": secret, "read": [""]}]}))
        tokens.chmod(0o600)
        if stamp:
            os.utime(tokens, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))

    def code(secret: str) -> str:
        with grpc.insecure_channel(server.addr) as channel:
            try:
                query_pb2_grpc.QueryStub(channel).SearchText(
                    query_pb2.SearchTextRequest(text="dog"),
                    metadata=[("authorization", f"Bearer {secret}")],
                    timeout=5,
                )
            except grpc.RpcError as exc:  # UNAVAILABLE "starting": past the token check
                return "STARTING" if "starting" in (exc.details() or "") else exc.code().name
        return "OK"

    write("aaaa-secret")
    dead = f"127.0.0.1:{free_port()}"  # the query service waits for its embedder: "starting" after the token
    env = {**os.environ, "IMGSEARCH_EMBEDDER": dead, "IMGSEARCH_TOKENS_FILE": str(tokens)}
    server = ServerProcess(tmp_path / "data", "query", env=env)
    try:
        deadline = time.monotonic() + 60
        while code("aaaa-secret") != "STARTING" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert code("aaaa-secret") == "STARTING" and code("bbbb-secret") == "UNAUTHENTICATED"
        write("bbbb-secret")
        time.sleep(1.5)
        assert code("aaaa-secret") == "STARTING"  # unchanged stamp: not re-read yet
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while code("aaaa-secret") != "UNAUTHENTICATED" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert code("aaaa-secret") == "UNAUTHENTICATED" and code("bbbb-secret") == "STARTING"
        assert server.running()
    finally:
        server.kill()
