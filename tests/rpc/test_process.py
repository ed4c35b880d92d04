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
