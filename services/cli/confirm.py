"""The question destructive commands ask on a terminal (`delete --all`, deletes by filter)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO


def asks(args: argparse.Namespace) -> bool:
    """Whether a question would be asked: on a terminal, without `--yes`."""
    return not getattr(args, "yes", False) and sys.stdin.isatty()


def confirm(question: str, args: argparse.Namespace, err: TextIO) -> bool:
    """Asks `question` on a terminal unless `--yes`; True when the answer is yes. Off a terminal
    (scripts, pipes) nothing is asked and the answer is yes."""
    if not asks(args):
        return True
    err.write(f"{question} [y/N] ")
    err.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def namespace_name(args: argparse.Namespace) -> str:
    namespace = getattr(args, "namespace", None)
    return f"namespace {namespace!r}" if namespace else "the default namespace"
