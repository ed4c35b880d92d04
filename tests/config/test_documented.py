"""Every setting a user can give is documented where users look for it: the README or the
configuration page it links (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

from imgsearch.config.settings import _ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
PLACES = (ROOT / "README.md", ROOT / "docs" / "configuration.md")


def test_every_environment_variable_is_documented():
    text = "\n".join(place.read_text() for place in PLACES)
    missing = [variable for variable, _ in _ENVIRONMENT.values() if f"`{variable}`" not in text]
    assert missing == []


def test_the_readme_links_the_configuration_page():
    assert "(docs/configuration.md)" in (ROOT / "README.md").read_text()
