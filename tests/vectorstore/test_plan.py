"""The engine-neutral query plan and the relevance scales (no engine: plain values)."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.vectorstore import plan
from imgsearch.vectorstore.engine import SparseVector
from imgsearch.vectorstore.plan import (
    LEXICAL_SCALE,
    LOOKALIKE_SCALE,
    TEXT_SCALE,
    VISUAL_SCALE,
    Bonus,
    Branch,
    Ranking,
    fused_scale,
    scale_of,
)

V = np.ones(4, dtype=np.float32)
WORDS = SparseVector((1, 2), (0.5, 0.5))


@pytest.mark.parametrize(
    "scale", [TEXT_SCALE, VISUAL_SCALE, LOOKALIKE_SCALE, LEXICAL_SCALE, fused_scale((1.0, 3.0))]
)
def test_a_scale_is_monotone_onto_0_1_and_its_floor_maps_back(scale):
    raws = np.linspace(scale.low - 0.5, scale.high + 0.5, 201)
    relevances = [scale.relevance(float(r)) for r in raws]
    assert relevances == sorted(relevances) and relevances[0] == 0.0 and relevances[-1] == 1.0
    assert scale.relevance(scale.threshold) == pytest.approx(plan.MATCH_THRESHOLD)
    assert scale.relevance(scale.high) == pytest.approx(1.0)
    for r in (0.1, 0.5, 0.7, 0.95, 1.0):
        assert scale.relevance(scale.raw(r)) == pytest.approx(r)
    assert scale.raw(0.0) is None and scale.raw(-3.0) is None


def test_each_kind_of_ranking_has_its_scale():
    assert scale_of(Ranking(V), "semantic") == TEXT_SCALE
    assert scale_of(Ranking(V, bonus=Bonus("classes", WORDS, 1.0)), "semantic") == TEXT_SCALE
    assert scale_of(Ranking(V), "visual") == VISUAL_SCALE
    assert scale_of(Ranking(WORDS), "lexical") == LEXICAL_SCALE  # type: ignore[arg-type]
    fused = Ranking(V, fused=(Branch(V, (), "visual", 2.0),), lexical=Bonus("lexical", WORDS, 1.0))
    assert scale_of(fused, "semantic") == fused_scale((1.0, 2.0, 1.0))
    # first in every ranking is the most a fusion gives: 1 / (RRF_K - 1 + 1 / w) summed
    assert fused_scale((1.0, 1.0)).high == pytest.approx(2 / plan.RRF_K)


def test_the_plan_of_each_ranking():
    plain = plan.build(Ranking(V, offset=3, min_score=0.2), "semantic", 5)
    assert isinstance(plain.query, plan.Nearest) and plain.prefetches == ()
    assert (plain.limit, plain.offset, plain.threshold, plain.params) == (5, 3, 0.2, "semantic")

    hybrid = plan.build(
        Ranking(V, candidates=40, bonus=Bonus("classes", WORDS, 1.0), lexical=Bonus("lexical", WORDS, 1.0)),
        "semantic",
        5,
    )
    assert [c.source.using for c in hybrid.prefetches] == ["semantic", "classes", "lexical"]
    assert all(c.limit == 40 and c.filtered for c in hybrid.prefetches)
    assert isinstance(hybrid.query, plan.Formula)

    fused = plan.build(Ranking(V, fused=(Branch(V, (), "visual", 2.0),), candidates=20), "semantic", 5)
    assert isinstance(fused.query, plan.Fusion) and fused.query.weights == (1.0, 2.0)
    assert not any(c.filtered for c in fused.prefetches)  # the request's filter reaches them

    diverse = plan.build(Ranking(V, negatives=(V,), mmr_lambda=0.5, candidates=40), "visual", 5)
    assert isinstance(diverse.query, plan.Diverse) and diverse.query.lambda_ == 0.5
    assert [c.threshold for c in diverse.prefetches] == [0.0]  # among those nearer than a negative


def test_the_vectors_a_ranking_asks_back_reach_its_plan():
    assert plan.build(Ranking(V, vectors=("semantic", "classes")), "visual", 5).vectors == (
        "semantic",
        "classes",
    )
    assert plan.build(Ranking(V), "visual", 5).vectors == ()
