"""Every setting a user can give is documented where users look for it."""

from __future__ import annotations

from pathlib import Path

from imgsearch.config.settings import _ENVIRONMENT

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_environment_variable_is_in_the_readme():
    text = README.read_text()
    missing = [variable for variable, _ in _ENVIRONMENT.values() if f"`{variable}`" not in text]
    assert missing == []
