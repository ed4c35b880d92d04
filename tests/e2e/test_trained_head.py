"""A trained DeViSE head served over gRPC: model info names it, the semantic vectors are the head's,
a head for other word vectors is refused, and `reindex` rewrites what was stored under `conse`."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from imgsearch.app.serve import stop
from imgsearch.cli.main import Environment, main
from imgsearch.embedder.images import decode_image
from imgsearch.embedder.wordspace.devise import load_devise_head
from imgsearch.errors import FailedPrecondition
from imgsearch.protogen.imagesearch.v1 import embedder_pb2, indexer_pb2
from tests.e2e.conftest import start_server, stubs_for

pytestmark = pytest.mark.slow

GROUPS = {
    "fish": ["blue_tang", "gold_fish", "red_fish", "green_fish", "fighter_fish"],
    "dog": ["puppy", "puppies", "bear"],
    "sky": ["dusk", "night", "sunrise"],
}


def _train(folder, out, *extra: str) -> None:
    err = io.StringIO()
    code = main(
        ["train", str(folder), "--epochs", "3", "--out", str(out), *extra],
        env=Environment(stdout=io.StringIO(), stderr=err, environ={}),
    )
    assert code == 0, err.getvalue()[-500:]


@pytest.fixture(scope="module")
def folder(photos, tmp_path_factory):
    root = tmp_path_factory.mktemp("labelled")
    for label, names in GROUPS.items():
        (root / label).mkdir()
        for n in names:
            shutil.copy(photos[n], root / label / f"{n}.jpg")
    return root


@pytest.fixture(scope="module")
def head(folder, tmp_path_factory):
    path = tmp_path_factory.mktemp("head") / "pets.npz"
    _train(folder, path, "--holdout-classes", "sky")
    return path


def test_a_trained_head_is_served_and_reindex_rewrites_stored_vectors(tmp_path, head, photos):
    names = ["puppy", "gold_fish", "dusk", "tent"]
    data = [photos[n].read_bytes() for n in names]
    conse = start_server(tmp_path / "data", vocab_size=5000)
    try:
        s = stubs_for(conse.addr)
        ids = [r.id for r in s.indexer.Ingest(iter(indexer_pb2.IngestRequest(image=d) for d in data)).results]
        before = [conse.parts.store.get_image(i).semantic for i in ids]
        s.channel.close()
    finally:
        stop(conse.served, conse.parts, 1.0)

    devise = start_server(tmp_path / "data", vocab_size=5000, head=str(head))
    try:
        s = stubs_for(devise.addr)
        info = s.embedder.GetModelInfo(embedder_pb2.GetModelInfoRequest())
        assert info.head == "devise" and "devise" in info.head_detail and info.semantic_dim == 50
        served = s.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=data)).embeddings
        runtime = devise.parts.embedder
        own = load_devise_head(head, runtime.words)
        features, logits = runtime.cnn.run(np.stack([decode_image(d, runtime.limits).pixels for d in data]))
        np.testing.assert_allclose([e.semantic for e in served], own.embed(features, logits), atol=1e-4)

        stale = [devise.parts.store.get_image(i).semantic for i in ids]
        np.testing.assert_allclose(stale, before)  # still the conse vectors until reindexed
        last = list(s.indexer.Reindex(indexer_pb2.ReindexRequest()))[-1]
        assert (last.done, last.head) == (len(ids), "devise")
        for i, e in zip(ids, served, strict=True):
            np.testing.assert_allclose(devise.parts.store.get_image(i).semantic, e.semantic, atol=2e-3)
        assert not np.allclose(devise.parts.store.get_image(ids[0]).semantic, before[0], atol=1e-2)
        s.channel.close()
    finally:
        stop(devise.served, devise.parts, 1.0)


def test_a_head_trained_on_other_word_vectors_is_refused(tmp_path, folder):
    glove = tmp_path / "tiny-glove.txt"
    rng = np.random.default_rng(0)
    words = ["fish", "dog", "sky", "cat", "the"]
    glove.write_text("".join(f"{w} {' '.join(f'{x:.4f}' for x in rng.normal(size=8))}\n" for w in words))
    other = tmp_path / "other.npz"
    _train(folder, other, "--glove", str(glove))
    with pytest.raises(FailedPrecondition, match="word"):
        start_server(tmp_path / "data", vocab_size=1000, head=str(other))
