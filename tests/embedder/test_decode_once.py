"""One decode per ingested image: the in-process embedder looks for faces in the picture it decoded
for the CNN and hands the caller's thumbnail function the same picture (real CNN, real photos)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from imgsearch.config.settings import Limits
from imgsearch.embedder.images import decode_image
from imgsearch.embedder.results import FACE_ENTRY, ImageVectors
from imgsearch.indexer.thumbnails import SIDE, make_thumbnail, thumbnail_of


def test_the_embedder_hands_back_the_thumbnail_of_the_picture_it_decoded(runtime, photos):
    data = [photos["puppy"].read_bytes(), photos["chelsea"].read_bytes()]
    asked = runtime.embed_images(data, thumbnail=thumbnail_of)
    plain = runtime.embed_images(data)
    for image, got, without in zip(data, asked, plain, strict=True):
        assert isinstance(got, ImageVectors) and isinstance(without, ImageVectors)
        assert without.thumbnail is None
        np.testing.assert_array_equal(got.visual, without.visual)
        thumb = Image.open(io.BytesIO(got.thumbnail))
        assert thumb.format == "JPEG" and max(thumb.size) == SIDE
        # the same picture as a thumbnail made from the bytes (what a remote embedder's caller makes)
        from_bytes = Image.open(io.BytesIO(make_thumbnail(image)))
        assert thumb.size == from_bytes.size
        assert abs(thumb.size[0] / thumb.size[1] - got.width / got.height) < 0.01
        diff = np.abs(np.asarray(thumb, float) - np.asarray(from_bytes.convert(thumb.mode), float))
        assert diff.mean() < 2


def test_a_failing_thumbnail_leaves_the_image_embedded(runtime, photos):
    def broken(picture):
        raise OSError("disk on fire")

    [got] = runtime.embed_images([photos["puppy"].read_bytes()], thumbnail=broken)
    assert isinstance(got, ImageVectors) and got.thumbnail is None


def test_faces_are_found_in_decoded_images_from_several_threads(runtime, photos):
    if runtime.faces is None:
        pytest.skip("no face detector (OpenCV missing or IMGSEARCH_PEOPLE=0)")
    astronaut = (photos["chelsea"].parent / "astronaut.png").read_bytes()
    cat = photos["chelsea"].read_bytes()
    got = runtime.embed_images([astronaut, cat, astronaut, cat])
    assert [FACE_ENTRY in g.classes.ids for g in got] == [True, False, True, False]
    pixels = np.stack([decode_image(b, Limits()).pixels for b in (astronaut, cat)])
    with ThreadPoolExecutor(4) as pool:  # each thread its own cascade
        answers = list(pool.map(lambda _: runtime.faces.faces(pixels), range(8)))
    assert answers == [[1, 0]] * 8


def test_images_ingested_through_a_remote_embedder_get_the_same_thumbnails(tmp_path, runtime, photos):
    from imgsearch.app.serve import stop
    from imgsearch.embedder.remote import RemoteEmbedder
    from imgsearch.indexer.ingest import Ingestor
    from imgsearch.types.items import IngestItem
    from imgsearch.vectorstore.edge import EdgeStore
    from tests.e2e.conftest import start_server

    data = [photos["puppy"].read_bytes(), photos["chelsea"].read_bytes()]
    replica = start_server(tmp_path / "embedder", ("embedder",))
    remote = RemoteEmbedder(replica.addr, timeout=60)
    info = runtime.model_info()
    stored = {}
    try:
        for name, embedder in (("remote", remote), ("local", runtime)):
            store = EdgeStore(tmp_path / name)
            try:
                store.ensure_collections(info.visual_dim, info.semantic_dim, info.semantic_dim)
                items = [IngestItem(image=d, uri=str(i)) for i, d in enumerate(data)]
                ids = [r.id for r in Ingestor(embedder, store, info.max_batch).ingest(items)]
                stored[name] = [store.thumbnails(ids)[i] for i in ids]
            finally:
                store.close()
    finally:
        remote.close()
        stop(replica.served, replica.parts, 1.0)
    for image, far, near in zip(data, stored["remote"], stored["local"], strict=True):
        assert far == make_thumbnail(image)  # made from the bytes by the indexer
        a, b = Image.open(io.BytesIO(far)), Image.open(io.BytesIO(near))  # near: from the shared decode
        assert a.format == b.format == "JPEG" and a.size == b.size
        assert np.abs(np.asarray(a, float) - np.asarray(b.convert(a.mode), float)).mean() < 2
