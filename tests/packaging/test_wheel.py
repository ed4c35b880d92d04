"""The wheel the Docker build makes (`pip wheel --no-deps --no-build-isolation .` over the build context)
holds the package `imgsearch` with its generated gRPC stubs, the `imgsearch` command, and base
requirements that are the client's only.

The stubs are never committed: a wheel without them imports nothing, and only a container would tell.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.packaging.without_packages import ROOT

# What .dockerignore lets into the build stage (the Dockerfile copies these).
CONTEXT = ("pyproject.toml", "setup.py", "protos", "services")
# The `[server]` extra's packages a plain install must not pull in.
SERVER_ONLY = {
    "tensorflow-cpu",
    "qdrant-client",
    "qdrant-edge-py",
    "pyarrow",
    "pillow",
    "prometheus-client",
    "grpcio-reflection",
}
# What pip printed while building the wheel (the fixture fills it).
BUILD_OUTPUT: list[str] = []


def _skip_generated(folder: str, names: list[str]) -> set[str]:
    """Like .dockerignore: no stale local stubs, no caches."""
    skip = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
    if Path(folder).name == "protogen":
        skip.add("imagesearch")
    return skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    context = tmp_path_factory.mktemp("context")
    for name in CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=_skip_generated)
        else:
            shutil.copy2(source, context / name)
    out = tmp_path_factory.mktemp("wheels")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",  # the backend's own output, so its warnings can be read
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            ".",
        ],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    BUILD_OUTPUT.append(result.stdout + result.stderr)
    (path,) = out.glob("imgsearch-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


@pytest.mark.slow  # a few seconds: setuptools and protoc
def test_wheel_holds_the_package_and_its_stubs(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"imgsearch"}, tops
    for service in ("common", "embedder", "indexer", "query"):
        assert f"imgsearch/protogen/imagesearch/v1/{service}_pb2.py" in names, service
    for proto in ("embedder", "indexer", "query"):
        stub = wheel.read(f"imgsearch/protogen/imagesearch/v1/{proto}_pb2_grpc.py").decode()
        assert "from imgsearch.protogen.imagesearch.v1 import" in stub, "imports left pointing at protoc's"
    assert "imgsearch/client/__init__.py" in names and "imgsearch/cli/main.py" in names


@pytest.mark.slow
def test_wheel_metadata_keeps_the_server_in_its_extra(wheel: zipfile.ZipFile) -> None:
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(info).decode())
    base, server = set(), set()
    for line in metadata.get_all("Requires-Dist") or []:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if req.marker is None:
            base.add(name)
        elif req.marker.evaluate({"extra": "server"}):
            server.add(name)
    assert {"grpcio", "grpcio-health-checking", "protobuf", "numpy", "tqdm"} <= base
    heavy = base & (SERVER_ONLY | {"tensorflow", "keras"})
    assert not heavy, f"a plain install would pull in {heavy}"
    assert server >= SERVER_ONLY
    assert "server" in (metadata.get_all("Provides-Extra") or [])
    entry = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    assert "imgsearch = imgsearch.cli.main:main" in wheel.read(entry).decode()


def test_wheel_holds_the_web_page(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for name in ("index.html", "app.js", "app.css", "favicon.svg"):
        assert f"imgsearch/app/web/{name}" in names, f"{name} is not in the wheel"


def test_the_build_warns_about_nothing_it_packs(wheel: zipfile.ZipFile) -> None:
    """`make demo` installs the package: the page's static files are declared package data, so
    setuptools has no BuildBackendWarning about them (issue 22 item 29)."""
    (output,) = BUILD_OUTPUT
    assert "BuildBackendWarning" not in output and "is absent from the `packages`" not in output, output[
        -2000:
    ]
