"""Training a DeViSE head on cached CNN features of a labelled dataset.

The seed's recipe: frozen CNN features -> Dense 2000 -> BatchNorm -> ReLU -> Dropout -> Dense to
the word dimension, trained to the label's word vector with a cosine loss, or with the DeViSE
paper's hinge rank loss (margin 0.1, the other training classes' words as negatives). The
dataset's train part is split 80/20 (seeded, per class) into fit and validation sets; the
epoch with the lowest validation loss is kept. Held-out classes (`holdout`) never reach the
network: neither their images nor their words.

After the network, the way the head turns scores into one vector is calibrated on the validation
images (see `calibrate` and imgsearch.embedder.wordspace.devise).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from imgsearch.embedder.training.features import Features
from imgsearch.embedder.wordspace.devise import (
    DeviseHead,
    class_vectors,
    imagenet_evidence,
    mix_words,
    normalise,
    stacked_scores,
)
from imgsearch.errors import InvalidArgument
from imgsearch.reports.progress import progress_bar

log = logging.getLogger(__name__)

LOSSES = ("cosine", "hinge")
# Calibrated stacking (see calibrate): how much seen-class validation hit@1 the held-out words may
# cost, the softmax temperature over standardised scores, and how much ConSE is mixed into the vector.
STACKING_BUDGET = 0.02
STACKING_TAU = 0.5
STACKING_GAMMAS = np.round(np.arange(-3.0, 4.01, 0.05), 2)
STACKING_IMAGENET_WEIGHT = 0.25  # used when too few seen classes remain for pseudo-zero-shot splits
STACKING_BETA = 100.0
# Pseudo-zero-shot splits (see pseudo_zero_shot): how many, how big, and the candidates tried.
PSEUDO_SPLITS = 4
PSEUDO_PER_CLASS = 500
PSEUDO_EPOCHS = 6
PSEUDO_BETAS = (100.0,)
PSEUDO_WEIGHTS = (0.0, 0.25, 0.5)
PSEUDO_TAUS = (0.25, 0.5)


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
    from imgsearch.embedder.vision.cnn import _tensorflow

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
    started = time.monotonic()

    class Report(keras.callbacks.Callback):  # type: ignore[name-defined,misc]  # keras loads lazily
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            bar.set_postfix_str(f"epoch {len(history) + 1}/{config.epochs}", refresh=False)
            bar.update()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            nonlocal best
            logs = logs or {}
            row = {"epoch": epoch + 1, "loss": float(logs["loss"]), "val_loss": float(logs["val_loss"])}
            history.append(row)
            if best is None or row["val_loss"] < best[0]:
                best = (row["val_loss"], epoch + 1, [w.copy() for w in model.get_weights()])

    with progress_bar(stream, config.epochs * steps, f"train {config.loss}", unit="batch") as bar:
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
        from imgsearch.embedder.wordspace.heads import ConseHead

        conse_vectors = ConseHead.from_word_vectors(word_vectors).class_vectors
        logits = np.asarray(features.logits)
        choice: dict[str, Any] = {
            "imagenet_beta": STACKING_BETA,
            "imagenet_weight": STACKING_IMAGENET_WEIGHT,
            "tau": STACKING_TAU,
        }
        if len(seen_ids) >= 4 and holdout_ids:
            choice = pseudo_zero_shot(
                x, logits, dataset.labels, fit_idx, val_idx, seen_ids, all_vecs, conse_vectors, config, stream
            )
        calibrate(
            head,
            x[val_idx],
            logits[val_idx],
            dataset.labels[val_idx],
            word_vectors,
            budget=config.budget,
            tau=choice["tau"],
            imagenet_weight=choice["imagenet_weight"],
            beta=choice["imagenet_beta"],
            conse_vectors=conse_vectors,
        )
        head.meta["mix"]["pseudo_zero_shot"] = choice
    return head


def mix_statistics(cos: np.ndarray, evidence: np.ndarray, weight: float) -> dict[str, Any]:
    """Per-word means and spreads over validation images of the seen classes (see stacked_scores)."""

    def spread(x: np.ndarray) -> list[float]:
        return np.maximum(x.std(axis=0), 1e-6).tolist()

    stats: dict[str, Any] = {"mu": cos.mean(axis=0).tolist(), "sd": spread(cos), "imagenet_weight": weight}
    if weight:
        stats["mu_imagenet"], stats["sd_imagenet"] = evidence.mean(axis=0).tolist(), spread(evidence)
        h = (cos - np.asarray(stats["mu"])) / np.asarray(stats["sd"])
        mixed = h + weight * (evidence - np.asarray(stats["mu_imagenet"])) / np.asarray(stats["sd_imagenet"])
        stats["mu_mixed"], stats["sd_mixed"] = mixed.mean(axis=0).tolist(), spread(mixed)
    return stats


def _served_hit1(score: np.ndarray, class_vecs: np.ndarray, tau: float, labels: np.ndarray) -> float:
    vectors = mix_words(score, class_vecs, tau)
    return float(np.mean((vectors @ class_vecs.T).argmax(axis=1) == labels))


def largest_gamma(
    score: np.ndarray, class_vecs: np.ndarray, tau: float, labels: np.ndarray, seen: np.ndarray, floor: float
) -> float:
    """The largest seen-word penalty whose served vectors keep validation hit@1 >= floor.

    Scanned from the harshest penalty down, so the first within the floor leaves the words without
    training images the most room; hit@1 is measured on the served vectors themselves, as eval does.
    """
    vecs = np.asarray(class_vecs, np.float64)
    coarse = STACKING_GAMMAS[::5][::-1]  # steps of 0.25, then 0.05 below the first one within the floor
    first = next((g for g in coarse if _served_hit1(score - g * seen, vecs, tau, labels) >= floor), None)
    if first is None:
        return float(STACKING_GAMMAS[0])
    for gamma in np.round(np.arange(first + 0.2, first - 0.001, -0.05), 2):
        if _served_hit1(score - gamma * seen, vecs, tau, labels) >= floor:
            return float(gamma)
    return float(first)


def _network_hit1(cos: np.ndarray, labels: np.ndarray, seen: np.ndarray) -> float:
    """hit@1 of the network among the seen words only (labels index all words)."""
    return float(np.mean(np.flatnonzero(seen)[cos[:, seen].argmax(axis=1)] == labels))


def calibrate(
    head: DeviseHead,
    features: np.ndarray,
    logits: np.ndarray,
    labels: np.ndarray,
    word_vectors: Any,
    *,
    budget: float = STACKING_BUDGET,
    tau: float = STACKING_TAU,
    imagenet_weight: float = STACKING_IMAGENET_WEIGHT,
    beta: float = STACKING_BETA,
    conse_vectors: np.ndarray | None = None,
) -> None:
    """Sets the head's mixing from validation images of the seen classes only (no held-out image is used).

    - mu, sd (and those of the ImageNet evidence and of the sum): per-word statistics over the
      validation images;
    - gamma: the largest seen-word penalty that costs the seen classes at most `budget` of their
      validation hit@1 (against the network's own hit@1), i.e. how much room held-out words get.
    """
    if conse_vectors is None:
        from imgsearch.embedder.wordspace.heads import ConseHead

        conse_vectors = ConseHead.from_word_vectors(word_vectors).class_vectors
    head.conse_vectors = np.asarray(conse_vectors, np.float32)
    head._affinity = None
    seen = np.asarray(head.meta["seen_mask"], bool)
    cos = normalise(head.network(features)) @ head.class_vecs.T
    evidence = imagenet_evidence(logits, normalise(head.conse_vectors) @ head.class_vecs.T, beta)
    mix: dict[str, Any] = {"mode": "stacked", "tau": tau, "imagenet_beta": beta, "budget": budget}
    mix.update(mix_statistics(cos, evidence, imagenet_weight))
    score = stacked_scores(cos, evidence, dict(mix, gamma=0.0), seen)
    network_hit1 = _network_hit1(cos, labels, seen)
    gamma = (
        0.0 if seen.all() else largest_gamma(score, head.class_vecs, tau, labels, seen, network_hit1 - budget)
    )
    mix["gamma"] = gamma
    mix["network_validation_hit@1"] = network_hit1
    mix["validation_hit@1"] = _served_hit1(score - gamma * seen, head.class_vecs, tau, labels)
    head.meta["mix"] = mix


def pseudo_zero_shot(
    x: np.ndarray,
    logits: np.ndarray,
    labels: np.ndarray,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    seen_ids: list[int],
    all_vecs: np.ndarray,
    conse_vectors: np.ndarray,
    config: TrainConfig,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Chooses how strongly to trust the ImageNet evidence (weight, beta) and the softmax temperature.

    The seen classes are split into disjoint pairs; for each pair a small network is trained on the
    other seen classes only (a subsample of the fit images), and the pair's validation images play
    the held-out classes, ranked among the seen classes' words. Each candidate mixing is calibrated
    exactly as the real head is (statistics and gamma from the pseudo-seen validation images, the
    same budget) and scored by the pseudo-held-out hit@1 plus the text -> image mAP over those
    words. No image of a real held-out class, and no test image, is involved.
    """
    from imgsearch.embedder.training.evaluation import evaluate

    rng = np.random.default_rng(config.seed)
    order = [int(c) for c in rng.permutation(seen_ids)]
    pairs = [order[i : i + 2] for i in range(0, len(order) - 1, 2)][:PSEUDO_SPLITS]
    vecs = all_vecs[seen_ids]
    local = np.full(int(labels.max()) + 1, -1, np.int64)
    local[seen_ids] = np.arange(len(seen_ids))
    aux_config = replace(config, epochs=min(config.epochs, PSEUDO_EPOCHS))
    affinity = normalise(conse_vectors) @ vecs.T
    totals: dict[tuple[float, float, float], float] = {}
    for pair in pairs:
        pseudo_seen = np.array([c not in pair for c in seen_ids])
        train_on = [c for c in seen_ids if c not in pair]
        picks = np.concatenate(
            [rng.permutation(fit_idx[labels[fit_idx] == c])[:PSEUDO_PER_CLASS] for c in train_on]
        )
        v_seen = val_idx[np.isin(labels[val_idx], train_on)]
        remap = np.full(len(local), -1, np.int64)
        remap[train_on] = np.arange(len(train_on))
        fit = fit_network(
            x[picks],
            remap[labels[picks]],
            x[v_seen],
            remap[labels[v_seen]],
            all_vecs[train_on],
            aux_config,
            stream,
        )
        net = DeviseHead(fit.weights, {}, vecs)
        cos = normalise(net.network(x[val_idx])) @ vecs.T
        y = local[labels[val_idx]]
        in_seen = pseudo_seen[y]
        floor = _network_hit1(cos[in_seen], y[in_seen], pseudo_seen) - config.budget
        held = list(np.flatnonzero(~pseudo_seen))
        for beta in PSEUDO_BETAS:
            evidence = imagenet_evidence(logits[val_idx], affinity, beta)
            for weight in PSEUDO_WEIGHTS:
                stats = mix_statistics(cos[in_seen], evidence[in_seen], weight)
                score = stacked_scores(cos, evidence, stats, pseudo_seen)
                for tau in PSEUDO_TAUS:
                    gamma = largest_gamma(score[in_seen], vecs, tau, y[in_seen], pseudo_seen, floor)
                    served = mix_words(score - gamma * pseudo_seen, vecs, tau)
                    rep = evaluate(served, y, vecs, [str(c) for c in seen_ids], [int(c) for c in held])
                    key = (float(beta), float(weight), float(tau))
                    gain = rep["zero_shot"]["hit@1"] + rep["text_to_image"]["map"]
                    totals[key] = totals.get(key, 0.0) + gain / len(pairs)
    (beta, weight, tau), best = max(totals.items(), key=lambda kv: kv[1])
    table = [[*k, round(v, 4)] for k, v in sorted(totals.items())]
    return {"imagenet_beta": beta, "imagenet_weight": weight, "tau": tau, "objective": best, "table": table}


def default_out(settings: Any, dataset_name: str) -> Path:
    return Path(settings.data_dir) / "heads" / f"{Path(dataset_name).name}.keras"
