"""The ImageNet CNN: checkpoint reading, classification of real photos, the converted-model cache."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from imgsearch.config.settings import Limits
from imgsearch.embedder.images import decode_image
from imgsearch.embedder.vision import torch_pickle
from imgsearch.embedder.vision.cnn import Cnn, checkpoint_path
from imgsearch.embedder.vision.torch_pickle import TorchPickleError, load_state_dict

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


# --- the checkpoint reader (fast, no TensorFlow) -------------------------------------------------


def test_checkpoint_reads_without_torch():
    state = load_state_dict(checkpoint_path())
    assert len(state) == 296
    assert sum(v.size for v in state.values()) == 4_694_073  # 4.69 M, BatchNorm statistics included
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].shape == (1000,)
    assert all(v.dtype == np.float32 for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert not any("_se_" in k for k in state)  # Lite: no squeeze-excite
    assert np.all(state["_bn1.running_var"] > 0)
    assert 0.01 < np.abs(state["_fc.weight"]).mean() < 1  # real weights, not zeros or garbage


def test_reader_refuses_other_files(tmp_path):
    not_torch = tmp_path / "x.pth"
    not_torch.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(TorchPickleError, match="magic"):
        load_state_dict(not_torch)


def test_reader_runs_no_code_from_the_pickle(tmp_path):
    """A checkpoint is untrusted input: a pickle that would call os.system is refused."""
    evil = tmp_path / "evil.pth"
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(marker)],))

    with evil.open("wb") as f:
        for obj in (torch_pickle.MAGIC_NUMBER, torch_pickle.PROTOCOL_VERSION, {}, Exploit()):
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(TorchPickleError, match="unsupported global"):
        load_state_dict(evil)
    assert not marker.exists()


def test_importing_cnn_does_not_import_tensorflow():
    code = "import sys, imgsearch.embedder.vision.cnn; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the model, real weights --------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def cnn(cache_dir) -> Cnn:
    return Cnn.load(cache_dir)  # converts from the checkpoint into an empty cache


@pytest.fixture(scope="module")
def photo_batch(photos) -> tuple[list[str], np.ndarray]:
    names = ["chelsea", "coffee", "black_cat", "gold_fish", "jellyfish", "puppy"]
    pixels = [decode_image(photos[n].read_bytes(), Limits()).pixels for n in names]
    return names, np.stack(pixels)


@pytest.mark.slow
def test_classifies_real_photos(cnn, photo_batch):
    names, batch = photo_batch
    features, logits = cnn.run(batch)
    assert features.shape == (len(names), 1280) and features.dtype == np.float32
    assert logits.shape == (len(names), 1000) and logits.dtype == np.float32
    top = {name: list(np.argsort(-row)[:5]) for name, row in zip(names, logits, strict=True)}
    assert CAT_CLASSES & set(top["chelsea"][:5]), top["chelsea"]
    assert ESPRESSO in top["coffee"][:3], top["coffee"]
    assert CAT_CLASSES & set(top["black_cat"][:5]), top["black_cat"]
    assert top["gold_fish"][0] == 1  # goldfish
    assert top["jellyfish"][0] == 107  # jellyfish
    assert top["puppy"][0] == 207  # golden retriever
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert probs[names.index("coffee"), ESPRESSO] > 0.8


@pytest.mark.slow
def test_features_are_raw_pooled_activations(cnn, photo_batch):
    names, batch = photo_batch
    features, _ = cnn.run(batch)
    assert np.all(features >= 0) and np.all(features <= 6)  # mean of ReLU6 outputs, not normalised
    assert not np.allclose(np.linalg.norm(features, axis=1), 1.0)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit @ unit.T
    cat, black_cat, coffee = (names.index(n) for n in ("chelsea", "black_cat", "coffee"))
    assert similarity[cat, black_cat] > similarity[cat, coffee]  # cats look alike


@pytest.mark.slow
def test_batch_results_match_single_images_and_threads(cnn, photo_batch):
    _, batch = photo_batch
    features, logits = cnn.run(batch)
    for i in (0, 3):
        f1, l1 = cnn.run(batch[i : i + 1])
        np.testing.assert_allclose(f1[0], features[i], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(l1[0], logits[i], rtol=1e-4, atol=1e-3)

    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        results[k] = cnn.run(batch[k % 2 :: 2])[1]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        np.testing.assert_allclose(results[k], logits[k % 2 :: 2], rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_run_checks_its_input(cnn):
    assert cnn.run(np.zeros((0, 224, 224, 3), np.uint8))[0].shape == (0, 1280)
    with pytest.raises(ValueError, match="uint8"):
        cnn.run(np.zeros((1, 224, 224, 3), np.float32))
    with pytest.raises(ValueError, match="224"):
        cnn.run(np.zeros((1, 200, 200, 3), np.uint8))


@pytest.mark.slow
def test_cache_round_trip_skips_the_checkpoint(cnn, cache_dir, photo_batch, monkeypatch, caplog):
    assert cnn.source == "checkpoint"
    cached = list((cache_dir / "efficientnet-lite0").iterdir())
    assert [p.suffix for p in cached] == [".keras"]  # and no temp file left behind

    def no_checkpoint(path):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(torch_pickle, "load_state_dict", no_checkpoint)
    with caplog.at_level(logging.INFO, logger="imgsearch.embedder.vision.cnn"):
        again = Cnn.load(cache_dir)
    assert again.source == "cache"
    assert "from cache" in caplog.text
    _, batch = photo_batch
    for a, b in zip(cnn.run(batch), again.run(batch), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_damaged_cache_is_converted_again(cnn, tmp_path, photo_batch, caplog):
    path = tmp_path / "efficientnet-lite0" / "model-v1.keras"
    path.parent.mkdir()
    path.write_bytes(b"not a keras file")
    with caplog.at_level(logging.WARNING, logger="imgsearch.embedder.vision.cnn"):
        rebuilt = Cnn.load(tmp_path)
    assert rebuilt.source == "checkpoint" and "unreadable" in caplog.text
    _, batch = photo_batch
    np.testing.assert_array_equal(rebuilt.run(batch)[1], cnn.run(batch)[1])
    assert path.stat().st_size > 1_000_000


@pytest.mark.slow
def test_logits_from_features_match_the_model(cnn, photos):
    from imgsearch.config.settings import Limits
    from imgsearch.embedder.images import decode_image

    pixels = decode_image(photos["coffee"].read_bytes(), Limits()).pixels[None]
    features, logits = cnn.run(pixels)
    np.testing.assert_allclose(cnn.logits_from_features(features), logits, rtol=1e-4, atol=1e-3)
