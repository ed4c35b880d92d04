"""What a first user meets: a server that is still starting, nothing listening, a port or a data
directory already taken, the vocabulary already loaded, where `serve` listens. Real servers, real
processes, the real CLI."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time

import pytest

from imgsearch.app.process import ServerProcess, free_port
from imgsearch.cli.main import Environment, ExitStatus, main
from imgsearch.client import ClientError, ImageSearchClient
from imgsearch.config import Settings
from tests.e2e.conftest import Running

pytestmark = pytest.mark.slow


def run(addr: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env=Environment(stdout=out, stderr=err, environ={"IMGSEARCH_ADDR": addr}))
    return code, out.getvalue(), err.getvalue()


def closed_port() -> int:
    return free_port()  # nobody listens there (the OS just handed it out and it was closed)


def serve(tmp_path, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """`imgsearch serve ...` as a process that is expected to exit; (exit code, output, seconds)."""
    environ = {
        **os.environ,
        "IMGSEARCH_DATA": str(tmp_path / "data"),
        "IMGSEARCH_HOST": "127.0.0.1",
        **(env or {}),
    }
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "imgsearch.cli.main", "serve", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def test_health_with_nothing_listening_says_so_at_once():
    addr = f"127.0.0.1:{closed_port()}"
    start = time.monotonic()
    code, out, err = run(addr, "health")
    assert code == ExitStatus.UNAVAILABLE and out == "UNREACHABLE\n"
    assert f"cannot connect to {addr}: nothing is listening there" in err
    assert time.monotonic() - start < 5


def test_the_clients_first_call_to_a_closed_port_fails_fast_naming_the_address():
    addr = f"127.0.0.1:{closed_port()}"
    start = time.monotonic()
    with ImageSearchClient(addr) as client, pytest.raises(ClientError) as caught:  # default: wait_for_ready
        client.search("dog")
    assert caught.value.code.name == "UNAVAILABLE" and addr in caught.value.message
    assert time.monotonic() - start < 5
    # the CLI waits a moment for a local port (a `serve &` just started), saying so, then one line
    start = time.monotonic()
    code, _, err = run(addr, "search", "dog")
    assert code == ExitStatus.UNAVAILABLE and 9 < time.monotonic() - start < 30
    waiting, error = err.splitlines()
    assert waiting == f"nothing listens at {addr} yet; waiting up to 10 s for a server..."
    assert addr in error and "is `imgsearch serve` running?" in error


def test_a_port_in_use_is_one_line_before_any_model_loads(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, output, seconds = serve(tmp_path, "--port", str(port))
        assert code == 2
        assert f"the gRPC port {port} on 127.0.0.1 is already in use" in output
        assert "Traceback" not in output and "embedder ready" not in output
        code, output, _ = serve(tmp_path, "--port", str(free_port()), "--http-port", str(port))
        assert code == 2 and f"the HTTP port {port} on 127.0.0.1 is already in use" in output
        assert "Traceback" not in output and "embedder ready" not in output


def test_a_data_directory_held_by_another_server_is_refused_before_the_models_load(
    tmp_path, web_server: Running
):
    environ = {"IMGSEARCH_DATA": str(web_server.settings.data_dir)}
    code, output, _ = serve(tmp_path, "--port", str(free_port()), env=environ)
    assert code == 2
    assert "is in use by another process" in output
    assert "embedder ready" not in output and "Traceback" not in output
    assert "listening on" not in output  # refused before it binds (issue 22 item 21)


def test_serve_binds_localhost_unless_told_otherwise():
    assert Settings().host == "127.0.0.1"
    assert Settings.from_env({"IMGSEARCH_HOST": "[::]"}).host == "[::]"


def test_vocab_says_when_the_vocabulary_is_already_loaded(web_server: Running):
    code, out, _ = run(web_server.addr, "vocab")
    assert code == 0 and "already holds" in out and "--force" in out
    code, out, _ = run(web_server.addr, "vocab", "--json")
    assert code == 0 and '"loaded": false' in out


def test_a_command_sent_while_the_server_starts_waits_for_it(tmp_path, photos):
    server = ServerProcess(tmp_path / "data", env=dict(os.environ, IMGSEARCH_VOCAB_SIZE="20000"))
    try:
        deadline = time.monotonic() + 60
        while not _listening(server.port):  # the port opens first, the models load after
            assert server.running() and time.monotonic() < deadline, server.tail()
            time.sleep(0.1)
        code, out, err = run(
            server.addr, "ingest", str(photos["puppy"]), str(photos["black_cat"]), "--timeout", "240"
        )
        assert code == 0, err
        if "is starting" in err:  # the models may load before the command gets there
            assert "waiting up to" in err and "the server is ready" in err and "cannot reach" not in err
        assert "ingested 2, duplicates 0, failed 0" in out
        # the bar counts what the server stored: the summary line ends at 2/2
        assert "ingest [" in err and "2/2 100%" in err
    finally:
        server.terminate()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_the_cli_says_the_server_is_starting_waits_and_then_answers(web_server: Running):
    """A server whose query service is still loading (the real Deferred, bound 1.5 s later)."""
    import threading
    from dataclasses import replace

    from imgsearch.app.serve import SERVICES, Deferred
    from imgsearch.query.service import QueryServicer
    from imgsearch.rpc.server import Registration, create_server

    settings = replace(web_server.settings, port=0)
    deferred = Deferred("query")
    name, add = SERVICES["query"]
    served = create_server(settings, [Registration(name, lambda server: add(deferred, server))])

    def finish_loading() -> None:
        time.sleep(1.5)
        deferred.bind(QueryServicer(web_server.parts.embedder, web_server.parts.store, settings))
        served.set_serving(True)

    threading.Thread(target=finish_loading, daemon=True).start()
    try:
        code, out, err = run(f"127.0.0.1:{served.port}", "search", "dog", "-k", "1", "--json")
    finally:
        served.server.stop(0)
    assert code == 0, err
    assert "is starting (loading models); waiting up to" in err and "the server is ready" in err
    assert "cannot reach" not in err and '"results"' in out
