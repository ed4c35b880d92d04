"""Where a match begins: fits the relevance scales of text search and look-alikes (vectorstore/plan.py)
on the quality benchmark's judgements, and scores the default cutoff (relevance 0.5, `match_count`).

Run: `python -m benchmarks.relevance_scale` (writes nothing; prints the fitted constants and the
figures that benchmarks/README.md quotes).

Text: every (query, photo) pair of the 50 judged queries over the 44 photos, the raw score the store's
text search gives the photo (semantic similarity with the taxonomic bonus), labelled by the judgement;
the match threshold is the raw score where counting the results at or above it as matches agrees
best with the judgements (highest F1): plan.TEXT_SCALE maps it to relevance 0.5. (A logistic
regression of the judgements on the raw score puts the point where a result is as likely relevant as
not higher, where half the queries keep no match; it is printed too.) Look-alikes: every pair of
photos, relevant when some one-word query judges both relevant (the two dog photos, the five fish,
...), by the fused look-alike cosine of `similar` (plan.LOOKALIKE_SCALE) and by the visual cosine of
a plain visual search (plan.VISUAL_SCALE: diverse look-alikes). The cutoff is then scored as the
product applies it: precision and recall of the results at or above 0.5, and matches per query
against the judged relevant photos. For comparison only, the look-alikes are also scored against
the judged look-alike groups (quality/lookalikes.json: the 22 grouped photos as queries, their
group mates relevant); those leave out the photos that look like no other, so they are not used
to set the threshold.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.quality_bench import ingest_photos, load_query_set


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """(slope, middle) of the logistic regression of y (0/1) on x, by Newton's method."""
    features = np.stack([x, np.ones_like(x)], axis=1)
    w = np.zeros(2)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-features @ w))
        gradient = features.T @ (y - p)
        hessian = features.T @ (features * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        w += np.linalg.solve(hessian, gradient)
    slope, bias = w
    return float(slope), float(-bias / slope)


def cutoff_figures(rows: list[tuple[str, float, bool]], threshold: float) -> dict[str, float]:
    """Precision and recall of the results at or above `threshold`, and the mean number of matches
    and of relevant photos per query; rows: (query, score, relevant)."""
    kept = [r for r in rows if r[1] >= threshold]
    relevant = sum(r[2] for r in rows)
    queries = {r[0] for r in rows}
    return {
        "precision": sum(r[2] for r in kept) / len(kept) if kept else float("nan"),
        "recall": sum(r[2] for r in kept) / relevant if relevant else float("nan"),
        "matches_per_query": len(kept) / len(queries),
        "relevant_per_query": relevant / len(queries),
        "queries_without_match": sum(1 for q in queries if not any(r[0] == q for r in kept)),
    }


def _raw(scale, relevance: float) -> float:
    """The raw score a relevance came from (the scale's inverse; relevance 0: its lowest)."""
    raw = scale.raw(relevance)
    return scale.low if raw is None else raw


def measure() -> dict:
    from imgsearch.config import Settings
    from imgsearch.embedder.runtime import EmbedderRuntime
    from imgsearch.query.search import ImageSource, Page, search_text, similar_images
    from imgsearch.vectorstore import plan
    from imgsearch.vectorstore.schema import VISUAL
    from imgsearch.vectorstore.types import PayloadFilter

    qs = load_query_set()
    runtime = EmbedderRuntime.load(Settings.from_env())
    text_rows: list[tuple[str, float, bool]] = []
    rows: dict[str, list[tuple[str, float, bool]]] = {"lookalike": [], "visual": [], "groups": []}
    try:
        with tempfile.TemporaryDirectory(prefix="relevance-") as scratch:
            settings = replace(Settings.from_env(), data_dir=Path(scratch))
            store, ids = ingest_photos(qs, settings, runtime)
            try:
                n = len(qs.photos)
                for q in qs.queries:
                    found = search_text(runtime, store, q["text"], Page(k=n), None, settings.limits)
                    for h in found.hits:
                        raw = _raw(plan.TEXT_SCALE, h.score)
                        text_rows.append((q["text"], float(raw), ids[h.id] in q["relevant"]))
                alike: set[frozenset[str]] = set()
                for q in qs.queries:
                    if q["kind"] == "word":
                        alike |= {frozenset(p) for p in itertools.combinations(q["relevant"], 2)}
                group_of = {p: members for members in qs.groups.values() for p in members}
                for id_, pid in ids.items():
                    source = ImageSource(id=id_)
                    fused = similar_images(runtime, store, source, Page(k=n - 1), None, settings.limits)
                    for h in fused:
                        raw = _raw(plan.LOOKALIKE_SCALE, h.score)
                        rows["lookalike"].append((pid, float(raw), frozenset((pid, ids[h.id])) in alike))
                        if pid in group_of:
                            rows["groups"].append((pid, float(raw), ids[h.id] in group_of[pid]))
                    point = store.get_image(id_)
                    plain = store.search_images(
                        point.visual, VISUAL, n - 1, PayloadFilter(exclude_ids=(id_,))
                    )
                    for h in plain:
                        raw = _raw(plan.VISUAL_SCALE, h.score)
                        rows["visual"].append((pid, float(raw), frozenset((pid, ids[h.id])) in alike))
            finally:
                store.close()
    finally:
        runtime.close()
    return {"text": text_rows, **rows}


def best_threshold(rows: list[tuple[str, float, bool]]) -> tuple[float, float]:
    """(raw threshold, F1) where F1 of the results at or above the threshold is highest (0.01 steps)."""
    best = (0.0, -1.0)
    for t in np.arange(-0.2, 1.0, 0.01):
        f = cutoff_figures(rows, float(t))
        p, r = f["precision"], f["recall"]
        f1 = 2 * p * r / (p + r) if p + r and not np.isnan(p) else 0.0
        if f1 > best[1]:
            best = (round(float(t), 2), f1)
    return best


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    from imgsearch.vectorstore import plan

    measured = measure()
    scales = (
        ("text", plan.TEXT_SCALE),
        ("lookalike", plan.LOOKALIKE_SCALE),
        ("visual", plan.VISUAL_SCALE),
        ("groups", plan.LOOKALIKE_SCALE),  # judged look-alike groups: for comparison only
    )
    for kind, scale in scales:
        rows = measured[kind]
        x = np.array([r[1] for r in rows])
        y = np.array([float(r[2]) for r in rows])
        slope, middle = fit_logistic(x, y)
        threshold, f1 = best_threshold(rows)
        print(f"\n== {kind}: {len(rows)} pairs, {int(y.sum())} judged relevant ==")
        print(
            f"logistic fit: slope {slope:.2f}, midpoint {middle:.3f}; "
            f"best-F1 threshold {threshold} (F1 {f1:.3f})"
        )
        print(f"in use: threshold {scale.threshold}")
        print(f"no cutoff: {cutoff_figures(rows, -np.inf)}")
        for name, s in (("in use", scale), ("fit midpoint", plan.Scale(middle))):
            scored = [(q, s.relevance(raw), rel) for q, raw, rel in rows]
            figures = cutoff_figures(scored, plan.MATCH_THRESHOLD)
            print(f"cutoff relevance {plan.MATCH_THRESHOLD} ({name}): " + ", ".join(
                f"{k} {v:.3f}" for k, v in figures.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
