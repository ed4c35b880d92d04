"""The container engine the tests drive (scripts/container-engine.sh starts it), the images they
build, and small helpers: docker and the host CLI as subprocesses, free loopback ports, waits."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imgsearch.app.process import scrape_metrics

ROOT = Path(__file__).resolve().parents[2]
SOCK = os.environ.get("IMGSEARCH_DOCKER_SOCK", "/run/imgsearch-docker.sock")
BASE_IMAGE = os.environ.get("IMGSEARCH_BASE_IMAGE", "imgsearch-base:bookworm")
COMPOSE = os.environ.get("IMGSEARCH_COMPOSE", "/usr/local/lib/imgsearch-compose/docker-compose")
REASON_FILE = Path(os.environ.get("IMGSEARCH_ENGINE_REASON", "/tmp/imgsearch-container-engine.reason"))
# Debian's client matches Debian's daemon and builds with BuildKit without the buildx plugin.
DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").is_file() else shutil.which("docker")
LABEL = "imgsearch-tests=1"  # on everything the tests create, so a crashed run's leftovers are found
EMBEDDER_IMAGE = "imgsearch:test"
LITE_IMAGE = "imgsearch-lite:test"


def engine_env() -> dict[str, str]:
    env = dict(os.environ, DOCKER_HOST=f"unix://{SOCK}", DOCKER_BUILDKIT="1")
    env.pop("DOCKER_CONTEXT", None)
    return env


def unavailable() -> str:
    """Why the tests cannot run here ("" when the engine answers)."""
    how = "start it with `sudo scripts/container-engine.sh`"
    if not DOCKER_CLI:
        return f"no docker client installed; {how} (it installs Debian's docker.io)"
    try:
        done = subprocess.run(
            [DOCKER_CLI, "info", "--format", "{{.ServerVersion}}"],
            env=engine_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the docker client failed ({exc}); {how}"
    if done.returncode == 0:
        return ""
    said = REASON_FILE.read_text().strip() if REASON_FILE.is_file() else ""
    why = f"scripts/container-engine.sh said: {said}" if said else how
    return f"no container engine answers at unix://{SOCK}; {why}"


def docker(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """`docker ARGS` against the tests' engine; output captured as text."""
    done = subprocess.run(
        [DOCKER_CLI, *args], env=engine_env(), capture_output=True, text=True, timeout=timeout, **kwargs
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:3])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    return done


def compose(
    project: str,
    files: Sequence[str],
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Docker Compose v2 (installed by the engine script) over deploy/'s files."""
    cmd = [COMPOSE, "-p", project]
    for f in files:
        cmd += ["-f", str(ROOT / "deploy" / f)]
    done = subprocess.run(
        [*cmd, *args], env={**engine_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(f"compose {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def cli(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """The host's `imgsearch` CLI (this checkout's, from the virtualenv running the tests)."""
    exe = Path(sys.executable).with_name("imgsearch")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "imgsearch"]
    done = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"imgsearch {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def cli_json(*args: str, timeout: float = 300) -> dict:
    return json.loads(cli(*args, "--json", timeout=timeout).stdout)


def free_ports(count: int, consecutive: bool = False) -> list[int]:
    """Ports free on 127.0.0.1 now, in 20000-30000 (below the ephemeral range); `consecutive`
    gives a run of `count` adjacent ones."""
    rng = random.Random()
    for _ in range(200):
        if consecutive:
            start = rng.randrange(20_000, 30_000 - count)
            wanted = list(range(start, start + count))
        else:
            wanted = rng.sample(range(20_000, 30_000), count)
        if all(_free(p) for p in wanted):
            return wanted
    raise AssertionError("no free ports in 20000-30000")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for(what: str, ready: Callable[[], bool], timeout: float, every: float = 0.5) -> float:
    """Polls `ready` until true; returns the seconds it took, fails with `what` after `timeout`."""
    start = time.monotonic()
    while not ready():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)
    return time.monotonic() - start


def serving(addr: str) -> bool:
    return cli("health", "--addr", addr, "--timeout", "2", check=False, timeout=30).returncode == 0


def health_status(container: str) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", container, check=False).stdout.strip()


def metrics(port: int) -> dict[str, float]:
    """Every sample of 127.0.0.1:PORT/metrics, label sets summed per metric name."""
    return scrape_metrics(port)


def embedded(port: int) -> float:
    try:
        return metrics(port).get("imgsearch_images_embedded_total", 0.0)
    except OSError:
        return 0.0


@dataclass
class Container:
    """One `docker run -d --network host` container serving on 127.0.0.1:port."""

    name: str
    port: int
    metrics_port: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_serving(self, timeout: float) -> float:
        """Seconds from `docker run` (or start) to SERVING; fails early if the container exits."""

        def ready() -> bool:
            state = docker("inspect", "-f", "{{.State.Running}}", self.name, check=False).stdout.strip()
            if state != "true":
                raise AssertionError(f"{self.name} exited before SERVING:\n{self.logs()}")
            return serving(self.addr)

        wait_for(f"{self.name} SERVING", ready, timeout)
        return time.monotonic() - self.started

    def logs(self, tail: int = 30) -> str:
        done = docker("logs", "--tail", str(tail), self.name, check=False)
        return done.stdout + done.stderr

    def start(self) -> Container:
        self.started = time.monotonic()
        docker("start", self.name)
        return self


def run_container(
    name: str,
    image: str,
    *command: str,
    port: int,
    metrics_port: int = 0,
    env: dict[str, str] | None = None,
    volume: str | None = None,
    options: Sequence[str] = (),
) -> Container:
    """Starts a detached container on the host network, listening on 127.0.0.1 only."""
    environment = {
        "IMGSEARCH_HOST": "127.0.0.1",
        "IMGSEARCH_PORT": str(port),
        "IMGSEARCH_METRICS_PORT": str(metrics_port),
        **(env or {}),
    }
    args = ["run", "-d", "--name", name, "--label", LABEL, "--network", "host"]
    for key, value in environment.items():
        args += ["-e", f"{key}={value}"]
    if volume:
        args += ["-v", f"{volume}:/data"]
    container = Container(name, port, metrics_port)
    docker(*args, *options, image, *command)
    return container


def remove(*names: str) -> None:
    if names:
        docker("rm", "-f", "-v", *names, check=False)


def cleanup() -> None:
    """Every container and volume a test run left (by label)."""
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
    remove(*ids)
    vols = docker("volume", "ls", "-q", "--filter", f"label={LABEL}", check=False).stdout.split()
    if vols:
        docker("volume", "rm", "-f", *vols, check=False)


def prune() -> None:
    """Drops the images earlier builds left untagged and caps the build cache (the layers of the
    current build stay, so the next run is warm)."""
    docker("image", "prune", "-f", check=False)
    docker("builder", "prune", "-f", "--keep-storage", "12GB", check=False)


def new_volume(name: str) -> str:
    docker("volume", "create", "--label", LABEL, name)
    return name


def image_size_mb(image: str) -> float:
    return int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip()) / 1e6


def build(target: str, tag: str) -> float:
    """Builds a target of deploy/Dockerfile from the checkout on the local Debian base; seconds."""
    start = time.monotonic()
    done = docker(
        "build", "--network", "host", "--progress", "plain", "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}",
        "-f", "deploy/Dockerfile", "--target", target, "-t", tag, ".",
        check=False, timeout=1800, cwd=ROOT,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"building target {target} failed:\n{done.stderr[-5000:]}")
    return time.monotonic() - start
