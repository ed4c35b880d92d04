"""deploy/k8s and the Qdrant Helm values: objects select each other, probes and addresses hit real ports.

A manifest with a probe on the wrong port or an address of a Service that does not exist only fails on a
user's cluster; these tests make it fail here instead.
"""

from __future__ import annotations

import yaml

from tests.deploy.commands import LITE_TARGETS, check_imgsearch_argv, imgsearch_argv
from tests.deploy.kubernetes import (
    config_env,
    helm_services,
    kinds,
    named,
    pod_env,
    resolve_port,
    selected_deployments,
)
from tests.deploy.paths import K8S
from tests.deploy.values import PINNED_TAG, addresses, image_name, image_tag


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    images = {i["name"] for i in kustomization["images"]}
    for doc in kinds(
        [d for p in sorted(present) for d in yaml.safe_load_all((K8S / p).read_text())], "Deployment"
    ):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            assert container["image"] in images, container["image"]


def test_k8s_has_the_topology(k8s_docs: list[dict]) -> None:
    assert {d["metadata"]["name"] for d in kinds(k8s_docs, "Deployment")} == {"embedder", "indexer", "query"}
    for doc in k8s_docs:
        assert "namespace" not in doc["metadata"], "manifests are namespace-less"


def test_k8s_probes_resources_and_security(k8s_docs: list[dict]) -> None:
    for dep in kinds(k8s_docs, "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        name = dep["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in pod["containers"]:
            env = pod_env(k8s_docs, container)
            grpc_port = int(env["IMGSEARCH_PORT"])
            for probe in ("readinessProbe", "livenessProbe"):
                assert "grpc" in container[probe], f"{name}: {probe} must use gRPC health"
                assert resolve_port(container, container[probe]["grpc"]["port"]) == grpc_port, (
                    f"{name} {probe}"
                )
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"], name
            assert resources["limits"]["memory"], name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            grace = float(env["IMGSEARCH_GRACE_SECONDS"])
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            pre_stop_s = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
            assert pod["terminationGracePeriodSeconds"] > grace + pre_stop_s, (
                f"{name}: killed before it drains"
            )
            assert env["IMGSEARCH_LOG_FORMAT"] == "json", name


def test_k8s_prometheus_annotations_point_at_the_metrics_port(k8s_docs: list[dict]) -> None:
    for dep in kinds(k8s_docs, "Deployment"):
        template = dep["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        for container in template["spec"]["containers"]:
            metrics = int(pod_env(k8s_docs, container)["IMGSEARCH_METRICS_PORT"])
            assert int(annotations["prometheus.io/port"]) == metrics
            assert metrics in {p["containerPort"] for p in container["ports"]}


def test_k8s_services_select_pods_and_target_their_ports(k8s_docs: list[dict]) -> None:
    for service in kinds(k8s_docs, "Service"):
        name = service["metadata"]["name"]
        deps = selected_deployments(k8s_docs, service["spec"]["selector"])
        assert len(deps) == 1, f"Service {name} selects {len(deps)} Deployments"
        (container,) = deps[0]["spec"]["template"]["spec"]["containers"]
        for port in service["spec"]["ports"]:
            assert resolve_port(container, port.get("targetPort", port["port"])) == port["port"], f"{name}"
    for dep in kinds(k8s_docs, "Deployment"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_k8s_embedder_is_headless_and_autoscaled(k8s_docs: list[dict]) -> None:
    service = named(k8s_docs, "Service", "embedder")
    assert service["spec"]["clusterIP"] == "None", "clients balance over pods through a headless Service"
    (dep,) = selected_deployments(k8s_docs, service["spec"]["selector"])
    assert dep["metadata"]["name"] == "embedder"
    (hpa,) = kinds(k8s_docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "embedder")
    assert named(k8s_docs, "Deployment", target["name"]) is dep
    assert hpa["spec"]["minReplicas"] >= 2
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"], "CPU utilisation is measured against the request"
    assert dep["spec"].get("replicas", hpa["spec"]["minReplicas"]) >= 2


def test_k8s_addresses_name_existing_services_and_ports(k8s_docs: list[dict], helm_values: dict) -> None:
    ports = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in kinds(k8s_docs, "Service")
    }
    ports.update(helm_services(helm_values))
    wired = 0
    for dep in kinds(k8s_docs, "Deployment"):
        for container in dep["spec"]["template"]["spec"]["containers"]:
            for var, host, port in addresses(pod_env(k8s_docs, container)):
                assert host in ports, f"{dep['metadata']['name']}: {var} names unknown Service {host}"
                assert port in ports[host], f"{dep['metadata']['name']}: {var} port {port} not on {host}"
                wired += 1
    assert wired >= 4
    env = config_env(k8s_docs)
    assert env["IMGSEARCH_EMBEDDER"].startswith("dns:///embedder:")


def test_k8s_secrets_are_optional_and_config_maps_exist(k8s_docs: list[dict]) -> None:
    """Secrets are made by the user or the Qdrant chart, so a missing one must not block the pods."""
    config_maps = {d["metadata"]["name"] for d in kinds(k8s_docs, "ConfigMap")}
    for dep in kinds(k8s_docs, "Deployment"):
        for container in dep["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref.get("optional") is True, f"{item['name']} blocks the pod without its Secret"


def test_k8s_commands_are_known_and_fit_their_image(k8s_docs: list[dict], compose: dict) -> None:
    targets = {
        image_name(s["image"]): s["build"]["target"] for s in compose["services"].values() if "build" in s
    }
    for dep in kinds(k8s_docs, "Deployment"):
        for container in dep["spec"]["template"]["spec"]["containers"]:
            argv = container.get("command", []) + container.get("args", [])
            args = imgsearch_argv(argv, not container.get("command"))
            check_imgsearch_argv(args, f"k8s {dep['metadata']['name']}")
            target = targets[container["image"]]
            if target in LITE_TARGETS:
                assert args[1:] and not {"embedder", "all"} & set(args[1:]), dep["metadata"]["name"]


def test_qdrant_helm_values_are_distributed_and_match_compose(helm_values: dict, compose: dict) -> None:
    assert helm_values["replicaCount"] >= 3 and helm_values["replicaCount"] % 2 == 1, (
        "Raft wants an odd count"
    )
    assert helm_values["config"]["cluster"]["enabled"] is True
    assert helm_values["persistence"]["size"]
    assert {"http", "grpc", "p2p"} <= {p["name"] for p in helm_values["service"]["ports"]}
    tag = helm_values["image"]["tag"]
    assert PINNED_TAG.match(tag)
    assert tag == image_tag(compose["services"]["qdrant"]["image"]), "one Qdrant version everywhere"
    assert "apiKey" in helm_values
