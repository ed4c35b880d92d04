"""deploy/requirements*.txt, the exact pins the image installs, against pyproject.toml and each other.

The image installs them with `pip install --no-deps`, so a package pyproject.toml gained but the locks
lack only fails in a container; regenerate with `.venv/bin/python deploy/lock_requirements.py`.
"""

from __future__ import annotations

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
