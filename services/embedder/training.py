"""Training a DeViSE head on cached CNN features of a labelled dataset.

The seed's recipe: frozen CNN features -> Dense 2000 -> BatchNorm -> ReLU -> Dropout -> Dense to
the word dimension, trained to the label's word vector with a cosine loss, or with the DeViSE
paper's hinge rank loss (margin 0.1, the other training classes' words as negatives). The
dataset's train part is split 80/20 (seeded, per class) into fit and validation sets; the
epoch with the lowest validation loss is kept. Held-out classes (`holdout`) never reach the
network: neither their images nor their words.

After the network, the way the head turns scores into one vector is calibrated on the validation
images (see `calibrate` and services.embedder.devise).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from services.embedder.devise import DeviseHead, class_vectors, normalise
from services.embedder.features import Features, Progress
from services.errors import InvalidArgument

log = logging.getLogger(__name__)

LOSSES = ("cosine", "hinge")
# Calibrated stacking (see calibrate): how much seen-class validation hit@1 the held-out words may
# cost, the softmax temperature over standardised scores, and how much ConSE is mixed into the vector.
STACKING_BUDGET = 0.02
STACKING_TAU = 0.5
STACKING_LAM = 0.0
STACKING_GAMMAS = np.round(np.arange(-2.0, 4.01, 0.05), 2)


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "cosine"
    epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 1e-3
    hidden: int = 2000
    dropout: float = 0.5
    margin: float = 0.1  # hinge rank loss, as in the DeViSE paper
    validation_fraction: float = 0.2
    seed: int = 0
    mix: str = "stacked"  # "stacked" (calibrated over the class words) or "plain" (the network alone)
    budget: float = 0.02  # seen-class validation hit@1 the held-out words may cost (see calibrate)


@dataclass
class NetworkFit:
    """The kept epoch's weights (numpy) and every epoch's losses."""

    weights: dict[str, np.ndarray]
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float


def split_fit_validation(
    labels: np.ndarray, candidates: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, per-class split of `candidates` (indices) into fit and validation indices."""
    rng = np.random.default_rng(seed)
    fit, val = [], []
    for c in np.unique(labels[candidates]):
        members = rng.permutation(candidates[labels[candidates] == c])
        n_val = int(round(len(members) * fraction)) if len(members) > 1 else 0
        val.append(members[:n_val])
        fit.append(members[n_val:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def _keras() -> Any:
    from services.embedder.cnn import _tensorflow

    _tensorflow()  # quiet, thread-limited TensorFlow
    import keras

    return keras


def fit_network(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    targets: np.ndarray,
    config: TrainConfig,
    stream: TextIO | None = None,
) -> NetworkFit:
    """Trains the seed's network; y are row indices into `targets` (the training classes' words)."""
    if config.loss not in LOSSES:
        raise InvalidArgument(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    keras = _keras()
    from keras import layers, ops

    keras.utils.set_random_seed(config.seed)
    mean = x_fit.mean(axis=0)
    scale = 1.0 / (x_fit.std(axis=0) + 1e-3)
    xf = ((x_fit - mean) * scale).astype(np.float32)
    xv = ((x_val - mean) * scale).astype(np.float32)
    dim = targets.shape[1]
    t = ops.convert_to_tensor(targets.astype(np.float32))
    n_classes = targets.shape[0]

    def loss_fn(y_true: Any, y_pred: Any) -> Any:
        label = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        pred = y_pred / ops.maximum(ops.norm(y_pred, axis=1, keepdims=True), 1e-12)
        sims = ops.matmul(pred, ops.transpose(t))  # (B, C) cosines to every training word
        onehot = ops.one_hot(label, n_classes)
        true_sim = ops.sum(sims * onehot, axis=1)
        if config.loss == "cosine":
            return 1.0 - true_sim
        # DeViSE hinge rank loss on cosines: sum over the other words of max(0, margin - s_y + s_j).
        hinge = ops.relu(config.margin - true_sim[:, None] + sims) * (1.0 - onehot)
        return ops.sum(hinge, axis=1)

    inputs = keras.Input((xf.shape[1],))
    h = layers.Dense(config.hidden, name="dense")(inputs)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.ReLU()(h)
    h = layers.Dropout(config.dropout)(h)
    out = layers.Dense(dim, name="out")(h)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss_fn)

    steps = -(-len(xf) // config.batch_size)
    history: list[dict[str, float]] = []
    best: tuple[float, int, list[np.ndarray]] | None = None
    bar = Progress(config.epochs * steps, f"train {config.loss}", stream)
    started = time.monotonic()

    class Report(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            bar.update(len(history) * steps + batch + 1, f"epoch {len(history) + 1}/{config.epochs}")

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            nonlocal best
            logs = logs or {}
            row = {"epoch": epoch + 1, "loss": float(logs["loss"]), "val_loss": float(logs["val_loss"])}
            history.append(row)
            if best is None or row["val_loss"] < best[0]:
                best = (row["val_loss"], epoch + 1, [w.copy() for w in model.get_weights()])

    model.fit(
        xf,
        y_fit.astype(np.int32),
        validation_data=(xv, y_val.astype(np.int32)),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[Report()],
    )
    assert best is not None
    model.set_weights(best[2])
    bn = model.get_layer("bn")
    dense, head = model.get_layer("dense"), model.get_layer("out")
    gamma, beta, moving_mean, moving_var = (np.asarray(w) for w in bn.get_weights())
    weights = {
        "mean": mean.astype(np.float32),
        "scale": scale.astype(np.float32),
        "w1": np.asarray(dense.get_weights()[0]),
        "b1": np.asarray(dense.get_weights()[1]),
        "bn_gamma": gamma,
        "bn_beta": beta,
        "bn_mean": moving_mean,
        "bn_var": moving_var,
        "w2": np.asarray(head.get_weights()[0]),
        "b2": np.asarray(head.get_weights()[1]),
    }
    return NetworkFit(weights, history, best[1], time.monotonic() - started)


def train_head(
    dataset: Any,
    features: Features,
    word_vectors: Any,
    holdout: list[str],
    config: TrainConfig,
    *,
    stream: TextIO | None = None,
) -> DeviseHead:
    """Fits the network on the train split's seen classes and calibrates how it mixes with ConSE."""
    holdout_ids = dataset.class_index(holdout) if holdout else []
    all_vecs = class_vectors(dataset.classes, word_vectors)
    seen_ids = [c for c in range(len(dataset.classes)) if c not in holdout_ids]
    if len(seen_ids) < 2:
        raise InvalidArgument("at least two classes must remain for training after --holdout-classes")
    remap = np.full(len(dataset.classes), -1, np.int64)
    remap[seen_ids] = np.arange(len(seen_ids))
    train_idx = np.flatnonzero(~dataset.is_test & np.isin(dataset.labels, seen_ids))
    fit_idx, val_idx = split_fit_validation(
        dataset.labels, train_idx, config.validation_fraction, config.seed
    )
    if len(val_idx) == 0:
        raise InvalidArgument("too few training images to keep a validation split")
    x = np.asarray(features.features)
    fit = fit_network(
        x[fit_idx],
        remap[dataset.labels[fit_idx]],
        x[val_idx],
        remap[dataset.labels[val_idx]],
        all_vecs[seen_ids],
        config,
        stream,
    )
    seen_mask = np.zeros(len(dataset.classes), bool)
    seen_mask[seen_ids] = True
    meta = {
        "dataset": dataset.name,
        "classes": list(dataset.classes),
        "holdout_classes": [dataset.classes[c] for c in sorted(holdout_ids)],
        "seen_mask": seen_mask.tolist(),
        "word_vectors": {"source": word_vectors.source, "dim": word_vectors.dim},
        "cnn": "efficientnet-lite0",
        "loss": config.loss,
        "config": asdict(config),
        "losses": fit.history,
        "best_epoch": fit.best_epoch,
        "train_images": int(len(fit_idx)),
        "validation_images": int(len(val_idx)),
        "train_seconds": round(fit.seconds, 1),
        "mix": {"mode": "plain"},
    }
    head = DeviseHead(fit.weights, meta, all_vecs, None)
    if config.mix != "plain":
        calibrate(
            head, x[val_idx], np.asarray(features.logits[val_idx]), dataset.labels[val_idx], word_vectors
        )
    return head


def _hit1(head: DeviseHead, features: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> float:
    scores = head.embed(features, logits) @ head.class_vecs.T
    return float(np.mean(scores.argmax(axis=1) == labels))


def calibrate(
    head: DeviseHead,
    features: np.ndarray,
    logits: np.ndarray,
    labels: np.ndarray,
    word_vectors: Any,
    *,
    budget: float = STACKING_BUDGET,
    tau: float = STACKING_TAU,
    lam: float = STACKING_LAM,
) -> None:
    """Sets the head's mixing from validation images of the seen classes only (no held-out image is used).

    - mu, sd: each class word's cosine mean and spread over the validation images;
    - gamma: the lowest seen-class penalty that costs the seen classes at most `budget` of their
      validation hit@1 (against the network's own hit@1), i.e. how much room held-out words get.
    """
    from services.embedder.heads import ConseHead

    seen = np.asarray(head.meta["seen_mask"], bool)
    cos = normalise(head.network(features)) @ head.class_vecs.T
    conse = ConseHead.from_word_vectors(word_vectors)
    head.conse_vectors = conse.class_vectors
    mix: dict[str, Any] = {
        "mode": "stacked",
        "mu": cos.mean(axis=0).tolist(),
        "sd": np.maximum(cos.std(axis=0), 1e-6).tolist(),
        "b": 0.0,
        "tau": tau,
        "lam": lam,
        "conse_top_t": conse.top_t,
        "budget": budget,
        "gamma": 0.0,
    }
    head.meta["mix"] = mix
    network_hit1 = float(np.mean((cos[:, seen].argmax(axis=1)) == np.cumsum(seen)[labels] - 1))
    if seen.all():
        head.meta["mix"]["validation_hit@1"] = _hit1(head, features, logits, labels)
        return
    chosen = float(STACKING_GAMMAS[0])
    for gamma in STACKING_GAMMAS[::-1]:  # from the harshest penalty down: the first within budget
        mix["gamma"] = float(gamma)  # leaves the held-out words the most room
        if _hit1(head, features, logits, labels) >= network_hit1 - budget:
            chosen = float(gamma)
            break
    mix["gamma"] = chosen
    mix["network_validation_hit@1"] = network_hit1
    mix["validation_hit@1"] = _hit1(head, features, logits, labels)


def default_out(settings: Any, dataset_name: str) -> Path:
    return Path(settings.data_dir) / "heads" / f"{Path(dataset_name).name}.keras"
