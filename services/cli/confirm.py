"""The question destructive commands ask on a terminal (`delete --all`, deletes by filter)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from imgsearch.cli.status import CommandError, ExitStatus


def confirm(question: str, args: argparse.Namespace, err: TextIO) -> None:
    """Asks `question` on a terminal unless `--yes`; CommandError (USAGE) unless the answer is yes.
    Off a terminal (scripts, pipes) nothing is asked."""
    if getattr(args, "yes", False) or not sys.stdin.isatty():
        return
    err.write(f"{question} [y/N] ")
    err.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise CommandError("cancelled, nothing changed (pass --yes to skip the question)", ExitStatus.USAGE)


def namespace_name(args: argparse.Namespace) -> str:
    namespace = getattr(args, "namespace", None)
    return f"namespace {namespace!r}" if namespace else "the default namespace"
