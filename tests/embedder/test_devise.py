"""The trained DeViSE head as the embedder serves it: saving, reloading, refusing the wrong vectors."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.embedder.training import datasets
from imgsearch.embedder.training.features import cached_features
from imgsearch.embedder.training.trainer import TrainConfig, train_head
from imgsearch.embedder.wordspace.devise import (
    DeviseHead,
    class_vectors,
    imagenet_evidence,
    load_devise_head,
    normalise,
)
from imgsearch.embedder.wordspace.head_loading import load_head
from imgsearch.embedder.wordspace.heads import ConseHead
from imgsearch.embedder.wordspace.wordvectors import load_word_vectors
from imgsearch.errors import FailedPrecondition

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not datasets.FASHION_MNIST_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist"
    ),
]


@pytest.fixture(scope="module")
def trained(cache, words):
    """A head trained on 20 images of each of 8 Fashion-MNIST classes (sandal and coat held out)."""
    full = datasets.load_fashion_mnist()
    picks = [np.flatnonzero(full.labels == c)[:25] for c in range(10)]
    ds = full.subset(np.sort(np.concatenate(picks)))
    feats = cached_features(ds, cache)
    head = train_head(ds, feats, words, ["sandal", "coat"], TrainConfig(epochs=3, batch_size=32))
    return head, feats


def test_saved_head_reloads_to_identical_outputs(trained, words, tmp_path):
    head, feats = trained
    path = head.save(tmp_path / "head.keras")
    again = load_devise_head(path, words)
    before = head.embed(feats.features, feats.logits)
    after = again.embed(feats.features, feats.logits)
    assert before.shape == (len(feats.features), words.dim) and before.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(before, after)
    assert again.meta["holdout_classes"] == ["coat", "sandal"]
    assert again.meta["word_vectors"] == {"source": words.source, "dim": words.dim}
    assert len(again.meta["losses"]) == 3


def test_the_embedder_loads_a_trained_head_by_path(trained, words, tmp_path):
    head, feats = trained
    path = head.save(tmp_path / "served.keras")
    served = load_head(str(path), words, tmp_path)
    assert served.name == "devise" and served.dim == words.dim
    assert np.array_equal(
        served.embed(feats.features, feats.logits), head.embed(feats.features, feats.logits)
    )


def test_a_head_of_another_dimension_is_refused(trained, tmp_path):
    head, _ = trained
    path = head.save(tmp_path / "head.keras")
    glove = tmp_path / "tiny-glove.25d.txt"  # real GloVe text format, a different dimension
    rng = np.random.default_rng(0)
    glove.write_text(
        "".join(
            f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=25)) + "\n"
            for w in ("shirt", "coat", "sandal")
        )
    )
    other = load_word_vectors(str(glove), tmp_path / "wv-cache")
    with pytest.raises(FailedPrecondition, match="25-d"):
        load_devise_head(path, other)


def test_a_head_trained_on_other_word_vectors_of_the_same_dimension_is_refused(trained, words, tmp_path):
    head, _ = trained
    path = head.save(tmp_path / "head.keras")
    impostor = type(words)(words=words.words[:1000], vectors=words.vectors[:1000], source="glove-other-50d")
    with pytest.raises(FailedPrecondition, match="retrain"):
        load_devise_head(path, impostor)


def test_a_file_that_is_no_head_is_refused(words, tmp_path):
    bogus = tmp_path / "head.keras"
    bogus.write_bytes(b"not a head")
    with pytest.raises(FailedPrecondition, match="not a DeViSE head"):
        load_devise_head(bogus, words)
    with pytest.raises(FailedPrecondition, match="not found"):
        DeviseHead.read(tmp_path / "missing.keras")


def test_imagenet_evidence_points_at_the_word_the_classifier_names(words):
    """The ImageNet classifier's belief counts for the class words named like what it sees."""
    classes = datasets.FASHION_MNIST_CLASSES
    affinity = normalise(ConseHead.from_word_vectors(words).class_vectors) @ class_vectors(classes, words).T
    logits = np.zeros((3, 1000), np.float32)
    logits[0, 774] = 12.0  # ImageNet 'sandal'
    logits[1, 869] = 12.0  # 'trench coat'
    logits[2, 770] = 12.0  # 'running shoe'
    evidence = imagenet_evidence(logits, affinity, beta=100.0)
    assert evidence.shape == (3, len(classes))
    # Raw evidence is on each word's own scale (bag has many ImageNet bags), so compare per word,
    # as the head does after standardising each word over validation images.
    for row, word in enumerate(["sandal", "coat", "sneaker"]):
        assert evidence[:, classes.index(word)].argmax() == row, (word, evidence)
    assert evidence[1, classes.index("coat")] > evidence[0, classes.index("coat")] + 3


def test_the_served_head_mixes_in_imagenet_evidence_from_its_file(trained, words, tmp_path):
    head, feats = trained
    again = load_devise_head(head.save(tmp_path / "head.keras"), words)
    assert again.conse_vectors is not None and again.mix["mode"] == "stacked"
    scores = again.class_scores(feats.features, feats.logits)
    vectors = again.embed(feats.features, feats.logits)
    # One vector per image ranks the class words the way the calibrated scores do, mostly.
    agree = (vectors @ again.class_vecs.T).argmax(axis=1) == scores.argmax(axis=1)
    assert agree.mean() > 0.9
