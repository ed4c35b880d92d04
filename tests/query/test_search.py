"""Query functions as plain Python, with the real embedder and a real Qdrant Edge store (no gRPC)."""

from __future__ import annotations

import pytest

from imgsearch.config.settings import Limits
from imgsearch.errors import FailedPrecondition, InvalidArgument, NotFound
from imgsearch.indexer.ingest import IngestItem, Ingestor
from imgsearch.query import search
from imgsearch.vectorstore.edge import EdgeStore

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


@pytest.mark.parametrize("k", [0, -3, 1001])
def test_k_must_be_between_1_and_1000(runtime, store, k):
    with pytest.raises(InvalidArgument, match="between 1 and 1000"):
        search.search_text(runtime, store, "dog", k, None, LIMITS)


def test_text_search_returns_hits_and_unknown_words(runtime, store):
    hits, unknown = search.search_text(runtime, store, "guitar qwzxjv", 2, None, LIMITS)
    assert hits[0].payload["label"] == "guitar" and unknown == ["qwzxjv"]
    with pytest.raises(NotFound):
        search.search_text(runtime, store, "qwzxjv", 2, None, LIMITS)


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
    assert search.similar_words(runtime, store, "dog", 3, LIMITS)[0][0] == "dog"
    with pytest.raises(InvalidArgument):
        search.similar_words(runtime, store, " ", 3, LIMITS)
