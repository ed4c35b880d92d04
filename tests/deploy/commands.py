"""The `imgsearch` command lines the deployment files run, and what each image can run."""

from __future__ import annotations

import shlex
from pathlib import Path

# The `imgsearch` subcommands the deployment files may run (the CLI's table has more).
SUBCOMMANDS = ("serve", "health", "warmup", "ingest", "search")
SERVE_ARGS = {"all", "embedder", "indexer", "query"}
# Images without TensorFlow cannot serve the embedder (nor all three services together).
LITE_TARGETS = {"lite"}


def imgsearch_argv(argv: list[str], entrypoint_is_imgsearch: bool) -> list[str] | None:
    """The arguments after `imgsearch` in a command line, or None when it runs something else."""
    if argv and Path(argv[0]).name == "imgsearch":
        return argv[1:]
    if argv and argv[0] in ("CMD", "CMD-SHELL"):
        return imgsearch_argv(argv[1:] if argv[0] == "CMD" else shlex.split(argv[1]), False)
    if entrypoint_is_imgsearch:
        return argv
    return None


def check_imgsearch_argv(args: list[str], where: str) -> None:
    """Fails unless `imgsearch <args>` names a known subcommand (and known services for serve)."""
    assert args, f"{where}: `imgsearch` without a subcommand"
    assert args[0] in SUBCOMMANDS, f"{where}: unknown subcommand {args[0]!r}"
    if args[0] == "serve":
        services = [a for a in args[1:] if not a.startswith("-")]
        assert set(services) <= SERVE_ARGS, f"{where}: serve {services}"
