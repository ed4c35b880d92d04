"""deploy/docker-compose.yml with Docker Compose v2: the file's services and profiles as compose
reads them, and the split topology of deploy/docker-compose.loopback.yml (embedders behind an
indexer+query container on the embedded store, host network, 127.0.0.1) started from the files:
health, `--scale embedder=3`, and an ingest + search through them."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.containers import engine
from tests.containers.conftest import record

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1200)]

MAIN = ["docker-compose.yml"]
LOOPBACK = ["docker-compose.yml", "docker-compose.loopback.yml"]
SLOTS = 4


def _services(files: list[str], *profiles: str) -> set[str]:
    args = [a for p in profiles for a in ("--profile", p)]
    return set(engine.compose("config-check", files, *args, "config", "--services").stdout.split())


def test_compose_reads_the_files_services_and_profiles(container_engine):
    assert _services(MAIN) == {"qdrant", "embedder", "indexer", "query"}
    assert _services(MAIN, "all-in-one") == {"qdrant", "embedder", "indexer", "query", "all-in-one"}
    assert _services(MAIN, "monitoring") == {"qdrant", "embedder", "indexer", "query", "prometheus"}
    assert _services(LOOPBACK) == {"embedder", "search"}
    assert _services(LOOPBACK, "qdrant-server") == {"qdrant", "embedder", "indexer", "query", "search"}
    merged = json.loads(engine.compose("config-check", LOOPBACK, "config", "--format", "json").stdout)
    for name in ("embedder", "search"):
        service = merged["services"][name]
        assert service["network_mode"] == "host"
        assert service["environment"]["IMGSEARCH_HOST"] == "127.0.0.1", "only loopback on the host network"


def _containers(project: str) -> list[dict]:
    out = engine.compose(project, LOOPBACK, "ps", "--format", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stack(images):
    project = f"imgsearch-test-{uuid.uuid4().hex[:8]}"
    base = engine.free_ports(2 * SLOTS, consecutive=True)[0]
    search_port, search_metrics = engine.free_ports(2)
    env = {
        "IMGSEARCH_IMAGE": images["embedder"],
        "IMGSEARCH_LITE_IMAGE": images["lite"],
        "EMBEDDER_BASE_PORT": str(base),
        "EMBEDDER_SLOTS": str(SLOTS),
        "SEARCH_PORT": str(search_port),
        "SEARCH_METRICS_PORT": str(search_metrics),
    }
    try:
        up = engine.compose(
            project, LOOPBACK, "up", "-d", "--no-build", "--wait", "--wait-timeout", "300", env=env
        )
        assert up.returncode == 0
        yield {"project": project, "env": env, "base": base, "addr": f"127.0.0.1:{search_port}"}
    finally:
        engine.compose(project, LOOPBACK, "down", "-v", "--timeout", "30", env=env, check=False)


def _healthy(project: str, service: str) -> list[dict]:
    return [c for c in _containers(project) if c["Service"] == service and c["Health"] == "healthy"]


def _slot_ports(project: str) -> list[int]:
    """The gRPC port each embedder replica took (its slot)."""
    ports = []
    for c in _containers(project):
        if c["Service"] == "embedder":
            ports.append(int(engine.docker("exec", c["Name"], "cat", "/tmp/imgsearch-port").stdout))
    return sorted(ports)


def test_the_split_topology_starts_healthy_from_the_files(stack):
    project = stack["project"]
    assert len(_healthy(project, "embedder")) == 2, _containers(project)
    assert len(_healthy(project, "search")) == 1, _containers(project)
    assert _slot_ports(project) == [stack["base"], stack["base"] + 2]
    assert engine.serving(stack["addr"])


def test_scale_to_three_embedders_then_ingest_and_search_through_them(stack, photo_dir, photos):
    project, base = stack["project"], stack["base"]
    scale = ["--scale", "embedder=3"]
    engine.compose(
        project,
        LOOPBACK,
        "up",
        "-d",
        "--no-build",
        "--wait",
        "--wait-timeout",
        "300",
        *scale,
        env=stack["env"],
    )
    assert len(_healthy(project, "embedder")) == 3, _containers(project)
    ports = _slot_ports(project)
    assert ports == [base, base + 2, base + 4], "each replica in its own slot"
    before = sum(engine.embedded(p + 1) for p in ports)
    ingested = engine.cli_json("ingest", "--addr", stack["addr"], str(photo_dir))
    assert ingested["ingested"] == len(photos) and not ingested["failed"], ingested
    per_replica = [engine.embedded(p + 1) for p in ports]
    assert sum(per_replica) - before >= len(photos), per_replica
    record(
        "compose, images embedded per replica (3 replicas, one ingest)", str([int(n) for n in per_replica])
    )
    top = engine.cli_json("search", "--addr", stack["addr"], "jellyfish", "-k", "1")["results"]
    assert top[0]["uri"].endswith("/jellyfish.jpg"), top
