"""Query functions as plain Python, with the real embedder and a real Qdrant Edge store (no gRPC)."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.config.settings import Limits
from imgsearch.errors import FailedPrecondition, InvalidArgument, NotFound
from imgsearch.indexer.ingest import IngestItem, Ingestor
from imgsearch.query import search
from imgsearch.vectorstore.edge import EdgeStore
from imgsearch.vectorstore.plan import TEXT_SCALE

pytestmark = pytest.mark.slow
LIMITS = Limits()


@pytest.fixture(scope="module")
def store(tmp_path_factory, runtime, photos):
    s = EdgeStore(tmp_path_factory.mktemp("query") / "qdrant")
    info = runtime.model_info()
    s.ensure_collections(info.visual_dim, info.semantic_dim, info.semantic_dim)
    names = ["jellyfish", "guitar", "puppy", "laptop"]
    list(
        Ingestor(runtime, s, batch=runtime.model_info().max_batch).ingest(
            IngestItem(photos[n].read_bytes(), label=n) for n in names
        )
    )
    yield s
    s.close()


@pytest.mark.parametrize("k", [-3, 1001])
def test_k_must_be_between_1_and_1000(runtime, store, k):
    with pytest.raises(InvalidArgument, match="between 1 and 1000"):
        search.search_text(runtime, store, "dog", k, None, LIMITS)


def test_k_unset_means_ten_and_the_page_window_has_a_maximum(runtime, store):
    assert search.check_page(search.Page(), LIMITS) == 10
    with pytest.raises(InvalidArgument, match="offset \\+ k must be at most 1000"):
        search.search_text(runtime, store, "dog", search.Page(k=10, offset=995), None, LIMITS)
    with pytest.raises(InvalidArgument, match="offset must not be negative"):
        search.search_text(runtime, store, "dog", search.Page(k=10, offset=-1), None, LIMITS)


def test_text_search_returns_hits_and_unknown_words(runtime, store):
    found = search.search_text(runtime, store, "the guitar qwzxjv", 2, None, LIMITS)
    assert found.hits[0].payload["label"] == "guitar" and found.unknown_terms == ["qwzxjv"]
    assert found.ignored_terms == ["the"]
    with pytest.raises(NotFound):
        search.search_text(runtime, store, "qwzxjv", 2, None, LIMITS)


def test_a_query_of_only_stop_words_says_so(runtime, store):
    with pytest.raises(InvalidArgument, match="only stop words \\(a, photo, of\\)"):
        search.search_text(runtime, store, "a photo of", 2, None, LIMITS)


def test_the_sentence_and_its_bare_words_rank_alike(runtime, store):
    sentence = search.search_text(runtime, store, "a photo of a guitar", 4, None, LIMITS).hits
    bare = search.search_text(runtime, store, "guitar", 4, None, LIMITS).hits
    assert [h.id for h in sentence] == [h.id for h in bare]


def test_a_negative_word_sends_its_images_to_the_end(runtime, store):
    plain = search.search_text(runtime, store, "music", 4, None, LIMITS).hits
    pushed = search.search_text(runtime, store, "music -guitar", 4, None, LIMITS).hits
    assert plain[0].payload["label"] == "guitar"
    # nearer the negative than the query: a raw score below 0, the least relevance
    assert pushed[-1].payload["label"] == "guitar"
    assert 0 <= pushed[-1].score < TEXT_SCALE.relevance(0.0) < pushed[0].score <= 1


def test_words_and_images_in_one_query(runtime, store, photos):
    part = search.QueryPart(image=photos["puppy"].read_bytes())
    hits = search.search_text(runtime, store, "", 2, None, LIMITS, parts=(part,)).hits
    assert hits[0].payload["label"] == "puppy"
    away = search.QueryPart(image=photos["puppy"].read_bytes(), weight=-1.0)
    hits = search.search_text(runtime, store, "dog", 4, None, LIMITS, parts=(away,)).hits
    assert hits[-1].payload["label"] == "puppy"
    with pytest.raises(InvalidArgument, match="exactly one"):
        search.search_text(runtime, store, "dog", 2, None, LIMITS, parts=(search.QueryPart(),))
    with pytest.raises(InvalidArgument, match="weight"):
        search.search_text(
            runtime, store, "dog", 2, None, LIMITS, parts=(search.QueryPart(text="x", weight=0),)
        )


def test_similar_by_id_leaves_the_image_out_unless_asked(runtime, store):
    (guitar,) = search.search_text(runtime, store, "guitar", 1, None, LIMITS).hits
    source = search.ImageSource(id=guitar.id)
    assert guitar.id not in [h.id for h in search.similar_images(runtime, store, source, 4, None, LIMITS)]
    with_self = search.similar_images(runtime, store, source, 4, None, LIMITS, include_self=True)
    assert with_self[0].id == guitar.id


def test_image_source_must_be_bytes_or_a_known_id(runtime, store, photos):
    with pytest.raises(InvalidArgument):
        search.similar_images(runtime, store, search.ImageSource(), 3, None, LIMITS)
    with pytest.raises(NotFound):
        search.similar_images(
            runtime, store, search.ImageSource(id="00000000-0000-0000-0000-000000000009"), 3, None, LIMITS
        )
    with pytest.raises(InvalidArgument):
        search.similar_images(runtime, store, search.ImageSource(image=b"junk"), 3, None, LIMITS)
    hits = search.similar_images(
        runtime, store, search.ImageSource(image=photos["laptop"].read_bytes()), 1, None, LIMITS
    )
    assert hits[0].payload["label"] == "laptop"


def test_words_need_the_vocabulary_loaded(runtime, store, photos):
    source = search.ImageSource(image=photos["puppy"].read_bytes())
    with pytest.raises(FailedPrecondition, match="imgsearch vocab"):
        search.tag_image(runtime, store, source, 5, LIMITS)
    with pytest.raises(FailedPrecondition):
        search.similar_words(runtime, store, "dog", 5, LIMITS)
    from imgsearch.indexer.ingest import load_vocabulary

    load_vocabulary(runtime, store, 20_000)
    assert "dog" in [w for w, _ in search.tag_image(runtime, store, source, 5, LIMITS)]
    assert search.tag_image(runtime, store, source, 5, LIMITS)[0][0] in {"dog", "retriever"}
    assert search.similar_words(runtime, store, "dog", 3, LIMITS)[0][0] == "dog"
    with pytest.raises(InvalidArgument):
        search.similar_words(runtime, store, " ", 3, LIMITS)


def test_tags_name_the_photo_first_with_scores_in_0_1_and_no_stop_words(runtime, store):
    """A stored photo's tags (by id, its stored classes): its kind first, then broader kinds;
    never a stop word, never a plural beside its singular, every score in [0, 1]."""
    from imgsearch.indexer.ingest import load_vocabulary
    from imgsearch.query.stopwords import STOP_WORDS

    load_vocabulary(runtime, store, 20_000)
    (puppy,) = search.search_text(runtime, store, "puppy", 1, None, LIMITS).hits
    tags = search.tag_image(runtime, store, search.ImageSource(id=puppy.id), 10, LIMITS)
    words = [w for w, _ in tags]
    assert words[0] in {"dog", "retriever"} and {"dog", "animal"} <= set(words) and len(words) == 10
    assert not set(words) & STOP_WORDS and not {w + "s" for w in words} & set(words)
    assert all(0.0 <= s <= 1.0 for _, s in tags) and [s for _, s in tags] == sorted(
        (s for _, s in tags), reverse=True
    )


def test_similar_images_scores_are_the_fused_look_alike_score(runtime, store):
    """Scores in [0, 1], descending; min_score cuts on them; pages are slices of one ranking."""
    from imgsearch.query import lookalike

    (puppy,) = search.search_text(runtime, store, "puppy", 1, None, LIMITS).hits
    source = search.ImageSource(id=puppy.id)
    hits = search.similar_images(runtime, store, source, 3, None, LIMITS)
    scores = [h.score for h in hits]
    assert len(hits) == 3 and all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    page = search.similar_images(runtime, store, source, search.Page(k=2, offset=1), None, LIMITS)
    assert [h.id for h in page] == [h.id for h in hits[1:3]]
    cut = search.similar_images(runtime, store, source, search.Page(k=3, min_score=scores[1]), None, LIMITS)
    assert [h.id for h in cut] == [h.id for h in hits[:2]]
    assert [lookalike.candidate_depth(w, 1000) for w in (1, 10, 11, 20, 30, 40, 41, 999)] == [
        20, 20, 40, 40, 80, 80, 160, 1000,
    ]  # fmt: skip
    assert lookalike.fused_score(1.0, 1.0) == pytest.approx(1.0)
    assert lookalike.fused_score(0.2, -1.0) == 0.0  # never below 0
    assert lookalike.fused_score(0.5, 0.5) == pytest.approx(0.5)


def test_a_face_is_one_more_dimension_of_kind_when_the_query_shows_one():
    """Two portraits share no ImageNet class: with faces they are alike by kind, (semantic + 1) / 2;
    a query without a face compares semantic vectors alone."""
    from imgsearch.embedder.results import FACE_ENTRY
    from imgsearch.query import lookalike
    from imgsearch.types.embeddings import ClassScores
    from imgsearch.vectorstore.engine import SparseVector

    assert lookalike.face_of(SparseVector((3, FACE_ENTRY, FACE_ENTRY + 2), (0.4, 1.0, 0.2))) == 1.0
    assert lookalike.face_of(ClassScores((FACE_ENTRY,), (1.0,))) == 1.0
    assert lookalike.face_of(SparseVector((3,), (0.4,))) == lookalike.face_of(None) == 0.0
    query = np.array([1.0, 0.0])
    others = np.array([[0.0, 2.0], [0.0, 1.0]])  # orthogonal in meaning; rows need not be unit
    faces = np.array([1.0, 0.0])
    np.testing.assert_allclose(lookalike.kind_cosines(query, 1.0, others, faces), [0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(lookalike.kind_cosines(query, 0.0, others, faces), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(lookalike.kind_cosines(query, 1.0, [[3.0, 0.0]], [1.0]), [1.0], atol=1e-6)


def test_without_wordnet_tags_are_the_nearest_words_that_are_not_stop_words(runtime, tmp_path, caplog):
    """A server without Debian's wordnet-base (the lite image) still tags, by the word space alone."""
    from imgsearch.embedder.tagwords import TagWords

    assert TagWords.load(runtime, root=tmp_path) is None
    assert "tags are the nearest words only" in caplog.text
