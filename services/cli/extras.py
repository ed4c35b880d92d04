"""Which commands need the `[server]` extra, and the one-line answer when it is not installed.

A plain `pip install imgsearch` is the client: `serve`, `warmup`, `demo`, `train` and `eval` need the
models, the store and the HTTP server. Their modules are looked up (importlib.util.find_spec, nothing
imported), so a client-only install says what to install instead of failing with a traceback.
"""

from __future__ import annotations

import importlib.util

from imgsearch.cli.status import CommandError, ExitStatus

# import name -> distribution: what serving needs in every server image (the `embedder` and `lite`
# Docker targets serve without TensorFlow and pyarrow: the CNN runs on LiteRT), and what training
# adds; the message names the distributions.
SERVING_MODULES = {
    "qdrant_edge": "qdrant-edge-py",
    "aiohttp": "aiohttp",
    "PIL": "pillow",
    "grpc_reflection": "grpcio-reflection",
}
TRAINING_MODULES = {**SERVING_MODULES, "tensorflow": "tensorflow-cpu", "pyarrow": "pyarrow"}
COMMAND_MODULES = {
    "serve": SERVING_MODULES,
    "warmup": SERVING_MODULES,
    "demo": SERVING_MODULES,
    "train": TRAINING_MODULES,
    "eval": TRAINING_MODULES,
}
SERVER_COMMANDS = frozenset(COMMAND_MODULES)


def missing_server_modules(command: str = "train") -> list[str]:
    """The server extra's distributions `command` needs and this environment lacks."""
    return [dist for module, dist in COMMAND_MODULES[command].items() if not _found(module)]


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_server_extra(command: str) -> None:
    """CommandError (exit 1) naming the extra when `command` needs it and it is not installed."""
    if command not in SERVER_COMMANDS:
        return
    missing = missing_server_modules(command)
    if missing:
        raise CommandError(
            f"`imgsearch {command}` needs the server install: pip install 'imgsearch[server]' "
            f"(missing: {', '.join(missing)}); a plain install is the client only",
            ExitStatus.ERROR,
        )
