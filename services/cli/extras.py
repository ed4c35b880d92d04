"""Which commands need the `[server]` extra, and the one-line answer when it is not installed.

A plain `pip install imgsearch` is the client: `serve`, `warmup`, `demo`, `train` and `eval` need the
models, the store and the HTTP server. Their modules are looked up (importlib.util.find_spec, nothing
imported), so a client-only install says what to install instead of failing with a traceback.
"""

from __future__ import annotations

import importlib.util

from imgsearch.cli.status import CommandError, ExitStatus

SERVER_COMMANDS = frozenset({"serve", "warmup", "demo", "train", "eval"})
# import name -> distribution, for the message: one of each group the server extra brings in
SERVER_MODULES = {
    "tensorflow": "tensorflow-cpu",
    "qdrant_edge": "qdrant-edge-py",
    "aiohttp": "aiohttp",
    "PIL": "pillow",
    "pyarrow": "pyarrow",
}


def missing_server_modules() -> list[str]:
    """The server extra's distributions this environment lacks."""
    return [dist for module, dist in SERVER_MODULES.items() if not _found(module)]


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_server_extra(command: str) -> None:
    """CommandError (exit 1) naming the extra when `command` needs it and it is not installed."""
    if command not in SERVER_COMMANDS:
        return
    missing = missing_server_modules()
    if missing:
        raise CommandError(
            f"`imgsearch {command}` needs the server install: pip install 'imgsearch[server]' "
            f"(missing: {', '.join(missing)}); a plain install is the client only",
            ExitStatus.ERROR,
        )
