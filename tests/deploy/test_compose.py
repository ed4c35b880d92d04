"""deploy/docker-compose.yml: every service, address, port, health check and command is real.

A compose file that names a service that does not exist, a port nobody listens on, or a health check on
the wrong port only fails on a user's machine; these tests make it fail here instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import yaml

from tests.deploy.commands import LITE_TARGETS, check_imgsearch_argv, imgsearch_argv
from tests.deploy.compose import compose_env, container_ports, imgsearch_services, published
from tests.deploy.dockerfile import Dockerfile
from tests.deploy.paths import COMPOSE, DOCKERFILE
from tests.deploy.values import PINNED_TAG, addresses, duration_seconds, image_name, image_tag, parse_address


def test_compose_has_the_topology(compose: dict) -> None:
    assert {"qdrant", "embedder", "indexer", "query"} <= set(compose["services"])
    for name in ("embedder", "indexer", "query"):
        assert name in imgsearch_services(compose)


def test_compose_every_service_has_a_health_check(compose: dict) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        assert check["test"] and check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_compose_images_are_pinned(compose: dict) -> None:
    for name, service in compose["services"].items():
        tag = image_tag(service["image"])
        assert tag and tag != "latest", f"{name}: {service['image']}"
    assert image_name(compose["services"]["qdrant"]["image"]) == "qdrant/qdrant"
    assert PINNED_TAG.match(image_tag(compose["services"]["qdrant"]["image"]))


def test_compose_qdrant_keeps_its_storage(compose: dict) -> None:
    volumes = compose["services"]["qdrant"]["volumes"]
    assert any(
        str(v).endswith(":/qdrant/storage") and str(v).split(":")[0] in compose["volumes"] for v in volumes
    )


def test_compose_embedder_scales(compose: dict) -> None:
    embedder = compose["services"]["embedder"]
    assert embedder["deploy"]["replicas"] >= 2
    assert "container_name" not in embedder, "a fixed name forbids replicas"
    assert not embedder.get("ports"), "a fixed host port forbids replicas"


def test_compose_addresses_name_existing_services_and_ports(compose: dict) -> None:
    services = compose["services"]
    wired = 0
    for name, service in services.items():
        for var, host, port in addresses(compose_env(service)):
            assert host in services, f"{name}: {var} names unknown service {host}"
            assert port in container_ports(services[host]), f"{name}: {var} port {port} not exposed by {host}"
            deps = service.get("depends_on") or {}
            assert host in deps, f"{name} uses {host} but does not wait for it"
            wired += 1
    assert wired >= 4, "indexer and query must both be wired to qdrant and the embedders"
    for name in ("indexer", "query"):
        env = compose_env(services[name])
        assert env["IMGSEARCH_EMBEDDER"].startswith("dns:///"), "one DNS name covers every replica"
        assert urlsplit(env["QDRANT_URL"]).port == 6334, "qdrant-client prefers gRPC: port 6334"


def test_compose_starts_in_dependency_order_on_health(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        for dep, rule in deps.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert rule.get("condition") == "service_healthy", f"{name} -> {dep}"
            assert services[dep].get("healthcheck"), f"{dep} cannot become healthy"


def test_compose_ports_agree_with_the_services(compose: dict) -> None:
    services = compose["services"]
    host_ports: list[int] = []
    for name, service in imgsearch_services(compose).items():
        env = compose_env(service)
        grpc_port = int(env["IMGSEARCH_PORT"])
        metrics_port = int(env["IMGSEARCH_METRICS_PORT"])
        assert {grpc_port, metrics_port} <= container_ports(service), name
        argv = service["healthcheck"]["test"]
        assert f"localhost:{grpc_port}" in " ".join(argv), f"{name}: health check on another port"
        assert env["IMGSEARCH_LOG_FORMAT"] == "json", name
        assert duration_seconds(service["stop_grace_period"]) > float(env["IMGSEARCH_GRACE_SECONDS"]), name
        host_ports.extend(published(service))
    for name in ("indexer", "query"):
        grpc_port = int(compose_env(services[name])["IMGSEARCH_PORT"])
        assert grpc_port in published(services[name]).values(), f"{name} gRPC port is not published"
    host_ports.extend(p for s in services.values() if "build" not in s for p in published(s))
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"


def test_compose_builds_existing_dockerfile_targets(compose: dict, dockerfile: Dockerfile) -> None:
    names = {s["name"] for s in dockerfile.stages}
    for name, service in imgsearch_services(compose).items():
        build = service["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE.resolve(), name
        assert build["target"] in names, f"{name}: no stage {build['target']}"


def test_compose_commands_are_known_and_fit_their_image(compose: dict) -> None:
    for name, service in compose["services"].items():
        args = imgsearch_argv(service.get("command") or [], "build" in service)
        if args is not None:
            check_imgsearch_argv(args, f"compose {name}")
            if service["build"]["target"] in LITE_TARGETS:
                assert args[1:] and not {"embedder", "all"} & set(args[1:]), f"{name}: lite has no TensorFlow"
        health = imgsearch_argv(service["healthcheck"]["test"], False)
        if health is not None:
            check_imgsearch_argv(health, f"compose {name} healthcheck")


def test_compose_prometheus_scrapes_real_services(compose: dict) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    config_file = next(str(v).split(":")[0] for v in prometheus["volumes"] if "prometheus.yml" in str(v))
    config = yaml.safe_load((COMPOSE.parent / config_file).read_text())
    jobs = config["scrape_configs"]
    seen = set()
    for job in jobs:
        targets = [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        targets += [f"{n}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for n in sd["names"]]
        for target in targets:
            host, port = parse_address(target)
            assert host in services and port in container_ports(services[host]), (
                f"{job['job_name']}: {target}"
            )
            seen.add(host)
    assert {"embedder", "indexer", "query"} <= seen
