"""The deployment files, each parsed once per test module."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.dockerfile import Dockerfile
from tests.deploy.paths import COMPOSE, DOCKERFILE, HELM_VALUES, K8S


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict]:
    """Every object of deploy/k8s/*.yaml except the kustomization."""
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
