"""Fixtures of the embedder's training and evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """One scratch model cache for the session: the CNN is converted into it once, and subsets'
    features are cached there instead of in the user's cache."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def words(cache):
    """The packaged GloVe 6B 50d."""
    from imgsearch.embedder.wordspace.wordvectors import load_word_vectors

    return load_word_vectors(None, cache)
