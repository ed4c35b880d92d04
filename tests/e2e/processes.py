"""Starting `imgsearch serve` as real separate processes on free ports, for restart, signal and
scale-out tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

CLI = str(Path(sys.executable).parent / "imgsearch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`imgsearch serve ROLES...` in its own process group, logging to a file."""

    def __init__(
        self, data: Path, *roles: str, env: dict[str, str] | None = None, metrics: bool = False, port: int = 0
    ):
        self.roles = roles
        self.port = port or free_port()
        self.metrics_port = free_port() if metrics else 0
        data.mkdir(parents=True, exist_ok=True)
        self.data = data
        self.env = dict(
            os.environ,
            IMGSEARCH_DATA=str(data),
            IMGSEARCH_PORT=str(self.port),
            IMGSEARCH_HOST="127.0.0.1",
            IMGSEARCH_METRICS_PORT=str(self.metrics_port),
            IMGSEARCH_GRACE_SECONDS="20",
            **(env or {}),
        )
        self.log_path = data / f"serve-{self.port}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [CLI, "serve", *roles],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def restarted(self) -> ServerProcess:
        """The same roles on the same port and data (after kill or terminate)."""
        again = ServerProcess(self.data, *self.roles, metrics=bool(self.metrics_port), port=self.port)
        return again

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_serving(self, timeout: float = 180) -> ServerProcess:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.addr) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"server exited {self.proc.returncode}: {self.tail()}"
                try:
                    r = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        return self
                except grpc.RpcError:
                    pass
                time.sleep(0.5)
        raise TimeoutError(f"not SERVING after {timeout} s: {self.tail()}")

    def metric(self, name: str) -> float:
        """Sum of a Prometheus metric's samples (all label sets) from /metrics."""
        text = (
            urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        )
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#") and line[len(name)] in " {"
        )

    def tail(self, n: int = 15) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text().splitlines()[-n:])

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()
