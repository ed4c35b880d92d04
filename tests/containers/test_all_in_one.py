"""The embedder image's default command, `serve` (every service, the store embedded in the data
volume), in one container on the host network (127.0.0.1 only) with a read-only root filesystem:
SERVING in time, Docker's health check, ingest and search from the host CLI, a restart on the
same volume, and `docker stop` draining an ingest in flight."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.containers import engine, streams
from tests.containers.conftest import record

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1200)]

# From `docker run` to SERVING on a fresh volume: the first start also loads the 50,000-word
# vocabulary into the store (48 s of the 62 s measured on 2 busy cores; 17 s on a quiet machine).
FIRST_SERVING_WITHIN = 240
# A restart on the same volume loads nothing: the models come from the image, the words are stored.
RESTART_SERVING_WITHIN = 60
# The image's HEALTHCHECK: the first check runs 10 s (--interval) after the start.
HEALTHY_WITHIN = 60


@pytest.fixture(scope="module")
def server(images):
    tag = uuid.uuid4().hex[:8]
    volume = engine.new_volume(f"imgsearch-test-aio-{tag}")
    port, metrics_port = engine.free_ports(2)
    container = engine.run_container(
        f"imgsearch-test-aio-{tag}",
        images["embedder"],
        port=port,
        metrics_port=metrics_port,
        volume=volume,
        # Only the data volume is writable; nothing else (no tmpfs) is needed.
        options=["--read-only", "--stop-timeout", "30"],
    )
    try:
        seconds = container.wait_serving(FIRST_SERVING_WITHIN)
        record("all-in-one serve, docker run to SERVING (fresh volume)", f"{seconds:.1f} s")
        yield container
    finally:
        engine.remove(container.name)
        engine.docker("volume", "rm", "-f", volume, check=False)


def test_the_health_check_turns_healthy(server):
    took = engine.wait_for(
        "Docker health status healthy", lambda: engine.health_status(server.name) == "healthy", HEALTHY_WITHIN
    )
    record("all-in-one healthy after SERVING", f"{took:.1f} s")


def test_root_filesystem_is_read_only_and_the_server_runs_as_imgsearch(server):
    wrote = engine.docker("exec", server.name, "touch", "/home/imgsearch/probe", check=False)
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr, wrote.stderr
    status = engine.docker("exec", server.name, "cat", "/proc/1/status").stdout
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {"10001"}, f"PID 1 (the server) runs as {uids}"
    cmdline = engine.docker("exec", server.name, "cat", "/proc/1/cmdline").stdout.split("\0")
    assert "serve" in cmdline, cmdline


def test_ingest_and_search_from_the_host_cli(server, photo_dir, photos):
    ingested = engine.cli_json("ingest", "--addr", server.addr, "--label-from-dir", str(photo_dir))
    assert ingested["ingested"] == len(photos) and not ingested["failed"], ingested
    for query, label in (("jellyfish", "jellyfish"), ("puppy", "puppy")):
        top = engine.cli_json("search", "--addr", server.addr, query, "-k", "3")["results"]
        assert top and top[0]["uri"].rsplit("/", 1)[-1].startswith(label), (query, top)
    stats = engine.cli_json("stats", "--addr", server.addr)
    assert stats["images"] == len(photos), stats


def test_a_restart_on_the_same_volume_keeps_every_image(server, photos):
    before = engine.cli_json("search", "--addr", server.addr, "cat", "-k", "5")["results"]
    engine.docker("stop", server.name)
    server.start()
    seconds = server.wait_serving(RESTART_SERVING_WITHIN)
    record("all-in-one serve, docker start to SERVING (same volume)", f"{seconds:.1f} s")
    assert engine.cli_json("stats", "--addr", server.addr)["images"] == len(photos)
    after = engine.cli_json("search", "--addr", server.addr, "cat", "-k", "5")["results"]
    assert [r["id"] for r in after] == [r["id"] for r in before]


def test_docker_stop_drains_an_ingest_in_flight(server, photos):
    """SIGTERM (docker stop): health turns NOT_SERVING, calls in flight finish within the grace
    period, then the store is flushed; every image the reply acknowledged is there after a start."""
    channel, stub = streams.indexer(server.addr)
    before = streams.stored_images(stub)
    copies = 4
    sent = copies * len(photos)
    reply: dict = {}

    def ingest() -> None:
        try:
            reply["ok"] = stub.Ingest(streams.photo_requests(photos, copies, first=1), timeout=180)
        except Exception as exc:  # noqa: BLE001 - reported below
            reply["error"] = exc

    worker = threading.Thread(target=ingest)
    worker.start()
    time.sleep(2.0)  # the stream is under way
    stopped = time.monotonic()
    engine.docker("stop", "-t", "60", server.name)
    took = time.monotonic() - stopped
    worker.join(180)
    channel.close()
    assert "error" not in reply, f"the call in flight failed: {reply.get('error')}\n{server.logs()}"
    assert reply["ok"].ingested == sent and reply["ok"].failed == 0
    code = engine.docker("inspect", "-f", "{{.State.ExitCode}}", server.name).stdout.strip()
    assert code == "0", f"the server exited with {code}, not after a clean drain:\n{server.logs()}"
    record("all-in-one docker stop with an ingest in flight", f"{took:.1f} s")
    server.start().wait_serving(RESTART_SERVING_WITHIN)
    channel, stub = streams.indexer(server.addr)
    assert streams.stored_images(stub) == before + sent
    channel.close()
