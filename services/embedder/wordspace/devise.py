"""The trained DeViSE head: frozen CNN features -> the word-vector space, one vector per image.

The network is the seed's (Dense 2000 -> BatchNorm -> ReLU -> Dropout -> Dense to the word
dimension), trained in Keras (imgsearch.embedder.training.trainer) and served here by a numpy forward
pass, so the embedder's hot path needs no extra TensorFlow graph and a reloaded head gives
bit-identical outputs.

A head trained on a few classes collapses onto their words: it cannot name a class it never saw
(the issue's trial: seen hit@1 0.91, held-out 0.00). The served vector therefore mixes, per
image, the trained network's opinion with the ImageNet classifier's (which knows fur coats,
trench coats and sandals), by *calibrated stacking* over the dataset's class words (Chao et al. 2016):

    h_c = std_c(cos(mlp(x), w_c));  e_c = std_c(log sum_k p_k(x) exp(beta (cos(v_k, w_c) - 1)))
    score_c = std'_c(h_c + b * e_c) - gamma * [c was trained on]
    p = softmax(score / tau);  vector = normalise(sum_c p_c w_c)

where std_c standardises a class word's scores by their mean and spread over validation images
of the seen classes (hubness normalisation) and v_k are the ImageNet classes' word vectors. b,
beta and tau are chosen by pseudo-zero-shot splits of the seen classes, gamma on validation
(imgsearch.embedder.training.trainer), so one vector per image still ranks the class words by cosine the
way the calibrated scores do. With `mix = {"mode": "plain"}` the vector is the network's output
alone (the seed's head).

The head file is one .npz archive (whatever its suffix, e.g. head.keras): the weights, the ConSE
class vectors it was tuned with, and a JSON record of how it was trained (word-vector source and
dimension, classes, held-out classes, losses per epoch, the mixing parameters).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.embedder.wordspace.class_words import label_words
from imgsearch.embedder.wordspace.heads import ConseHead
from imgsearch.errors import FailedPrecondition, InvalidArgument

FORMAT = "imgsearch-devise-head"
FORMAT_VERSION = 1
BN_EPSILON = 1e-3  # Keras' BatchNormalization default
_WEIGHTS = ("mean", "scale", "w1", "b1", "bn_gamma", "bn_beta", "bn_mean", "bn_var", "w2", "b2")


def class_vectors(names: list[str] | tuple[str, ...], word_vectors: Any) -> np.ndarray:
    """(C, dim) L2-normalised: each class name's words averaged ('ankle_boot' -> ankle, boot).

    A hyphenated word GloVe lacks falls back to its parts; a class with no known word is refused.
    """
    rows = []
    for name in names:
        vecs = []
        for word in label_words(name):
            v = word_vectors.vector(word)
            if v is None:
                vecs += [p for p in (word_vectors.vector(s) for s in word.split("-") if s) if p is not None]
            else:
                vecs.append(v)
        if not vecs:
            raise InvalidArgument(f"class {name!r} has no word in the word vectors ({word_vectors.source})")
        mean = np.mean(vecs, axis=0)
        rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
    return np.asarray(rows, np.float32)


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def imagenet_evidence(logits: np.ndarray, affinity: np.ndarray, beta: float) -> np.ndarray:
    """(N, C) log sum_k p_k(x) exp(beta (a_kc - 1)): ImageNet probability near each class word.

    a_kc is the cosine of ImageNet class k's word vector to class word c; with a large beta only
    the ImageNet classes nearest the word count (coat: fur coat, trench coat, lab coat; sandal:
    sandal), so this is ConSE read the other way round: how much of the classifier's belief lies on
    things named like the word. It needs no training, so it is as good for held-out words as for
    seen ones.
    """
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return np.log(p @ np.exp(beta * (np.asarray(affinity, np.float64) - 1.0)) + 1e-30)


def stacked_scores(
    cos: np.ndarray, evidence: np.ndarray | None, mix: dict[str, Any], seen: np.ndarray
) -> np.ndarray:
    """Calibrated stacking of the network's cosines with the ImageNet evidence (see the module doc).

    Each word's cosine is standardised by its mean and spread over validation images of the seen
    classes (hubness normalisation): a word close to every image (coat is close to shirts and
    dresses) no longer wins by default, and one an image stands out on (sandal on a sandal) does.
    The ImageNet evidence, standardised the same way, is added with `imagenet_weight`, and the sum
    standardised again so seen and held-out words stay on one scale. Seen words are then lowered by
    `gamma` (calibrated stacking).
    """
    score = (cos - np.asarray(mix.get("mu", 0.0))) / np.asarray(mix.get("sd", 1.0))
    weight = mix.get("imagenet_weight", 0.0)
    if weight and evidence is not None:
        ev = (evidence - np.asarray(mix["mu_imagenet"])) / np.asarray(mix["sd_imagenet"])
        score = (score + weight * ev - np.asarray(mix["mu_mixed"])) / np.asarray(mix["sd_mixed"])
    return score - mix.get("gamma", 0.0) * seen


def mix_words(score: np.ndarray, class_vecs: np.ndarray, tau: float) -> np.ndarray:
    """normalise(sum_c softmax(score / tau)_c w_c): one vector that ranks the words as the scores do."""
    z = np.asarray(score, np.float64) / tau
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return normalise(p @ np.asarray(class_vecs, np.float64))


@dataclass
class DeviseHead:
    """features (N, 1280), logits (N, 1000) -> (N, dim) L2-normalised vectors in word space."""

    weights: dict[str, np.ndarray]
    meta: dict[str, Any]
    class_vecs: np.ndarray  # (C, dim) the dataset's class words, normalised
    conse_vectors: np.ndarray | None = None  # (1000, dim) ImageNet class vectors for ConSE
    name: str = "devise"
    _conse: Any = field(default=None, init=False, repr=False)
    _affinity: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def dim(self) -> int:
        return int(self.weights["w2"].shape[1])

    @property
    def mix(self) -> dict[str, Any]:
        return self.meta.get("mix", {"mode": "plain"})

    @property
    def description(self) -> str:
        m = self.meta
        return (
            f"devise ({m.get('loss')} loss, {len(m.get('classes', []))} classes, "
            f"mix {self.mix.get('mode')}, trained on {m.get('word_vectors', {}).get('source')})"
        )

    def network(self, features: np.ndarray) -> np.ndarray:
        """The trained network's raw output (N, dim), not normalised (inference: no dropout)."""
        w = self.weights
        x = (np.asarray(features, np.float32) - w["mean"]) * w["scale"]
        h = x @ w["w1"] + w["b1"]
        h = (h - w["bn_mean"]) / np.sqrt(w["bn_var"] + BN_EPSILON) * w["bn_gamma"] + w["bn_beta"]
        np.maximum(h, 0, out=h)
        return h @ w["w2"] + w["b2"]

    def conse(self, logits: np.ndarray) -> np.ndarray:
        if self._conse is None:
            if self.conse_vectors is None:
                raise FailedPrecondition("this head mixes in ConSE but was saved without its class vectors")
            self._conse = ConseHead(self.conse_vectors, top_t=int(self.mix.get("conse_top_t", 5)))
        return self._conse.embed(np.zeros((len(logits), 0), np.float32), logits)

    def imagenet_scores(self, logits: np.ndarray) -> np.ndarray:
        """(N, C) the ImageNet classifier's evidence for each class word (raw, see imagenet_evidence)."""
        if self.conse_vectors is None:
            raise FailedPrecondition("this head uses ImageNet evidence but has no ImageNet class vectors")
        if self._affinity is None:
            self._affinity = normalise(self.conse_vectors) @ self.class_vecs.T
        return imagenet_evidence(logits, self._affinity, float(self.mix.get("imagenet_beta", 100.0)))

    def class_scores(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Calibrated scores (N, C) over the dataset's class words, before the softmax."""
        cos = normalise(self.network(features)) @ self.class_vecs.T
        evidence = self.imagenet_scores(logits) if self.mix.get("imagenet_weight", 0.0) else None
        return stacked_scores(cos, evidence, self.mix, np.asarray(self.meta["seen_mask"], bool))

    def embed(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        mix = self.mix
        if mix.get("mode", "plain") == "plain":
            return normalise(self.network(features)).astype(np.float32)
        out = mix_words(self.class_scores(features, logits), self.class_vecs, mix.get("tau", 0.5))
        if mix.get("lam", 0.0):
            out = normalise(out + mix["lam"] * self.conse(logits))
        return out.astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """One .npz archive at `path` (suffix kept as given), written atomically."""
        path = Path(path)
        arrays = {k: np.asarray(self.weights[k], np.float32) for k in _WEIGHTS}
        arrays["class_vectors"] = self.class_vecs.astype(np.float32)
        if self.conse_vectors is not None:
            arrays["conse_vectors"] = self.conse_vectors.astype(np.float32)
        meta = dict(self.meta, format=FORMAT, format_version=FORMAT_VERSION)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub reads ** as allow_pickle
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-head-")
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, path: str | Path) -> DeviseHead:
        """Reads a head file without checking it against word vectors (see load_devise_head)."""
        path = Path(path)
        if not path.is_file():
            raise FailedPrecondition(f"DeViSE head not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(arrays.pop("meta").tobytes().decode())
        except (OSError, ValueError, KeyError) as exc:
            raise FailedPrecondition(
                f"{path} is not a DeViSE head written by `imgsearch train`: {exc}"
            ) from exc
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise FailedPrecondition(f"{path} is not a version-{FORMAT_VERSION} {FORMAT} file")
        weights = {k: arrays[k] for k in _WEIGHTS}
        return cls(weights, meta, arrays["class_vectors"], arrays.get("conse_vectors"))


def load_devise_head(path: str | Path, word_vectors: Any) -> DeviseHead:
    """Loads a trained head, refusing one trained on other word vectors than `word_vectors`."""
    head = DeviseHead.read(path)
    trained = head.meta.get("word_vectors", {})
    if trained.get("dim") != word_vectors.dim or head.dim != word_vectors.dim:
        raise FailedPrecondition(
            f"head {path} outputs {head.dim}-d vectors (trained on {trained.get('source')}, "
            f"{trained.get('dim')}-d) but the word vectors in use ({word_vectors.source}) are "
            f"{word_vectors.dim}-d; retrain it with these word vectors"
        )
    if trained.get("source") != word_vectors.source:
        raise FailedPrecondition(
            f"head {path} was trained on word vectors {trained.get('source')!r}, but the server uses "
            f"{word_vectors.source!r}; retrain it, or serve with the word vectors it was trained on"
        )
    return head
