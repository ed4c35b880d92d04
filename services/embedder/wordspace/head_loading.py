"""Which semantic head a spec names: the one place a head is chosen and loaded."""

from __future__ import annotations

from pathlib import Path

from imgsearch.embedder.wordspace.devise import load_devise_head
from imgsearch.embedder.wordspace.heads import ConseHead, SemanticHead
from imgsearch.embedder.wordspace.wordvectors import WordVectors


def load_head(spec: str, word_vectors: WordVectors, cache_dir: Path) -> SemanticHead:
    """'conse' -> the zero-shot ConSE head; anything else is the path of a trained DeViSE head."""
    if spec == "conse":
        return ConseHead.from_word_vectors(word_vectors)
    return load_devise_head(spec, word_vectors)
