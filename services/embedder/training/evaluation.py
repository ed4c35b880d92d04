"""Measuring a semantic head on a labelled test split, as a user of the search would.

- image -> label: the dataset's class words ranked by cosine to the image's vector; hit@1 and
  hit@5 for images of seen classes and, apart, of held-out classes (zero-shot);
- text -> image: the test images ranked by cosine to each class word's vector; precision@10
  and average precision per class word, and their means (mAP).

`evaluate` returns the documented JSON shape; `write_html` draws a report with per-class bars
and example results.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.reports.html import page, thumbnail_data_uri, write_page

THUMBNAIL_SIZE = 64


def average_precision(relevant: np.ndarray) -> float:
    """AP of a ranked list given as booleans (best first) over the whole list."""
    hits = np.cumsum(relevant)
    n = int(hits[-1]) if len(hits) else 0
    if n == 0:
        return 0.0
    ranks = np.flatnonzero(relevant) + 1
    return float(np.mean(hits[ranks - 1] / ranks))


def label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based rank of each image's true class among the class words (ties count against it)."""
    true = scores[np.arange(len(labels)), labels]
    return (scores > true[:, None]).sum(axis=1) + ((scores == true[:, None]).sum(axis=1) - 1)


def evaluate(
    vectors: np.ndarray,
    labels: np.ndarray,
    class_vecs: np.ndarray,
    classes: Sequence[str],
    holdout: Sequence[int] = (),
    head: str = "",
) -> dict[str, Any]:
    """Metrics of L2-normalised image vectors (N, dim) against the class words (C, dim)."""
    scores = np.asarray(vectors, np.float64) @ np.asarray(class_vecs, np.float64).T
    ranks = label_ranks(scores, labels)
    unseen = np.isin(labels, list(holdout))

    def hits(mask: np.ndarray) -> dict[str, float]:
        r = ranks[mask]
        if len(r) == 0:
            return {"hit@1": 0.0, "hit@5": 0.0}
        return {"hit@1": float(np.mean(r < 1)), "hit@5": float(np.mean(r < 5))}

    per_class: dict[str, dict[str, float]] = {}
    p10, aps = [], []
    for c, name in enumerate(classes):
        order = np.argsort(-scores[:, c], kind="stable")
        relevant = labels[order] == c
        members = labels == c
        ap = average_precision(relevant)
        prec = float(np.sum(relevant[:10]) / 10)
        if members.any():  # a word with no image in the split has no meaningful AP
            p10.append(prec)
            aps.append(ap)
        per_class[name] = {
            "images": int(members.sum()),
            "hit@1": float(np.mean(ranks[members] < 1)) if members.any() else 0.0,
            "precision@10": prec,
            "ap": ap,
            "held_out": c in holdout,
        }
    out: dict[str, Any] = {"head": head, "images": int(len(labels)), "seen": hits(~unseen)}
    if len(holdout):
        out["zero_shot"] = hits(unseen)
    out["text_to_image"] = {
        "precision@10": float(np.mean(p10)) if p10 else 0.0,
        "map": float(np.mean(aps)) if aps else 0.0,
    }
    out["per_class"] = per_class
    return out


_CSS = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}"
    ".bar{position:relative;width:220px;height:16px;background:#eee}"
    ".bar div{height:100%}.bar span{position:absolute;left:4px;top:0;font-size:12px}"
    ".held{color:#a33}.ex img{margin:1px;border:3px solid #4a4}.ex img.wrong{border-color:#c33}"
)


def _cell(metrics: dict[str, float] | None, key: str) -> str:
    return "" if metrics is None else f"{metrics[key]:.3f}"


def _bar(value: float, colour: str) -> str:
    return (
        f'<div class="bar"><div style="width:{value * 100:.1f}%;background:{colour}"></div>'
        f"<span>{value:.3f}</span></div>"
    )


def write_html(
    path: str | Path,
    reports: Sequence[dict[str, Any]],
    examples: dict[str, dict[str, list[tuple[np.ndarray, bool, str]]]],
    title: str,
) -> Path:
    """A self-contained HTML page: per-head summary, per-class bars, and the top images per class word.

    `examples[head][word]` is a list of (thumbnail pixels, correct?, caption) best first.
    """
    rows = []
    for rep in reports:
        zs = rep.get("zero_shot")
        rows.append(
            f"<tr><td>{html.escape(rep['head'])}</td><td>{rep['seen']['hit@1']:.3f}</td>"
            f"<td>{rep['seen']['hit@5']:.3f}</td>"
            f"<td>{_cell(zs, 'hit@1')}</td><td>{_cell(zs, 'hit@5')}</td>"
            f"<td>{rep['text_to_image']['precision@10']:.3f}</td><td>{rep['text_to_image']['map']:.3f}</td></tr>"
        )
    parts = [
        "<h2>Summary</h2><table><tr><th>head</th><th>seen hit@1</th><th>seen hit@5</th>"
        "<th>zero-shot hit@1</th><th>zero-shot hit@5</th><th>text&rarr;image P@10</th><th>mAP</th></tr>",
        *rows,
        "</table>",
    ]
    for rep in reports:
        name = rep["head"]
        parts.append(f"<h2>{html.escape(name)}: per class</h2><table>")
        parts.append("<tr><th>class word</th><th>images</th><th>image&rarr;label hit@1</th><th>AP</th>")
        parts.append("<th>top results for the word (red: wrong class)</th></tr>")
        for word, m in rep["per_class"].items():
            cls = ' class="held"' if m["held_out"] else ""
            label = html.escape(word) + (" (held out)" if m["held_out"] else "")
            imgs = "".join(
                f'<img src="{thumbnail_data_uri(px, THUMBNAIL_SIZE)}" title="{html.escape(cap)}"'
                f"{'' if ok else ' class=wrong'}>"
                for px, ok, cap in examples.get(name, {}).get(word, [])
            )
            parts.append(
                f"<tr><td{cls}>{label}</td><td>{m['images']}</td><td>{_bar(m['hit@1'], '#6a9')}</td>"
                f"<td>{_bar(m['ap'], '#69c')}</td><td class=ex>{imgs}</td></tr>"
            )
        parts.append("</table>")
    return write_page(path, page(title, parts, _CSS))
