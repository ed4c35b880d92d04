"""The `imgsearch` CLI against the real server: the documented --json shapes, tables, HTML, exit codes."""

from __future__ import annotations

import io
import json

import pytest

from imgsearch.cli.main import Environment, ExitStatus, main
from imgsearch.cli.output import WEAKER_DIVIDER

pytestmark = pytest.mark.slow


def run(server, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env=Environment(stdout=out, stderr=err, environ={"IMGSEARCH_ADDR": server.addr}))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photos):
    """pets/ and sea/ with two photos each (bytes made unique), plus a corrupt file in sea/."""
    root = tmp_path_factory.mktemp("cli-photos")
    for label, names in {"pets": ["black_cat", "puppy"], "sea": ["jellyfish", "blue_tang"]}.items():
        (root / label).mkdir()
        for n in names:
            (root / label / f"{n}.jpg").write_bytes(photos[n].read_bytes() + b"\0cli")
    (root / "sea" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root


@pytest.fixture(scope="module")
def ingested(server, folder):
    code, out, _ = run(server, "ingest", str(folder), "--label-from-dir", "--meta", "source=cli", "--json")
    return code, json.loads(out)


def test_ingest_json_shape_and_failures(ingested, folder):
    code, doc = ingested
    assert code == ExitStatus.PARTIAL
    assert set(doc) == {"ingested", "duplicates", "failed", "updated"}
    assert doc["ingested"] + doc["duplicates"] == 4
    assert [f["path"] for f in doc["failed"]] == [str(folder / "sea" / "broken.jpg")]
    assert isinstance(doc["failed"][0]["error"], str) and doc["failed"][0]["error"]


def test_search_json_shape_with_filters(server, ingested, folder):
    code, out, _ = run(
        server, "search", "fish", "-k", "3", "--label", "sea", "--meta", "source=cli", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert (
        set(doc) == {"results", "match_count", "unknown_terms", "ignored_terms"}
        and doc["unknown_terms"] == []
    )
    assert 0 <= doc["match_count"] <= len(doc["results"])
    assert len(doc["results"]) == 2
    for r in doc["results"]:
        assert set(r) == {"id", "score", "uri", "label", "metadata"}
        assert r["label"] == "sea" and r["metadata"] == {"source": "cli"} and isinstance(r["score"], float)
    assert doc["results"][0]["uri"] in {
        str(folder / "sea" / "jellyfish.jpg"),
        str(folder / "sea" / "blue_tang.jpg"),
    }


def test_unknown_terms_in_json_and_exit_codes(server, ingested):
    code, out, _ = run(server, "search", "dog", "qwzxjvkq", "--json")
    assert code == 0 and json.loads(out)["unknown_terms"] == ["qwzxjvkq"]
    assert run(server, "search", "qwzxjvkq")[0] == ExitStatus.NOT_FOUND
    assert run(server, "search", "dog", "-k", "1001")[0] == ExitStatus.USAGE  # -k 0 means 10, as k unset
    assert run(server, "similar", "--id", "00000000-0000-0000-0000-000000000042")[0] == ExitStatus.NOT_FOUND


def test_tags_words_similar_and_table(server, ingested, folder, tmp_path):
    code, out, _ = run(server, "tags", str(folder / "pets" / "puppy.jpg"), "-k", "5", "--json")
    doc = json.loads(out)
    assert code == 0 and set(doc) == {"results"} and set(doc["results"][0]) == {"word", "score"}
    assert "dog" in [r["word"] for r in doc["results"]]
    code, out, _ = run(server, "words", "said", "--json")
    assert "told" in [r["word"] for r in json.loads(out)["results"]]
    html = tmp_path / "similar.html"
    code, out, _ = run(
        server, "similar", str(folder / "pets" / "black_cat.jpg"), "-k", "2", "--html", str(html)
    )
    assert code == 0 and "black_cat.jpg" in out.splitlines()[2]  # the table's first row is the photo itself
    page = html.read_text()
    assert "<img" in page and "data:image/" in page


def test_weaker_results_are_hidden_unless_asked_for_and_then_divided(server, ingested):
    """`search` shows the matches and says how many weaker results it hid; `--all` shows them
    below a divider line, in one table numbered on."""
    doc = json.loads(
        run(server, "search", "fish", "-k", "20", "--label", "sea", "--label", "pets", "--json")[1]
    )
    matches, total = doc["match_count"], len(doc["results"])
    assert 0 < matches < total  # two fish match "fish", the cat and the puppy do not
    code, out, err = run(server, "search", "fish", "-k", "20", "--label", "sea", "--label", "pets")
    assert code == 0 and len(out.splitlines()) == 2 + matches
    assert f"{total - matches} weaker results hidden" in err
    code, out, err = run(server, "search", "fish", "-k", "20", "--label", "sea", "--label", "pets", "--all")
    lines = out.splitlines()
    assert code == 0 and lines[2 + matches] == WEAKER_DIVIDER and len(lines) == 3 + total
    assert [line.split()[0] for line in lines[2:] if line != WEAKER_DIVIDER] == [
        str(i) for i in range(1, total + 1)
    ]
    assert "hidden" not in err


def test_delete_and_stats(server, ingested, folder):
    code, out, _ = run(server, "stats", "--json")
    before = json.loads(out)["images"]
    code, out, _ = run(server, "delete", "--meta", "source=cli", "--json")
    assert code == 0 and json.loads(out)["deleted"] == 4
    assert json.loads(run(server, "stats", "--json")[1])["images"] == before - 4
    assert run(server, "delete")[0] == ExitStatus.USAGE


def test_unreachable_server_is_exit_unavailable(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdout=out, stderr=err, environ={"IMGSEARCH_ADDR": "127.0.0.1:1"})
    assert main(["search", "dog"], env=env) == ExitStatus.UNAVAILABLE
