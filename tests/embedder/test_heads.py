"""The ConSE zero-shot head and the ImageNet class word vectors it is built from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgsearch.embedder.wordspace import class_words
from imgsearch.embedder.wordspace.class_words import WordNet, build_class_vectors, class_names, wordnet_ids
from imgsearch.embedder.wordspace.head_loading import load_head
from imgsearch.embedder.wordspace.heads import ConseHead
from imgsearch.embedder.wordspace.wordvectors import WordVectors, load_word_vectors
from imgsearch.errors import FailedPrecondition

CAT_WORDS = {"cat", "cats", "kitten", "feline", "tabby"}
COFFEE_WORDS = {"coffee", "espresso", "cappuccino", "latte", "cup"}


@pytest.fixture(scope="module")
def glove(tmp_path_factory: pytest.TempPathFactory) -> WordVectors:
    return load_word_vectors(None, tmp_path_factory.mktemp("cache"))


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    m = rng.normal(size=(n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_one_dominant_class_gives_that_class_vector():
    classes = _unit_rows(np.random.default_rng(0), 10, 7)
    logits = np.zeros((2, 10))
    logits[0, 3] = 30.0
    logits[1, 8] = 30.0
    out = ConseHead(classes, top_t=5).embed(np.zeros((2, 1280)), logits)
    assert out.shape == (2, 7) and out.dtype == np.float32
    assert np.allclose(out[0], classes[3], atol=1e-5) and np.allclose(out[1], classes[8], atol=1e-5)


def test_top_t_classes_weighted_by_probability_and_the_rest_ignored():
    classes = _unit_rows(np.random.default_rng(1), 6, 5)
    logits = np.log(np.array([[0.5, 0.3, 0.1, 0.06, 0.04, 1e-9]]))
    out = ConseHead(classes, top_t=2).embed(np.zeros((1, 1280)), logits)
    expected = 0.5 * classes[0] + 0.3 * classes[1]
    assert np.allclose(out[0], expected / np.linalg.norm(expected), atol=1e-5)
    assert np.isclose(np.linalg.norm(out[0]), 1.0, atol=1e-5)
    wider = ConseHead(classes, top_t=3).embed(np.zeros((1, 1280)), logits)
    assert not np.allclose(wider, out, atol=1e-3)  # T changes the answer


def test_classes_without_a_word_vector_cannot_vote():
    classes = _unit_rows(np.random.default_rng(2), 4, 3)
    classes[0] = 0.0
    logits = np.array([[10.0, 5.0, 0.0, 0.0]])
    out = ConseHead(classes, top_t=1).embed(np.zeros((1, 1280)), logits)
    assert np.allclose(out[0], classes[1], atol=1e-5)


def test_logits_of_the_wrong_shape_are_refused():
    head = ConseHead(_unit_rows(np.random.default_rng(3), 4, 3))
    with pytest.raises(ValueError, match="logits"):
        head.embed(np.zeros((1, 1280)), np.zeros((1, 5)))


def test_class_names_and_wordnet_ids_cover_imagenet():
    clean, first_synonyms, ids = class_names("clean"), class_names("wordnet"), wordnet_ids()
    assert len(clean) == len(first_synonyms) == len(ids) == 1000
    assert clean[1] == "goldfish" and clean[207] == "Golden Retriever" and first_synonyms[970] == "alp"
    assert ids[207] == "n02099601"


def test_wordnet_hypernyms_lead_from_retriever_to_dog():
    wordnet = WordNet()
    lemmas, _ = wordnet.synset(2099601)
    assert lemmas == ["golden_retriever"]
    ancestors = [wordnet.synset(o)[0] for o, _ in wordnet.ancestors(2099601, depth=4)]
    assert ["dog", "domestic_dog", "Canis_familiaris"] in ancestors


def test_class_vectors_from_clean_names(glove: WordVectors):
    cv = build_class_vectors(glove, names="clean")
    assert cv.vectors.shape == (1000, 50)
    assert np.allclose(cv.vectors[1], glove.vector("goldfish"), atol=1e-5)  # goldfish
    tabby = glove.vector("tabby") + glove.vector("cat")
    assert np.allclose(cv.vectors[281], tabby / np.linalg.norm(tabby), atol=1e-5)  # "tabby cat"
    assert len(cv.missing) < 30 and all(not cv.vectors[c].any() for c in cv.missing)


def test_wordnet_enrichment_adds_the_words_users_type(glove: WordVectors):
    cv = build_class_vectors(glove, names="clean", ancestors=1, ancestor_weight=1.0, common_rank=20_000)
    assert cv.extra[207] == "dog" and cv.extra[281] == "cat" and cv.extra[967] == "coffee"
    assert cv.missing == []
    plain = build_class_vectors(glove, names="clean")
    dog = glove.vector("dog")
    assert cv.vectors[207] @ dog > plain.vectors[207] @ dog + 0.1  # golden retriever moved towards "dog"


def test_load_head_conse(glove: WordVectors, tmp_path: Path):
    head = load_head("conse", glove, tmp_path)
    assert head.name == "conse" and head.dim == 50
    logits = np.full((1, 1000), -10.0)
    logits[0, 967] = 10.0  # espresso
    tags = [w for w, _ in glove.nearest(head.embed(np.zeros((1, 1280)), logits)[0], 5, vocab_size=50_000)]
    assert COFFEE_WORDS & set(tags), tags


def test_conse_without_wordnet_falls_back_to_names(glove: WordVectors, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(class_words, "WORDNET_DIR", Path("/nonexistent"))
    head = ConseHead.from_word_vectors(glove)
    assert "WordNet" not in head.recipe and head.recipe.startswith("clean names")


def test_load_head_other_spec_is_a_devise_head_path(glove: WordVectors, tmp_path: Path):
    with pytest.raises(FailedPrecondition, match="DeViSE head not found"):
        load_head(str(tmp_path / "missing-head.keras"), glove, tmp_path)


@pytest.mark.slow
def test_real_photos_get_the_words_users_type(glove: WordVectors, photos: dict[str, Path], tmp_path_factory):
    from imgsearch.config.settings import Limits
    from imgsearch.embedder.images import decode_image
    from imgsearch.embedder.vision.cnn import Cnn

    cnn = Cnn.load(tmp_path_factory.mktemp("cnn"))
    names = ["chelsea", "coffee", "puppy", "gold_fish"]
    batch = np.stack([decode_image(photos[n].read_bytes(), Limits()).pixels for n in names])
    features, logits = cnn.run(batch)
    vectors = load_head("conse", glove, Path(".")).embed(features, logits)
    tags = {
        n: {w for w, _ in glove.nearest(v, 5, vocab_size=50_000)} for n, v in zip(names, vectors, strict=True)
    }
    assert CAT_WORDS & tags["chelsea"], tags["chelsea"]
    assert COFFEE_WORDS & tags["coffee"], tags["coffee"]
    assert "dog" in tags["puppy"] and "fish" in tags["gold_fish"], tags
