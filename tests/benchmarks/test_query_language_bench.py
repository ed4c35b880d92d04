"""The query-language benchmark at tiny sizes, so its code cannot rot unnoticed."""

from __future__ import annotations

import pytest

from benchmarks import query_language_bench as bench


@pytest.mark.slow
def test_query_language_benchmark_runs_and_reports(tmp_path):
    result = bench.run(bench.Sizes(images=400, rounds=5), quick=True, cache_root=tmp_path / "cache")
    figures = {f.metric: f.value for f in result.figures}
    assert 0 <= figures["(a) sentence queries, mean AP, stop words ignored (now)"] <= 1
    assert figures["(c) photo + word, mean AP: fused"] > 0
    assert result.details["photos"] == 33
    ratios = [f for f in result.figures if f.metric.startswith("(d)") and f.unit == "x"]
    assert len(ratios) == 12 and all(f.value > 0 for f in ratios)
    assert figures["(e) a photo by its name, captioned half, mean AP: hybrid"] == 1.0
