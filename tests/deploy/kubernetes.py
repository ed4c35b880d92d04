"""Helpers that read the Kubernetes manifests: objects by kind and name, pod environments, ports."""

from __future__ import annotations


def kinds(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = [d for d in kinds(docs, kind) if d["metadata"]["name"] == name]
    return doc


def config_env(docs: list[dict]) -> dict[str, str]:
    (config,) = kinds(docs, "ConfigMap")
    return config["data"]


def pod_env(docs: list[dict], container: dict) -> dict[str, str]:
    """A container's environment: its ConfigMaps, then its own plain values over them."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(named(docs, "ConfigMap", ref)["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
    return env


def selected_deployments(docs: list[dict], selector: dict[str, str]) -> list[dict]:
    return [
        d
        for d in kinds(docs, "Deployment")
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]


def resolve_port(container: dict, port: int | str) -> int:
    """A port number, or a named container port resolved to its number."""
    if isinstance(port, int):
        assert port in {p["containerPort"] for p in container["ports"]}, port
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return number


def helm_services(values: dict) -> dict[str, set[int]]:
    """The Service the Qdrant chart creates: its name and ports."""
    return {values["fullnameOverride"]: {p["port"] for p in values["service"]["ports"]}}
