"""The embedder image's virtualenv without TensorFlow against the full one, outside Docker, in one run.

For each run given as LABEL=VENV:RUNTIME:CACHE (a virtualenv with the project installed, a CNN
runtime, a model cache prepared by `imgsearch warmup`), it measures:
- the virtualenv's size on disk (`du`) and whether `import tensorflow` works in it;
- `VENV/bin/imgsearch serve embedder` started on a free port: seconds from the start to health
  SERVING (polled every 20 ms), resident memory (VmRSS) at SERVING and after embedding every
  sample photo a few times over gRPC, its peak (VmHWM), whether TensorFlow got loaded (its
  libraries in /proc/PID/maps);
- with `--tags LABEL`, that run's virtualenv also serves everything (`serve`, Qdrant Edge embedded)
  and answers `imgsearch tags PHOTO --json` with that virtualenv's CLI.
Make the TF-free virtualenv as deploy/Dockerfile does (see docs/deploy.md):
    python3.11 -m venv /tmp/emb && /tmp/emb/bin/pip install --only-binary=:all: --no-deps \\
        -r deploy/requirements-embedder.txt && /tmp/emb/bin/pip install --no-deps WHEEL
    IMGSEARCH_CACHE=/tmp/cache .venv/bin/imgsearch warmup   # then copy it without the .keras file
Run: .venv/bin/python -m benchmarks.embedder_venv_bench --run tf-free=/tmp/emb:litert:/tmp/cache-lite \\
    --run full=.venv:litert:/tmp/cache --run full-keras=.venv:keras:/tmp/cache --tags tf-free
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import fmt_load, load_average, photo_bytes

EMBED_ROUNDS = 4


def venv_mb(venv: Path) -> float:
    out = subprocess.run(["du", "-sk", str(venv)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def imports_tensorflow(venv: Path) -> bool:
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import tensorflow"], capture_output=True)
    return probe.returncode == 0


def _memory_mb(pid: int) -> dict[str, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache: Path, runtime: str, data: Path, port: int) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("IMGSEARCH_GLOVE", "IMGSEARCH_HEAD", "QDRANT_URL")
    }
    env.update(
        IMGSEARCH_CACHE=str(cache),
        IMGSEARCH_CNN_RUNTIME=runtime,
        IMGSEARCH_DATA=str(data),
        IMGSEARCH_PORT=str(port),
        IMGSEARCH_HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _serving(port: int, timeout: float) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _start(venv: Path, roles: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, float]:
    """Starts `serve ROLES` and waits for SERVING: the process and its seconds to SERVING."""
    port = int(env["IMGSEARCH_PORT"])
    started = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "imgsearch"), "serve", *roles],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    while not _serving(port, 1.0):
        if proc.poll() is not None:
            raise RuntimeError(
                f"serve {' '.join(roles)} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        if time.perf_counter() - started > 300:
            proc.kill()
            raise RuntimeError(f"serve {' '.join(roles)} not SERVING after 300 s")
        time.sleep(0.02)
    return proc, time.perf_counter() - started


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def embedder_replica(
    venv: Path, runtime: str, cache: Path, work: Path, photos: list[bytes]
) -> dict[str, Any]:
    import grpc

    from imgsearch.protogen.imagesearch.v1 import embedder_pb2, embedder_pb2_grpc

    port = _free_port()
    proc, serving_s = _start(venv, ["embedder"], _env(cache, runtime, work, port), work / "embedder.log")
    try:
        at_serving = _memory_mb(proc.pid)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            for _ in range(EMBED_ROUNDS):
                reply = stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=photos), timeout=300)
            text = stub.EmbedText(embedder_pb2.EmbedTextRequest(text="cat on a sofa"), timeout=30)
        after = _memory_mb(proc.pid)
        tensorflow = "tensorflow" in Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        _stop(proc)
    embedded = [e for e in reply.embeddings if not e.HasField("error")]
    return {
        "serving_s": round(serving_s, 2),
        "rss_at_serving_mb": round(at_serving["VmRSS"], 1),
        "rss_after_embedding_mb": round(after["VmRSS"], 1),
        "peak_mb": round(after["VmHWM"], 1),
        "tensorflow_loaded": tensorflow,
        "photos_embedded": f"{len(embedded)}/{len(photos)}",
        "dims": [len(embedded[0].visual), len(embedded[0].semantic), len(text.vector)] if embedded else [],
    }


def tags_over_grpc(venv: Path, cache: Path, work: Path, photo: Path) -> dict[str, Any]:
    """`serve` (every service) from `venv`, then that venv's `imgsearch tags PHOTO --json`."""
    port = _free_port()
    env = _env(cache, "litert", work / "all", port)
    proc, serving_s = _start(venv, [], env, work / "all.log")
    try:
        out = subprocess.run(
            [str(venv / "bin" / "imgsearch"), "tags", str(photo), "-k", "5", "--json"],
            env=dict(env, IMGSEARCH_ADDR=f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        tensorflow = "tensorflow" in Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        _stop(proc)
    if out.returncode:
        raise RuntimeError(f"tags failed ({out.returncode}): {out.stderr[-2000:]}")
    words = [r["word"] for r in json.loads(out.stdout)["results"]]
    return {"serving_s": round(serving_s, 2), "tags": words, "tensorflow_loaded": tensorflow}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=VENV:RUNTIME:CACHE")
    parser.add_argument("--tags", metavar="LABEL", help="also serve everything from this run's venv: tags")
    parser.add_argument("--photo", help="the photo for tags (default: skimage's coffee)")
    args = parser.parse_args(argv)
    photos = photo_bytes()
    photo = Path(args.photo) if args.photo else _coffee()
    runs = {}
    for spec in args.run:
        label, _, rest = spec.partition("=")
        venv, runtime, cache = rest.split(":")
        runs[label] = (Path(venv).absolute(), runtime, Path(cache).absolute())
    load_before = load_average()
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="imgsearch-venv-bench-") as scratch:
        for label, (venv, runtime, cache) in runs.items():
            work = Path(scratch) / label
            work.mkdir()
            found[label] = {
                "venv": str(venv),
                "runtime": runtime,
                "venv_mb": round(venv_mb(venv)),
                "import_tensorflow_works": imports_tensorflow(venv),
                **embedder_replica(venv, runtime, cache, work, photos),
            }
        if args.tags:
            venv, _, cache = runs[args.tags]
            found[f"{args.tags} serve (all) + tags"] = tags_over_grpc(
                venv, cache, Path(scratch) / args.tags, photo
            )
    found["load_average"] = {"before": load_before, "after": load_average()}
    found["photos"] = len(photos)
    print(json.dumps(found, indent=2))
    print(f"load average before {fmt_load(load_before)}, after {fmt_load(load_average())}", file=sys.stderr)
    return 0


def _coffee() -> Path:
    from benchmarks.common import package_dir

    return package_dir("skimage") / "data" / "coffee.png"


if __name__ == "__main__":
    sys.exit(main())
