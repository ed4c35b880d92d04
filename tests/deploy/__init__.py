"""Checks of the deployment files (Dockerfile, compose, Kubernetes, requirement locks, docs) by parsing."""
