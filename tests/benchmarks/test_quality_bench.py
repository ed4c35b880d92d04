"""The quality benchmark's query set and metrics: the set stays as the issue fixed it (written down,
enough queries of every kind, judgements naming real photos), and the metrics compute what they say."""

from __future__ import annotations

import json

import pytest

from benchmarks.quality_bench import QUERIES_FILE, average_precision, load_query_set, ndcg, query_scores


def test_the_query_set_has_every_kind_and_names_only_its_photos():
    data = json.loads(QUERIES_FILE.read_text())
    photos, queries = set(data["photos"]), data["queries"]
    assert len(photos) >= 40 and len(queries) >= 30 and len(data["tags"]) == 33
    kinds = {q["kind"] for q in queries}
    assert kinds == {"word", "open", "two", "sentence"}
    texts = {q["text"] for q in queries}
    for q in queries:
        assert q["relevant"] and set(q["relevant"]) <= photos, q["text"]
        if q["kind"] == "sentence":
            assert q["bare"] in texts, q["text"]  # each sentence is measured against its bare words
    assert "ocean" in texts  # a word no ImageNet class names
    assert set(data["tags"]) <= photos


def test_the_installed_photos_are_found(photos):  # the `photos` fixture skips without the packages
    qs = load_query_set()
    assert {"puppy", "chelsea", "astronaut"} <= set(qs.photos)
    assert all(path.is_file() for path in qs.photos.values())


def test_metrics():
    assert average_precision(["a", "x", "b"], {"a", "b"}) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(["x", "y"], {"a"}) == 0.0
    assert ndcg(["a", "b"], {"a", "b"}) == pytest.approx(1.0)
    assert ndcg(["x", "a"], {"a"}) == pytest.approx(1 / 1.5849625007211563)
    assert query_scores(["a", "x"], {"a"})["s1"] == 1.0
    assert query_scores(["x", "a"], {"a"})["s1"] == 0.0
