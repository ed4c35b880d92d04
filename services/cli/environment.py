"""The streams and environment a command runs with, injectable so tests need no subprocess."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Environment:
    """stdout takes results (tables, `--json`), stderr takes messages and progress.

    `environ` feeds `Settings.from_env`; tests pass a dict instead of touching os.environ.
    """

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
