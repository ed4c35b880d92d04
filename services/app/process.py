"""`imgsearch serve ROLES...` as a child process: on its own port and data folder, logging to a
file, in its own process group. The demo, the benchmarks and the multi-process tests use it."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path


def free_port() -> int:
    """A port nobody uses right now, below the ephemeral range: a port the OS hands out (port 0)
    comes from that range, where an outgoing connection may take it before the server binds it."""
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(64):
        port = rng.randrange(10_000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # every try taken: let the OS choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ephemeral_low() -> int:
    """The first port of the OS's ephemeral range (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class ServerExited(RuntimeError):
    """The server process ended before it was SERVING."""


class ServerProcess:
    """A running `serve`; `wait_serving()` blocks until its health check says SERVING."""

    def __init__(
        self,
        data: Path,
        *roles: str,
        port: int = 0,
        env: Mapping[str, str] | None = None,
        metrics: bool = False,
        log_path: Path | None = None,
        grace_seconds: float = 20,
    ):
        self.data = Path(data)
        self.roles = roles
        self.port = port or free_port()
        self.metrics_port = free_port() if metrics else 0
        self.data.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path or self.data / f"serve-{self.port}.log"
        self._env = dict(env if env is not None else os.environ)
        child_env = dict(
            self._env,
            IMGSEARCH_DATA=str(self.data),
            IMGSEARCH_PORT=str(self.port),
            IMGSEARCH_HOST="127.0.0.1",
            IMGSEARCH_METRICS_PORT=str(self.metrics_port),
            IMGSEARCH_GRACE_SECONDS=str(grace_seconds),
            PYTHONUNBUFFERED="1",
        )
        self._grace = grace_seconds
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imgsearch.cli.main", "serve", *roles],
            env=child_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.proc.poll() is None

    def serving(self, timeout: float = 2.0) -> bool:
        """One health check of the overall ("") service."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(self.addr) as channel:
            try:
                r = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout
                )
            except grpc.RpcError:
                return False
        return r.status == health_pb2.HealthCheckResponse.SERVING

    def wait_serving(
        self, timeout: float = 240, on_wait: Callable[[float], None] | None = None
    ) -> ServerProcess:
        """Polls health until SERVING; ServerExited if the process ends, TimeoutError after `timeout`."""
        start = time.monotonic()
        while True:
            if not self.running():
                raise ServerExited(f"the server exited with status {self.proc.returncode}:\n{self.tail()}")
            if self.serving():
                return self
            waited = time.monotonic() - start
            if waited > timeout:
                raise TimeoutError(f"the server was not SERVING after {timeout:.0f} s:\n{self.tail()}")
            if on_wait:
                on_wait(waited)
            time.sleep(0.5)

    def metrics(self) -> dict[str, float]:
        """Every Prometheus sample from /metrics, label sets summed per metric name."""
        return scrape_metrics(self.metrics_port)

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, n: int = 15) -> str:
        self._log.flush()
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def terminate(self, timeout: float | None = None) -> int | None:
        """SIGTERM (the server drains and flushes its store), SIGKILL if it outlives `timeout`."""
        if self.running():
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout if timeout is not None else self._grace + 30)
        self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, at once (a crash, as far as clients can tell)."""
        if self.running():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def restarted(self) -> ServerProcess:
        """The same roles on the same port and data folder."""
        return ServerProcess(
            self.data,
            *self.roles,
            port=self.port,
            env=self._env,
            metrics=bool(self.metrics_port),
            grace_seconds=self._grace,
        )

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()


def scrape_metrics(port: int, host: str = "127.0.0.1") -> dict[str, float]:
    """Every Prometheus sample a server's /metrics shows, label sets summed per metric name."""
    text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.split("{", 1)[0]
            out[name] = out.get(name, 0.0) + float(value)
    return out
