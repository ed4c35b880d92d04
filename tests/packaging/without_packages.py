"""Running Python code as if some packages were not installed, in this virtualenv.

A fresh virtualenv per test would take minutes; a meta-path finder that refuses the packages' top-level
modules gives the same ModuleNotFoundError in a second. (It is stricter in one way: find_spec on a
refused name raises instead of returning None.)
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]

# Prepended to the code run_without runs; it takes the refused names from sys.argv[1].
_REFUSE = """
import importlib.abc, sys
_refused = set(sys.argv.pop(1).split(","))

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _refused:
            raise ModuleNotFoundError(f"{name} is not installed here (refused by the test)", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def run_without(
    refused: Iterable[str], code: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a new interpreter (repository root, this virtualenv) where importing any of the
    `refused` top-level modules fails as if its package were missing; `args` become sys.argv[1:]."""
    return subprocess.run(
        [sys.executable, "-c", _REFUSE + code, ",".join(sorted(refused)), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def top_level_modules(dists: Iterable[str]) -> set[str]:
    """The installed top-level import names that only the distributions `dists` provide."""
    wanted = {canonicalize_name(d) for d in dists}
    return {
        top
        for top, owners in importlib.metadata.packages_distributions().items()
        if all(canonicalize_name(d) in wanted for d in owners)
    }


def module_exists(module: str) -> bool:
    """Whether `module` can be found (its parent packages are imported to look)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def lock_script() -> ModuleType:
    """deploy/lock_requirements.py, loaded by path: its closure() tells what an install pulls in."""
    spec = importlib.util.spec_from_file_location(
        "_lock_requirements", ROOT / "deploy" / "lock_requirements.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
