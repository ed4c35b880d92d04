"""Packaging glue that pyproject.toml cannot express: the import package `imgsearch` lives in the
repository's `services/` folder, and every build generates the gRPC stubs from `protos/` (they are
never committed), so `pip install .` of a clone works without a separate step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _protogen():
    """services/protogen/build.py loaded by path (the package is not importable while it builds)."""
    spec = importlib.util.spec_from_file_location("_imgsearch_protogen", HERE / "services/protogen/build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithStubs(build_py):
    """build_py that also writes the stubs: into the wheel's tree, or beside the sources for an
    editable install."""

    def run(self) -> None:
        super().run()
        protogen = _protogen()
        if self.editable_mode:
            protogen.build()
        else:
            protogen.build(Path(self.build_lib) / "imgsearch" / "protogen", HERE / "protos")


setup(
    package_dir={"imgsearch": "services"},
    # app/web holds the web page's static files (no Python): a data package, declared as such so the
    # build neither drops nor warns about it
    packages=[
        "imgsearch",
        *(f"imgsearch.{p}" for p in find_packages("services", exclude=["*.imagesearch*"])),
        "imgsearch.app.web",
    ],
    package_data={
        "imgsearch": ["py.typed"],  # typed for mypy
        "imgsearch.app.web": ["*.html", "*.js", "*.css", "*.svg"],
    },
    cmdclass={"build_py": BuildWithStubs},
)
