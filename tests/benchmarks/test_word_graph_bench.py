"""The word-graph benchmark's parts at a small size, so its code cannot rot unnoticed: a graph of
real Qdrant Edge built from rows, searched at two beams, scored against exact search."""

from __future__ import annotations

import numpy as np

from benchmarks import scale_bench as sb
from benchmarks import word_graph_bench as wg


def test_a_built_graph_finds_the_exact_nearest_and_reports_its_cost(tmp_path):
    rng = np.random.default_rng(0)
    rows = sb.unit_rows(rng.standard_normal((6000, 50)))
    queries = sb.unit_rows(rng.standard_normal((20, 50)))
    exact = sb.exact_top(rows, queries, wg.K)

    shard, built = wg.build(rows, 16, 64, tmp_path / "shard")
    try:
        assert built["indexed"] == 6000 and built["build_s"] >= 0 and built["files_gb"] > 0
        for beam in (16, 200):
            found = wg.search(shard, queries, exact, beam, passes=1)
            assert found["recall"] >= 0.95, beam
            assert found["latency_ms"]["p50"] > 0
        # a wrong answer is seen: recall against another query set's truth is near 0
        other = sb.exact_top(rows, sb.unit_rows(rng.standard_normal((20, 50))), wg.K)
        assert wg.search(shard, queries, other, 200, passes=1)["recall"] < 0.2
    finally:
        shard.close()
