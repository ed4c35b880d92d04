"""Training a DeViSE head: datasets, the split, the losses, and zero-shot on held-out classes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from imgsearch.embedder.training import datasets
from imgsearch.embedder.training.datasets import load_dataset, load_fashion_mnist, upsample_grey
from imgsearch.embedder.training.evaluation import evaluate
from imgsearch.embedder.training.features import Features, cache_path, cached_features
from imgsearch.embedder.training.trainer import (
    PSEUDO_TAUS,
    PSEUDO_WEIGHTS,
    TrainConfig,
    calibrate,
    split_fit_validation,
    train_head,
)
from imgsearch.embedder.vision.cnn_loading import RUNTIMES
from imgsearch.embedder.wordspace.class_words import label_words
from imgsearch.embedder.wordspace.devise import class_vectors
from imgsearch.errors import FailedPrecondition, InvalidArgument

needs_fashion = pytest.mark.skipif(
    not datasets.FASHION_MNIST_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist"
)


def fashion_subset(per_class_train: int, per_class_test: int) -> datasets.Dataset:
    """The first images of each class from Fashion-MNIST's train and test parts."""
    full = load_fashion_mnist()
    picks = []
    for c in range(len(full.classes)):
        members = full.labels == c
        picks.append(np.flatnonzero(members & ~full.is_test)[:per_class_train])
        picks.append(np.flatnonzero(members & full.is_test)[:per_class_test])
    return full.subset(np.sort(np.concatenate(picks)))


def test_class_names_map_to_their_words():
    assert label_words("dining_table") == ["dining", "table"]
    assert label_words("Ankle boot") == ["ankle", "boot"]
    assert label_words("t-shirt") == ["t-shirt"]


def test_multi_word_class_is_the_mean_of_its_words(words):
    got = class_vectors(["dining_table"], words)[0]
    mean = words.vector("dining") + words.vector("table")
    np.testing.assert_allclose(got, mean / np.linalg.norm(mean), atol=1e-6)
    with pytest.raises(InvalidArgument, match="qqzzxx"):
        class_vectors(["qqzzxx"], words)


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(FailedPrecondition, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


@needs_fashion
def test_fashion_mnist_has_its_official_split_and_cnn_sized_images():
    ds = load_fashion_mnist()
    assert len(ds) == 70_000 and int(ds.is_test.sum()) == 10_000
    assert np.bincount(ds.labels).tolist() == [7000] * 10
    px = ds.images(np.array([0, 69_999]))
    assert px.shape == (2, 224, 224, 3) and px.dtype == np.uint8
    # Products are shown dark on white, like catalogue photos: the corners are background.
    assert px[:, :8, :8].mean() > 240


def test_upsampling_matches_pillow_bilinear():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    ours = upsample_grey(grey)
    assert ours.shape == (3, 224, 224, 3)
    pil = np.stack([np.asarray(Image.fromarray(255 - g).resize((224, 224), Image.BILINEAR)) for g in grey])
    assert np.abs(ours[..., 0].astype(int) - pil).max() <= 1


def test_split_is_seeded_stratified_and_disjoint():
    labels = np.repeat(np.arange(4), 50)
    candidates = np.arange(200)
    fit, val = split_fit_validation(labels, candidates, 0.2, seed=3)
    again, _ = split_fit_validation(labels, candidates, 0.2, seed=3)
    other, _ = split_fit_validation(labels, candidates, 0.2, seed=4)
    assert np.array_equal(fit, again) and not np.array_equal(fit, other)
    assert not set(fit) & set(val) and len(fit) + len(val) == 200
    assert np.bincount(labels[val]).tolist() == [10, 10, 10, 10]


def test_folder_dataset_uses_class_folders_and_a_seeded_split(photos, tmp_path):
    for label, names in {
        "fish": ["blue_tang", "gold_fish", "red_fish", "green_fish", "fighter_fish"],
        "dog": ["puppy", "puppies"],
        "sky": ["dusk", "night", "sunrise"],
    }.items():
        (tmp_path / label).mkdir()
        for n in names:
            shutil.copy(photos[n], tmp_path / label / f"{n}.jpg")
    ds = load_dataset(str(tmp_path))
    assert ds.classes == ("dog", "fish", "sky")
    assert np.bincount(ds.labels).tolist() == [2, 5, 3]
    assert np.array_equal(ds.is_test, load_dataset(str(tmp_path)).is_test)  # the same split every time
    assert int(ds.is_test.sum()) == 3  # 20% of each class, rounded, at least one
    assert ds.images(np.array([0])).shape == (1, 224, 224, 3)
    with pytest.raises(InvalidArgument, match="unknown class 'cat'"):
        ds.class_index(["cat"])


def test_the_feature_cache_is_kept_apart_per_runtime(tmp_path):
    paths = {r: cache_path(tmp_path, "fashion-mnist", "efficientnet-lite0", r) for r in RUNTIMES}
    assert len(set(paths.values())) == len(RUNTIMES)
    assert paths["keras"].name == "fashion-mnist--efficientnet-lite0-keras-v1"
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / label / "x.png")
    with pytest.raises(InvalidArgument, match="unknown CNN runtime 'onnx'"):
        cached_features(load_dataset(str(tmp_path)), tmp_path / "cache", runtime="onnx")


@pytest.mark.slow
def test_training_features_of_real_photos_are_the_same_on_litert_and_keras(photos, cache, tmp_path):
    """Training extracts on the configured runtime (LiteRT by default); Keras gives the same features
    and classes, and each runtime's features are cached apart, never reused for the other."""
    for i, (name, path) in enumerate(sorted(photos.items())):
        folder = tmp_path / ("even" if i % 2 == 0 else "odd")
        folder.mkdir(exist_ok=True)
        shutil.copy(path, folder / f"{name}{path.suffix}")
    ds = load_dataset(str(tmp_path))
    litert = cached_features(ds, cache)
    keras = cached_features(ds, cache, runtime="keras")
    assert len(litert.features) == len(photos)
    np.testing.assert_allclose(litert.features, keras.features, rtol=0, atol=1e-4)
    np.testing.assert_allclose(litert.logits, keras.logits, rtol=0, atol=1e-4)
    assert list(np.argmax(litert.logits, 1)) == list(np.argmax(keras.logits, 1))
    folders = {r: cache_path(cache, ds.key, "efficientnet-lite0", r) for r in ("litert", "keras")}
    metas = {r: json.loads((folder / "meta.json").read_text()) for r, folder in folders.items()}
    assert {r: (m["runtime"], m["complete"]) for r, m in metas.items()} == {
        "litert": ("litert", True),
        "keras": ("keras", True),
    }


@pytest.mark.slow
@needs_fashion
def test_head_trained_on_a_few_hundred_images_names_held_out_classes(cache, words):
    """Sandal and coat are never seen in training; the head must still find them well above chance."""
    ds = fashion_subset(per_class_train=60, per_class_test=30)
    feats = cached_features(ds, cache)
    head = train_head(ds, feats, words, ["sandal", "coat"], TrainConfig(epochs=15, batch_size=64))
    m = head.meta
    assert m["holdout_classes"] == ["coat", "sandal"]
    assert m["train_images"] == 8 * 48 and m["validation_images"] == 8 * 12
    assert len(m["losses"]) == 15 and 1 <= m["best_epoch"] <= 15
    assert m["losses"][-1]["loss"] < m["losses"][0]["loss"]
    best = m["losses"][m["best_epoch"] - 1]["val_loss"]
    assert best == min(e["val_loss"] for e in m["losses"])  # the best validation epoch is the one kept

    test = np.flatnonzero(ds.is_test)
    part = feats.take(test)
    labels = ds.labels[test]
    held = ds.class_index(["coat", "sandal"])

    def measure(h):
        vectors = h.embed(part.features, part.logits)
        return vectors, evaluate(vectors, labels, h.class_vecs, ds.classes, held)

    vectors, report = measure(head)
    # Chance among the 10 class words is 0.10 at hit@1 and 0.50 at hit@5.
    assert report["seen"]["hit@1"] > 0.6, report
    assert report["zero_shot"]["hit@5"] > 0.7, report
    assert report["text_to_image"]["map"] > 0.5, report
    # Between the two held-out words alone (chance 0.5) the head knows a coat from a sandal.
    unseen = np.isin(labels, held)
    pick = np.array(held)[(vectors[unseen] @ head.class_vecs[held].T).argmax(axis=1)]
    assert np.mean(pick == labels[unseen]) > 0.75

    # A larger zero-shot budget gives held-out words more room: hit@1 well above chance.
    val = np.flatnonzero(~ds.is_test & ~np.isin(ds.labels, held))
    _, val_idx = split_fit_validation(ds.labels, val, 0.2, 0)
    calibrate(head, feats.features[val_idx], feats.logits[val_idx], ds.labels[val_idx], words, budget=0.15)
    _, generous = measure(head)
    assert generous["zero_shot"]["hit@1"] > 0.3, generous
    assert generous["zero_shot"]["hit@1"] > report["zero_shot"]["hit@1"]

    plain = train_head(
        ds, feats, words, ["sandal", "coat"], TrainConfig(epochs=15, batch_size=64, mix="plain")
    )
    _, plain_report = measure(plain)
    # The network alone collapses onto the seen words (the trial); the calibrated head does not.
    assert plain_report["zero_shot"]["hit@1"] < generous["zero_shot"]["hit@1"]


@pytest.mark.slow
@needs_fashion
def test_held_out_images_never_reach_training_or_calibration(cache, words):
    """Held-out classes' train images are poisoned with NaN: any use of them would poison the head."""
    ds = fashion_subset(per_class_train=40, per_class_test=10)
    feats = cached_features(ds, cache)
    held = ds.class_index(["sandal", "coat"])
    poison = np.isin(ds.labels, held) | ds.is_test  # held-out images and the whole test split
    features = np.where(poison[:, None], np.nan, np.asarray(feats.features)).astype(np.float32)
    logits = np.where(poison[:, None], np.nan, np.asarray(feats.logits)).astype(np.float32)
    head = train_head(
        ds, Features(features, logits), words, ["sandal", "coat"], TrainConfig(epochs=4, batch_size=64)
    )
    mix = head.meta["mix"]
    assert mix["mode"] == "stacked"
    numbers = [v for k, v in mix.items() if isinstance(v, float)] + mix["mu"] + mix["sd"]
    assert np.all(np.isfinite(numbers)), mix
    choice = mix["pseudo_zero_shot"]  # chosen on pseudo-zero-shot splits of the seen classes
    assert choice["imagenet_weight"] in PSEUDO_WEIGHTS and choice["tau"] in PSEUDO_TAUS
    assert mix["imagenet_weight"] == choice["imagenet_weight"] and mix["tau"] == choice["tau"]
    vectors = head.embed(np.asarray(feats.features), np.asarray(feats.logits))
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
@needs_fashion
def test_hinge_loss_trains_and_is_recorded(cache, words):
    ds = fashion_subset(per_class_train=60, per_class_test=30)
    feats = cached_features(ds, cache)
    head = train_head(
        ds, feats, words, ["sandal", "coat"], TrainConfig(loss="hinge", epochs=6, batch_size=64)
    )
    assert head.meta["loss"] == "hinge" and head.meta["config"]["margin"] == 0.1
    losses = [e["loss"] for e in head.meta["losses"]]
    assert losses[-1] < losses[0]
    test = np.flatnonzero(ds.is_test & np.isin(ds.labels, ds.class_index(["sandal", "coat"]), invert=True))
    part = feats.take(test)
    report = evaluate(head.embed(part.features, part.logits), ds.labels[test], head.class_vecs, ds.classes)
    assert report["seen"]["hit@1"] > 0.6


def test_unknown_loss_and_too_few_classes_are_refused(words):
    ds = datasets.Dataset(
        "tiny", "tiny", ("cat", "dog"), np.array([0, 1]), np.array([False, False]), lambda i: None
    )
    from imgsearch.embedder.training.features import Features

    feats = Features(np.zeros((2, 1280), np.float32), np.zeros((2, 1000), np.float32))
    with pytest.raises(InvalidArgument, match="at least two classes"):
        train_head(ds, feats, words, ["dog"], TrainConfig())
