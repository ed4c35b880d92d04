"""The streams and environment a command runs with, injectable so tests need no subprocess."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass
class Environment:
    """stdout takes results (tables, `--json`), stderr takes messages and progress.

    `environ` feeds `Settings.from_env`; tests pass a dict instead of touching os.environ.
    """

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


def command_name(argv0: str | None = None, cwd: Path | None = None) -> str:
    """How to type the `imgsearch` command that is running, so printed commands work as printed:
    `imgsearch` when that is on PATH, else its path (`.venv/bin/imgsearch` after `make`)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    cwd = cwd or Path.cwd()
    script = Path(argv0) if Path(argv0).name == "imgsearch" else Path(sys.executable).parent / "imgsearch"
    on_path = shutil.which("imgsearch")
    if on_path and (not script.exists() or Path(on_path).resolve() == script.resolve()):
        return "imgsearch"
    if not script.exists():
        return "imgsearch"
    path = script.absolute()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)
