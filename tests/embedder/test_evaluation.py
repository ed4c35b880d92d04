"""Measuring heads: the metrics themselves, and `imgsearch train` / `imgsearch eval` end to end."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from imgsearch.embedder.training.evaluation import average_precision, evaluate, label_ranks

CLASSES = ("cat", "dog", "fish")


def test_average_precision_of_known_rankings():
    assert average_precision(np.array([True, True, False, False])) == 1.0
    assert average_precision(np.array([False, True, False, True])) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert average_precision(np.array([False, False])) == 0.0


def test_ties_count_against_the_true_label():
    scores = np.array([[0.5, 0.5, 0.1], [0.9, 0.2, 0.1]])
    assert label_ranks(scores, np.array([0, 0])).tolist() == [1, 0]


def test_perfect_vectors_score_one_and_the_shape_is_documented():
    words = np.eye(3, 4, dtype=np.float32)  # three orthogonal class words
    labels = np.array([0, 0, 1, 1, 2, 2])
    report = evaluate(words[labels], labels, words, CLASSES, holdout=[2], head="oracle")
    assert set(report) == {"head", "images", "seen", "zero_shot", "text_to_image", "per_class"}
    assert report["head"] == "oracle" and report["images"] == 6
    assert report["seen"] == {"hit@1": 1.0, "hit@5": 1.0}
    assert report["zero_shot"] == {"hit@1": 1.0, "hit@5": 1.0}
    assert report["text_to_image"] == {"precision@10": pytest.approx(2 / 10), "map": 1.0}
    assert report["per_class"]["fish"]["held_out"] is True


def test_confusions_lower_the_metrics_where_they_happen():
    words = np.eye(3, 4, dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 2, 2])
    vectors = words[[0, 1, 1, 1, 0, 2]]  # one cat looks like a dog, one fish like a cat
    report = evaluate(vectors, labels, words, CLASSES, holdout=[2])
    assert report["seen"]["hit@1"] == 0.75
    assert report["zero_shot"]["hit@1"] == 0.5
    assert report["per_class"]["dog"]["ap"] < 1.0 and report["per_class"]["cat"]["ap"] < 1.0
    no_holdout = evaluate(vectors, labels, words, CLASSES)
    assert "zero_shot" not in no_holdout and no_holdout["seen"]["hit@1"] == pytest.approx(4 / 6)


@pytest.fixture(scope="module")
def photo_folder(photos, tmp_path_factory) -> Path:
    """Real photos in class folders (the seed's layout)."""
    root = tmp_path_factory.mktemp("photos")
    groups = {
        "fish": ["blue_tang", "gold_fish", "red_fish", "green_fish", "fighter_fish"],
        "dog": ["puppy", "puppies"],
        "sky": ["dusk", "night", "sunrise"],
    }
    for label, names in groups.items():
        (root / label).mkdir()
        for n in names:
            shutil.copy(photos[n], root / label / f"{n}.jpg")
    return root


def _cli(argv: list[str], environ: dict[str, str]) -> tuple[int, str, str]:
    from imgsearch.cli.main import Environment, main

    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=Environment(stdout=out, stderr=err, environ=environ))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_train_then_eval_json_and_html(photo_folder, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    env = {"IMGSEARCH_DATA": str(data), "IMGSEARCH_CACHE": str(tmp_path_factory.mktemp("cache"))}
    head = data / "head.keras"
    code, out, err = _cli(
        ["train", str(photo_folder), "--holdout-classes", "sky", "--epochs", "3", "--out", str(head)], env
    )
    assert code == 0, err
    assert out.strip() == str(head) and head.is_file()
    assert "features" in err and "trained cosine head" in err  # progress and summary go to stderr

    report = data / "report.html"
    code, out, err = _cli(
        ["eval", str(photo_folder), "--head", str(head), "--head", "conse", "--json", "--html", str(report)],
        env,
    )
    assert code == 0, err
    results = json.loads(out)["results"]
    assert [r["head"] for r in results] == ["devise:head.keras", "conse"]
    for r in results:  # the documented shape; sky is held out because the head was trained without it
        assert r["images"] == 3
        assert set(r["seen"]) == set(r["zero_shot"]) == {"hit@1", "hit@5"}
        assert set(r["text_to_image"]) == {"precision@10", "map"}
        assert all(0.0 <= v <= 1.0 for v in [*r["seen"].values(), *r["text_to_image"].values()])
    page = report.read_text()
    assert "sky (held out)" in page and page.count("<img") >= 3 * 2

    code, out, _ = _cli(["eval", str(photo_folder), "--head", "conse", "--json"], env)
    assert code == 0 and "zero_shot" not in json.loads(out)


def test_eval_refuses_an_unknown_class_and_a_missing_head(photo_folder, tmp_path):
    env = {"IMGSEARCH_DATA": str(tmp_path), "IMGSEARCH_CACHE": str(tmp_path / "cache")}
    code, _, err = _cli(["eval", str(photo_folder), "--head", "conse", "--holdout-classes", "cat"], env)
    assert code == 2 and "unknown class 'cat'" in err
    code, _, err = _cli(["eval", str(photo_folder), "--head", str(tmp_path / "none.keras")], env)
    assert code == 8 and "not found" in err
