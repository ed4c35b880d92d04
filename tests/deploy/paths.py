"""Where the deployment files live: one place, so a moved file breaks one line, not every test."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
HELM_VALUES = DEPLOY / "qdrant-helm-values.yaml"
DOCS = ROOT / "docs" / "deploy.md"
# The import package `imgsearch` is the folder services/ (setup.py's package_dir).
PACKAGE_DIR = ROOT / "services"
