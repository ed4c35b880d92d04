"""CI runs the client-only install check after the tests; a syntax error or a reordering there would
only show on the CI machine."""

from __future__ import annotations

import subprocess

from tests.packaging.test_client_only import SERVER_ONLY_MODULES
from tests.packaging.without_packages import ROOT

CI_RUN = ROOT / ".ci" / "run"
CHECK = ROOT / "scripts" / "client-only-check.sh"


def test_ci_scripts_parse() -> None:
    for script in (CI_RUN, CHECK):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


def test_ci_runs_the_client_only_check_after_the_tests() -> None:
    lines = [line.strip() for line in CI_RUN.read_text().splitlines()]
    assert "set -euo pipefail" in lines, "a failing step must fail CI"
    check = next(i for i, line in enumerate(lines) if "scripts/client-only-check.sh" in line)
    assert lines.index("make test") < check


def test_client_only_check_refuses_the_same_server_packages() -> None:
    text = CHECK.read_text()
    assert "import tensorflow" in text
    missing = {m for m in SERVER_ONLY_MODULES if f'"{m}"' not in text}
    assert not missing, f"scripts/client-only-check.sh does not check {missing}"
