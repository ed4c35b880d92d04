"""The bound script's arithmetic (the script itself needs the Fashion-MNIST feature cache)."""

from __future__ import annotations

import numpy as np

from benchmarks.devise_bound import auroc, offset_bound


def test_auroc_orders_ties_and_reversals():
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auroc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5


def test_offset_bound_finds_the_offsets_that_let_held_out_words_win():
    # 3 words, word 2 and word 1 held out; seen images (label 0) score word 0 at 1.0; held-out images
    # score their own word at 0.6 and word 0 at 0.8, so an offset of +0.25 wins them without a seen loss.
    seen = np.array([True, False, False])
    labels = np.array([0] * 10 + [1] * 5 + [2] * 5)
    score = np.zeros((20, 3))
    score[:10, 0] = 1.0
    score[10:, 0] = 0.8
    score[10:15, 1] = 0.6
    score[15:, 2] = 0.6
    best = offset_bound(score, labels, seen)
    assert best["held_out_hit@1"] == 1.0 and best["seen_hit@1"] == 1.0
    assert 0.2 < best["offsets"][0] < 0.4 + 1e-9 and 0.2 < best["offsets"][1] < 0.4 + 1e-9
