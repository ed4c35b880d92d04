"""The query benchmark at tiny sizes, so the benchmark code cannot rot unnoticed."""

from __future__ import annotations

import json

import pytest

from benchmarks import query_bench
from benchmarks.common import Result

TINY = query_bench.Sizes(images=400, queries=40, per_client=15, clients=(1, 2), warmup=3, ef_sweep=(64,))


@pytest.mark.slow
def test_query_benchmark_runs_and_reports(tmp_path):
    result = query_bench.run(TINY, quick=True, cache_root=tmp_path / "cache")

    assert isinstance(result, Result)
    figures = {f.metric: f for f in result.figures}
    p50 = figures["gRPC SearchText p50, 1 client"].value
    assert 0 < p50 < 1000
    # 400 vectors are searched exhaustively, so the store must agree with numpy's exact answer.
    assert figures["recall@10 vs exact search"].value >= 0.99
    assert result.details["recall_at_10_grpc"] >= 0.99
    assert figures["gRPC throughput, 2 clients"].value > 0
    assert result.details["ef_sweep"][0]["recall_at_10"] >= 0.99
    assert len(result.load_start) == 3 and len(result.load_end) == 3

    path = result.write(tmp_path / "results")
    written = json.loads(path.read_text())
    assert written["name"] == "query" and written["figures"]
    assert "| gRPC SearchText p50, 1 client |" in result.markdown()
