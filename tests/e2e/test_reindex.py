"""Reindexing rebuilds semantic vectors from the stored CNN features, without the images."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.protogen.imagesearch.v1 import embedder_pb2, indexer_pb2

pytestmark = pytest.mark.slow


def test_reindex_with_the_same_head_reproduces_the_semantic_vectors(server, stubs, photos):
    names = ["gold_fish", "guitar", "laptop"]
    data = [photos[n].read_bytes() + b"\0reindex" for n in names]
    r = stubs.indexer.Ingest(
        iter(indexer_pb2.IngestRequest(image=d, uri=n) for d, n in zip(data, names, strict=True))
    )
    ids = [x.id for x in r.results]
    precomputed = indexer_pb2.PointVectors(
        id="00000000-0000-0000-0000-00000000abcd", visual=[1.0] + [0.0] * 1279, semantic=[1.0] + [0.0] * 49
    )
    stubs.indexer.UpsertVectors(indexer_pb2.UpsertVectorsRequest(points=[precomputed]))
    before = {i: server.parts.store.get_image(i).semantic for i in ids}

    progress = list(stubs.indexer.Reindex(indexer_pb2.ReindexRequest(batch=2)))
    last = progress[-1]
    total = server.parts.store.count_images(namespace=None)  # every namespace (other tests share the server)
    assert last.total == total and last.done + last.skipped == total
    assert last.skipped >= 1 and last.head == "conse"
    assert len(progress) >= 2 and [p.done for p in progress] == sorted(p.done for p in progress)
    for i in ids:
        np.testing.assert_allclose(server.parts.store.get_image(i).semantic, before[i], atol=2e-3)
    fresh = stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=data)).embeddings
    for i, e in zip(ids, fresh, strict=True):
        np.testing.assert_allclose(server.parts.store.get_image(i).semantic, e.semantic, atol=2e-3)
    assert server.parts.store.get_image(precomputed.id).semantic[0] == pytest.approx(1.0)
