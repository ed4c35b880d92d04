"""How far calibration alone can take a trained DeViSE head (issue 4's goal), on the test split.

The served head ranks class words by its stacked scores (imgsearch.embedder.wordspace.devise.stacked_scores)
minus `gamma` on the seen words. This script reads those scores for every Fashion-MNIST test image
and measures, *choosing on the test split itself* (a bound, not a method), the best held-out hit@1
that keeps seen hit@1 >= 0.90 when each held-out word gets its own additive offset. If that bound is
below the goal, no calibration of these scores reaches the goal; a better score is needed.

It also measures how much the ImageNet classifier knows about the held-out classes: the AUROC of the
ImageNet evidence for a held-out word between its own images and those of the seen classes it is
confused with (from the cached test logits; 0.5 is chance).

Run: `.venv/bin/python -m benchmarks.devise_bound HEAD` (a head trained with
`imgsearch train fashion-mnist --holdout-classes sandal,coat`; features must be cached).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

CONFUSED_WITH = {"sandal": ("sneaker", "ankle_boot"), "coat": ("pullover", "shirt")}
SEEN_FLOOR = 0.90
OFFSETS = np.round(np.arange(-1.5, 1.501, 0.05), 2)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    values = np.concatenate([positive, negative])
    ranks = values.argsort(kind="stable").argsort() + 1.0
    for v in np.unique(values):  # average ranks of ties
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def hit_rates(score: np.ndarray, labels: np.ndarray, seen_images: np.ndarray) -> tuple[float, float]:
    right = score.argmax(axis=1) == labels
    return float(right[seen_images].mean()), float(right[~seen_images].mean())


def offset_bound(score: np.ndarray, labels: np.ndarray, seen: np.ndarray) -> dict:
    """Best held-out hit@1 with seen hit@1 >= SEEN_FLOOR over per-held-out-word offsets (2 words)."""
    held = np.flatnonzero(~seen)
    if len(held) != 2:
        raise SystemExit("the bound is computed for exactly two held-out classes")
    seen_images = np.isin(labels, np.flatnonzero(seen))
    best: dict = {"held_out_hit@1": None, "highest_seen_hit@1": 0.0}
    for a in OFFSETS:
        for b in OFFSETS:
            shifted = score.copy()
            shifted[:, held[0]] += a
            shifted[:, held[1]] += b
            s, h = hit_rates(shifted, labels, seen_images)
            best["highest_seen_hit@1"] = max(best["highest_seen_hit@1"], s)
            if s >= SEEN_FLOOR and (best["held_out_hit@1"] is None or h > best["held_out_hit@1"]):
                best.update({"held_out_hit@1": h, "seen_hit@1": s, "offsets": [float(a), float(b)]})
    return best  # held_out_hit@1 None: no offsets keep the seen classes at the floor


def main() -> None:
    from imgsearch.config import Settings
    from imgsearch.embedder.training.datasets import load_dataset
    from imgsearch.embedder.training.features import cached_features
    from imgsearch.embedder.wordspace.devise import (
        class_vectors,
        imagenet_evidence,
        load_devise_head,
        normalise,
    )
    from imgsearch.embedder.wordspace.heads import ConseHead
    from imgsearch.embedder.wordspace.wordvectors import load_word_vectors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("head", help="a head trained on fashion-mnist with held-out classes")
    args = parser.parse_args()
    settings = Settings.from_env()
    dataset = load_dataset("fashion-mnist")
    words = load_word_vectors(settings.glove, settings.cache_dir)
    test = np.flatnonzero(dataset.is_test)
    feats = cached_features(dataset, settings.cache_dir, runtime=settings.cnn_runtime).take(test)
    labels = dataset.labels[test]
    head = load_devise_head(args.head, words)
    seen = np.asarray(head.meta["seen_mask"], bool)
    gamma = float(head.mix.get("gamma", 0.0))
    score = head.class_scores(np.asarray(feats.features), np.asarray(feats.logits)) + gamma * seen
    seen_images = np.isin(labels, np.flatnonzero(seen))

    report: dict = {"head": args.head, "calibrated_gamma": gamma, "by_gamma": []}
    for g in (-0.4, -0.2, 0.0, 0.2, 0.4):
        s, h = hit_rates(score - g * seen, labels, seen_images)
        report["by_gamma"].append({"gamma": g, "seen_hit@1": s, "held_out_hit@1": h})
    report["per_word_offsets_bound"] = offset_bound(score, labels, seen)

    cvecs = class_vectors(dataset.classes, words)
    affinity = normalise(ConseHead.from_word_vectors(words).class_vectors) @ cvecs.T
    evidence = imagenet_evidence(np.asarray(feats.logits), affinity, 100.0)
    index = {c: i for i, c in enumerate(dataset.classes)}
    report["imagenet_evidence_auroc"] = {
        word: auroc(
            evidence[labels == index[word], index[word]],
            evidence[np.isin(labels, [index[o] for o in others]), index[word]],
        )
        for word, others in CONFUSED_WITH.items()
        if word in index
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
