"""`imgsearch train` and `imgsearch eval`: the DeViSE head's training and measurement, run locally.

Both read CNN features from the on-disk cache (extracted on first use, with a progress bar), so
only the first run on a dataset pays for the CNN. Each command is `func(args, settings, out, err)
-> exit status`; domain errors become the exit statuses `imgsearch --help` lists.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from imgsearch.cli.status import ExitStatus
from imgsearch.config import Settings
from imgsearch.errors import ServiceError

_STATUS = {
    "INVALID_ARGUMENT": ExitStatus.USAGE,
    "NOT_FOUND": ExitStatus.NOT_FOUND,
    "RESOURCE_EXHAUSTED": ExitStatus.RESOURCE_EXHAUSTED,
    "FAILED_PRECONDITION": ExitStatus.FAILED_PRECONDITION,
    "UNAVAILABLE": ExitStatus.UNAVAILABLE,
}


def _local_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings (flags override the environment)")
    g.add_argument("--data", help="data directory (env IMGSEARCH_DATA, default ./data)")
    g.add_argument("--cache-dir", help="model and feature cache (env IMGSEARCH_CACHE)")
    g.add_argument("--glove", help="a GloVe text file (env IMGSEARCH_GLOVE; default the packaged 6B 50d)")


def _holdout(value: str | None) -> list[str]:
    return [c.strip() for c in (value or "").split(",") if c.strip()]


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    text = "train a DeViSE head on a labelled dataset (class sub-folders, or fashion-mnist)"
    p = subparsers.add_parser("train", help=text, description=text)
    p.add_argument(
        "dataset", metavar="DATASET", help="a folder with one sub-folder per class, or fashion-mnist"
    )
    p.add_argument("--out", help="where to write the head (default DATA/heads/<dataset>.keras)")
    p.add_argument("--holdout-classes", metavar="A,B", help="classes kept out of training (zero-shot)")
    p.add_argument("--loss", choices=["cosine", "hinge"], default="cosine", help="default cosine")
    p.add_argument("--epochs", type=int, default=12, help="default 12")
    p.add_argument("--batch-size", type=int, default=256, help="default 256")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, default 0.001")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the initialisation")
    p.add_argument(
        "--mix",
        choices=["stacked", "plain"],
        default="stacked",
        help="stacked: network + ImageNet evidence, calibrated for unseen words (default); plain: network",
    )
    p.add_argument(
        "--zero-shot-budget",
        type=float,
        default=0.02,
        help="seen-class hit@1 (on validation) that held-out class words may cost; default 0.02",
    )
    _local_flags(p)
    p.set_defaults(func=run_train)
    return p


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    text = "measure semantic heads on a dataset's test split (image->label hit@k, text->image mAP)"
    p = subparsers.add_parser("eval", help=text, description=text)
    p.add_argument(
        "dataset", metavar="DATASET", help="a folder with one sub-folder per class, or fashion-mnist"
    )
    p.add_argument(
        "--head",
        dest="eval_heads",
        action="append",
        metavar="PATH|conse",
        help="a trained head or conse; repeat to compare heads (default IMGSEARCH_HEAD)",
    )
    p.add_argument("--holdout-classes", metavar="A,B", help="classes measured apart as zero-shot")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")
    p.add_argument("--html", metavar="FILE", help="write a report with per-class bars and example results")
    _local_flags(p)
    p.set_defaults(func=run_eval)
    return p


def _apply(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with the local flags (`_local_flags`) the user gave replacing the environment's."""
    changes: dict[str, Any] = {}
    if args.data:
        changes["data_dir"] = Path(args.data)
    if args.cache_dir:
        changes["cache_dir"] = Path(args.cache_dir)
    if args.glove:
        changes["glove"] = args.glove
    return dataclasses.replace(settings, **changes) if changes else settings


def _fail(err: TextIO, error: ServiceError | OSError) -> int:
    """Reports a domain or file error in one line; its exit status."""
    if isinstance(error, ServiceError):
        err.write(f"error: {error.message}\n")
        return int(_STATUS.get(error.code_name, ExitStatus.ERROR))
    err.write(f"error: {error}\n")
    return int(ExitStatus.NOT_FOUND if isinstance(error, FileNotFoundError) else ExitStatus.ERROR)


def run_train(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    from imgsearch.embedder.training.datasets import load_dataset
    from imgsearch.embedder.training.features import cached_features
    from imgsearch.embedder.training.trainer import TrainConfig, default_out, train_head
    from imgsearch.embedder.wordspace.wordvectors import load_word_vectors

    settings = _apply(settings, args)
    try:
        dataset = load_dataset(args.dataset)
        holdout = _holdout(args.holdout_classes)
        dataset.class_index(holdout)  # refuse unknown class names before any slow work
        config = TrainConfig(
            loss=args.loss,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            seed=args.seed,
            mix=args.mix,
            budget=args.zero_shot_budget,
        )
        words = load_word_vectors(settings.glove, settings.cache_dir)
        features = cached_features(dataset, settings.cache_dir, runtime=settings.cnn_runtime, stream=err)
        head = train_head(dataset, features, words, holdout, config, stream=err)
        path = head.save(Path(args.out) if args.out else default_out(settings, dataset.name))
    except (ServiceError, OSError) as e:
        return _fail(err, e)
    m = head.meta
    best = m["losses"][m["best_epoch"] - 1]
    err.write(
        f"trained {m['loss']} head on {m['train_images']} images of {len(dataset.classes) - len(holdout)} "
        f"classes in {m['train_seconds']}s; kept epoch {m['best_epoch']} (val loss {best['val_loss']:.4f}); "
        f"mix {head.mix.get('mode')}\n"
    )
    out.write(f"{path}\n")
    return int(ExitStatus.SUCCESS)


def _head_vectors(spec: str, words: Any, feats: Any) -> tuple[str, np.ndarray]:
    """The head's report name and its vectors of the test images."""
    from imgsearch.embedder.wordspace.devise import load_devise_head
    from imgsearch.embedder.wordspace.heads import ConseHead

    if spec == "conse":
        head: Any = ConseHead.from_word_vectors(words)
        name = "conse"
    else:
        head = load_devise_head(spec, words)
        name = f"devise:{Path(spec).name}"
    return name, head.embed(np.asarray(feats.features), np.asarray(feats.logits))


def run_eval(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    from imgsearch.embedder.training.datasets import load_dataset
    from imgsearch.embedder.training.evaluation import evaluate, write_html
    from imgsearch.embedder.training.features import cached_features
    from imgsearch.embedder.wordspace.devise import class_vectors
    from imgsearch.embedder.wordspace.wordvectors import load_word_vectors

    settings = _apply(settings, args)
    specs = args.eval_heads or [settings.head]
    try:
        dataset = load_dataset(args.dataset)
        holdout_names = _holdout(args.holdout_classes)
        if not args.holdout_classes and specs[0] != "conse":  # default: what the head was trained without
            from imgsearch.embedder.wordspace.devise import DeviseHead

            holdout_names = DeviseHead.read(specs[0]).meta.get("holdout_classes", [])
        holdout = dataset.class_index(holdout_names)
        words = load_word_vectors(settings.glove, settings.cache_dir)
        cvecs = class_vectors(dataset.classes, words)
        test = np.flatnonzero(dataset.is_test)
        feats = cached_features(dataset, settings.cache_dir, runtime=settings.cnn_runtime, stream=err)
        feats = feats.take(test)
        labels = dataset.labels[test]
        reports, examples = [], {}
        for spec in specs:
            name, vectors = _head_vectors(spec, words, feats)
            rep = evaluate(vectors, labels, cvecs, dataset.classes, holdout, head=name)
            reports.append(rep)
            if args.html:
                examples[name] = _examples(dataset, test, labels, vectors, cvecs)
    except (ServiceError, OSError) as e:
        return _fail(err, e)
    if args.html:
        write_html(args.html, reports, examples, f"imgsearch eval {dataset.name}")
        err.write(f"wrote {args.html}\n")
    if args.json:
        doc: Any = reports[0] if len(reports) == 1 else {"results": reports}
        out.write(json.dumps(doc) + "\n")
    else:
        _table(out, reports)
    return int(ExitStatus.SUCCESS)


def _examples(
    dataset: Any, test: np.ndarray, labels: np.ndarray, vectors: np.ndarray, cvecs: np.ndarray, k: int = 8
) -> dict[str, list[tuple[np.ndarray, bool, str]]]:
    """Per class word, its top-k test images with whether each is of that class."""
    scores = vectors @ cvecs.T
    found = {}
    for c, word in enumerate(dataset.classes):
        top = np.argsort(-scores[:, c])[:k]
        pixels = dataset.images(test[top])
        found[word] = [
            (pixels[j], bool(labels[i] == c), f"{dataset.classes[labels[i]]} {scores[i, c]:.3f}")
            for j, i in enumerate(top)
        ]
    return found


def _table(out: TextIO, reports: list[dict[str, Any]]) -> None:
    out.write(f"{'head':<32} {'seen@1':>7} {'seen@5':>7} {'zs@1':>7} {'zs@5':>7} {'P@10':>7} {'mAP':>7}\n")
    for r in reports:
        zs = r.get("zero_shot", {})
        cells = [r["seen"]["hit@1"], r["seen"]["hit@5"], zs.get("hit@1"), zs.get("hit@5")]
        cells += [r["text_to_image"]["precision@10"], r["text_to_image"]["map"]]
        text = " ".join(f"{'-':>7}" if v is None else f"{v:>7.3f}" for v in cells)
        out.write(f"{r['head'][:32]:<32} {text}\n")
    out.write(f"({reports[0]['images']} test images)\n")
