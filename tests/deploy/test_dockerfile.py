"""deploy/Dockerfile: its stages, what each target runs, and that its build context holds what it copies."""

from __future__ import annotations

import re

from tests.deploy.commands import SUBCOMMANDS, check_imgsearch_argv
from tests.deploy.dockerfile import Dockerfile, exec_form
from tests.deploy.kubernetes import kinds
from tests.deploy.paths import DOCKERFILE, DOCKERIGNORE, ROOT
from tests.deploy.values import image_tag


def test_dockerfile_is_multi_stage_with_both_targets(dockerfile: Dockerfile) -> None:
    names = [s["name"] for s in dockerfile.stages]
    assert len(names) >= 3
    assert {"base", "embedder", "lite", "full", "models"} <= set(names)
    assert names[-1] == "embedder", "a plain `docker build` must give the image that runs every service"


def test_dockerfile_base_image_is_pinned(dockerfile: Dockerfile) -> None:
    base = dockerfile.base_image()
    assert base.startswith("python:3.11"), base
    assert image_tag(base) not in ("", "latest")


def test_dockerfile_targets_run_as_non_root_with_health_check(dockerfile: Dockerfile) -> None:
    for target in ("embedder", "lite", "full"):
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


def _copies(dockerfile: Dockerfile, target: str) -> list[str]:
    """The COPY instructions of a target and the stages it derives from."""
    return dockerfile.effective(target, "COPY")


def test_models_are_prepared_at_build_with_tensorflow(dockerfile: Dockerfile) -> None:
    """`imgsearch warmup` runs where TensorFlow is (the full virtualenv), so nothing converts at start."""
    assert any("imgsearch warmup" in r for r in dockerfile.effective("models", "RUN"))
    assert any(c.startswith("--from=venv-full ") for c in _copies(dockerfile, "models"))
    assert not any("imgsearch warmup" in r for r in dockerfile.effective("lite", "RUN"))
    full = " ".join(rest for op, rest in dockerfile.stage("venv-full")["ops"] if op in ("COPY", "RUN"))
    assert "requirements.txt" in full


def test_embedder_image_has_no_tensorflow_and_the_prepared_cache_without_the_keras_model(
    dockerfile: Dockerfile,
) -> None:
    copies = _copies(dockerfile, "embedder")
    assert any(c.startswith("--from=venv-embedder /opt/venv") for c in copies), copies
    assert not any("--from=venv-full" in c or "--from=full" in c for c in copies), copies
    cache = [c.split() for c in copies if c.startswith("--from=models ")]
    assert cache and cache[0][-2:] == ["/opt/imgsearch/cache", "/opt/imgsearch/cache"], copies
    assert "--chown=imgsearch:imgsearch" in cache[0], "the cache's files are mode 0600: the user's own"
    assert any("rm -f" in r and "*.keras" in r for r in dockerfile.effective("models", "RUN"))
    venv = " ".join(rest for op, rest in dockerfile.stage("venv-embedder")["ops"] if op in ("COPY", "RUN"))
    assert "requirements-embedder.txt" in venv and "requirements.txt " not in venv
    runs = dockerfile.effective("embedder", "RUN")
    assert any("imgsearch warmup" in r and '! python -c "import tensorflow"' in r for r in runs), runs


def test_lite_image_has_no_tensorflow(dockerfile: Dockerfile) -> None:
    copies = " ".join(rest for _, rest in dockerfile.stage("venv-lite")["ops"] if _ in ("COPY", "RUN"))
    assert "requirements-lite.txt" in copies and "requirements.txt " not in copies
    assert any("--from=venv-lite" in rest for op, rest in dockerfile.stage("lite")["ops"] if op == "COPY")


def test_dockerfile_build_stage_makes_the_wheel_with_setup_py(dockerfile: Dockerfile) -> None:
    """setup.py's build hook generates the stubs into the wheel; the package is not importable before
    the wheel is installed, so no `python -m` of ours may run in the build stage."""
    build = dockerfile.stage("build")
    copied = [src for op, rest in build["ops"] if op == "COPY" for src in rest.split()[:-1]]
    assert {"pyproject.toml", "setup.py", "protos/", "services/"} <= set(copied), copied
    runs = [rest for op, rest in build["ops"] if op == "RUN"]
    tools = runs[0].split()
    assert "grpcio-tools" in tools and "setuptools" in tools, "the wheel build runs protoc via setup.py"
    assert "-c" in tools and "deploy/requirements.txt" in tools, "build tools pinned like the image"
    assert any(re.search(r"pip wheel --no-deps --no-build-isolation .*\.$", r) for r in runs), runs
    assert not any(re.search(r"python -m (services|imgsearch)\.", r) for r in runs), runs


def test_dockerfile_copies_only_what_the_context_keeps() -> None:
    """Each COPY source exists and .dockerignore (deny all, then allow) lets it through."""
    dockerignore = DOCKERIGNORE.read_text().splitlines()
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
    for target in ("embedder", "lite", "full"):
        entry = exec_form(dockerfile.effective(target, "ENTRYPOINT")[-1])
        assert entry == ["imgsearch"]
        check_imgsearch_argv(exec_form(dockerfile.effective(target, "CMD")[-1]), f"Dockerfile {target} CMD")
    lite_cmd = exec_form(dockerfile.effective("lite", "CMD")[-1])
    assert "embedder" not in lite_cmd and lite_cmd[1:], "lite must name services it can run"
