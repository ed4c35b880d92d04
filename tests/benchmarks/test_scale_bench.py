"""The scale benchmark's parts at small sizes: its vectors, exact search and recall, the /proc and
disk readers, the idle detector, and one whole run against a real server (slow)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from benchmarks import scale_bench as sb
from benchmarks.common import Result


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_mixed_features_stay_in_relu6_range_and_near_their_source():
    rng = np.random.default_rng(0)
    base = np.abs(rng.normal(0, 1, (50, sb.VISUAL_DIM))).astype(np.float32) * (
        rng.random((50, sb.VISUAL_DIM)) < 0.3
    )
    features, first = sb.mix(base, 400, rng)
    assert features.shape == (400, sb.VISUAL_DIM) and features.dtype == np.float32
    assert features.min() >= 0 and features.max() <= sb.RELU6
    # Each new image is closest to the real image it mostly comes from.
    nearest = np.argmax(_unit(features) @ _unit(base).T, axis=1)
    assert np.mean(nearest == first) > 0.9
    cosine = np.sum(_unit(features) * _unit(base[first]), axis=1)
    assert 0.7 < np.median(cosine) < 0.99  # perturbed, not copied


def test_exact_top_matches_brute_force_with_rows_and_exclusions():
    rng = np.random.default_rng(1)
    matrix = _unit(rng.standard_normal((1000, 16)).astype(np.float32))
    queries = matrix[[3, 500]]
    top = sb.exact_top(matrix, queries, 10, chunk=128)
    expected = np.argsort(-(queries @ matrix.T), axis=1)[:, :10]
    assert [set(r) for r in top] == [set(r) for r in expected]

    top = sb.exact_top(matrix, queries, 10, exclude=[3, 500], chunk=100)
    assert 3 not in top[0] and 500 not in top[1]
    rows = np.arange(0, 1000, 7)
    top = sb.exact_top(matrix, queries, 5, rows=rows, chunk=64)
    assert set(top.ravel()) <= set(rows)
    expected = rows[np.argsort(-(queries @ matrix[rows].T), axis=1)[:, :5]]
    assert [set(r) for r in top] == [set(r) for r in expected]


def test_recall_counts_the_exact_neighbours_found():
    exact = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    found = [[sb.image_id(i) for i in (0, 1, 9, 8)], [sb.image_id(i) for i in (4, 5, 6, 7)]]
    assert sb.recall_at_k(found, exact, k=4) == pytest.approx((2 / 4 + 1) / 2)
    assert sb.image_index(sb.image_id(123_456)) == 123_456


def test_proc_and_disk_readers(tmp_path):
    memory = sb.memory_of(os.getpid())
    assert memory["VmRSS"] > 10 and memory["RssAnon"] > 0 and memory["Pss"] > 0
    assert sb.cpu_seconds(os.getpid()) > 0
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(32 << 20)  # preallocated like the engine's files: nothing on disk yet
    (tmp_path / "data").write_bytes(b"x" * 100_000)
    allocated, apparent, files = sb.disk_usage(tmp_path)
    assert files == 2 and apparent == (32 << 20) + 100_000
    assert 100_000 <= allocated < 1 << 20


def test_idle_is_seen_once_a_process_stops_using_the_cpu():
    started = time.monotonic()
    assert sb.wait_until_idle(os.getppid(), quiet_s=1.0, settle_s=0.2) < 1.0
    assert time.monotonic() - started < 10


@pytest.mark.slow
def test_scale_benchmark_runs_against_a_real_server_and_reports(tmp_path):
    sizes = sb.Sizes(
        images=600, fashion_images=20, batch=128, queries=30, per_client=10, clients=(1, 2), warmup=2,
        recall_queries=20,
    )  # fmt: skip
    env = dict(os.environ, IMGSEARCH_VOCAB_SIZE="2000")
    result = sb.run(sizes, quick=True, cache_root=tmp_path / "cache", work_dir=tmp_path / "work", env=env)

    assert isinstance(result, Result)
    figures = {f.metric: f for f in result.figures}
    assert result.details["upsert"]["images"] == 600
    # 600 images are searched exhaustively, so the server agrees with numpy's exact answer. Look-alikes
    # reorder the visual search's 20 candidates by meaning: the int8 visual scores may swap the 20th
    # and 21st candidate, which can change one of the fused 10 (scale_bench.exact_lookalikes).
    for metric, floor in (
        ("recall@10 text search (semantic)", 0.99),
        ("recall@10 similar by id (visual)", 0.95),
    ):
        assert figures[metric].value >= floor
        assert figures[f"{metric}, 1% label filter"].value >= 0.99  # 6 images: all of them
    assert min(v for name, v in result.details["recall"].items() if "visual" not in name) >= 0.99
    assert min(result.details["recall"].values()) >= 0.95  # tie-aware variants too
    assert 0 < figures["restart until SERVING"].value < 240
    assert figures["disk / raw float32 vectors"].value > 0.5
    assert result.details["memory_mb"]["steady"]["RssAnon"] > 50
    assert "| SearchText p50 / p99, 1 client |" in result.markdown()
    assert (tmp_path / "cache" / "scale-v1-n600-s0" / "visual.npy").is_file()
