"""Helpers that read docker-compose services: environment, ports, which ones build our image."""

from __future__ import annotations


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def container_ports(service: dict) -> set[int]:
    """Ports a compose service listens on for the other containers (expose, or ports' container side)."""
    ports = {int(str(p).split("/")[0]) for p in service.get("expose") or []}
    for mapping in service.get("ports") or []:
        ports.add(int(str(mapping).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def published(service: dict) -> dict[int, int]:
    """host port -> container port."""
    out = {}
    for mapping in service.get("ports") or []:
        parts = str(mapping).split("/")[0].split(":")
        assert len(parts) >= 2, f"{mapping}: publish with an explicit host port"
        out[int(parts[-2])] = int(parts[-1])
    return out


def imgsearch_services(compose: dict) -> dict[str, dict]:
    """The services built from deploy/Dockerfile (the others run third-party images)."""
    return {n: s for n, s in compose["services"].items() if "build" in s}
