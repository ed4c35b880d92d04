"""The Embedder service over real gRPC with the real models."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from imgsearch.protogen.imagesearch.v1 import embedder_pb2

pytestmark = pytest.mark.slow


def _jpeg(size=(64, 48), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def test_model_info_names_the_real_models(stubs):
    info = stubs.embedder.GetModelInfo(embedder_pb2.GetModelInfoRequest())
    assert info.cnn == "efficientnet-lite0"
    assert info.head == "conse"
    assert (info.visual_dim, info.semantic_dim) == (1280, 50)
    assert info.vocabulary_size == 400_000
    assert "glove" in info.word_vectors.lower()
    assert info.max_batch == 32


def test_embed_images_returns_unit_vectors_and_sizes(stubs, photos):
    data = photos["chelsea"].read_bytes()
    r = stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=[data, _jpeg()]))
    assert len(r.embeddings) == 2
    cat = r.embeddings[0]
    assert not cat.HasField("error")
    assert len(cat.visual) == 1280 and len(cat.semantic) == 50
    assert np.linalg.norm(cat.visual) == pytest.approx(1.0, abs=1e-4)
    assert np.linalg.norm(cat.semantic) == pytest.approx(1.0, abs=1e-4)
    assert (cat.width, cat.height) == (451, 300)
    assert (r.embeddings[1].width, r.embeddings[1].height) == (64, 48)


def test_same_image_alone_or_in_a_batch_gives_the_same_vectors(stubs, photos):
    data = photos["coffee"].read_bytes()
    alone = stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=[data])).embeddings[0]
    batch = [p.read_bytes() for p in list(photos.values())[:10]] + [data]
    inside = stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=batch)).embeddings[-1]
    np.testing.assert_allclose(alone.visual, inside.visual, atol=1e-4)
    np.testing.assert_allclose(alone.semantic, inside.semantic, atol=1e-4)


def test_embed_text_is_the_normalised_mean_of_the_words(stubs):
    both = stubs.embedder.EmbedText(embedder_pb2.EmbedTextRequest(text="Cat SOFA"))
    cat = np.asarray(stubs.embedder.EmbedText(embedder_pb2.EmbedTextRequest(text="cat")).vector)
    sofa = np.asarray(stubs.embedder.EmbedText(embedder_pb2.EmbedTextRequest(text="sofa")).vector)
    mean = (cat + sofa) / np.linalg.norm(cat + sofa)
    np.testing.assert_allclose(both.vector, mean, atol=1e-5)
    assert list(both.known_words) == ["cat", "sofa"]
    assert list(both.unknown_words) == []


def test_embed_text_reports_unknown_words(stubs):
    r = stubs.embedder.EmbedText(embedder_pb2.EmbedTextRequest(text="cat qwzxjvkq"))
    assert list(r.unknown_words) == ["qwzxjvkq"]
    assert list(r.known_words) == ["cat"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", grpc.StatusCode.INVALID_ARGUMENT),
        ("   ", grpc.StatusCode.INVALID_ARGUMENT),
        ("qwzxjvkq zzqxqv", grpc.StatusCode.NOT_FOUND),
        ("cat " * 1000, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
def test_bad_text_gets_its_status(stubs, text, code):
    with pytest.raises(grpc.RpcError) as err:
        stubs.embedder.EmbedText(embedder_pb2.EmbedTextRequest(text=text))
    assert err.value.code() == code


def test_a_bad_image_fails_alone_and_the_server_keeps_serving(stubs, photos):
    good = photos["puppy"].read_bytes()
    images = [good, b"", b"not an image at all", good[: len(good) // 3], _jpeg()]
    r = stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=images))
    codes = [e.error.code if e.HasField("error") else 0 for e in r.embeddings]
    invalid = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert codes[0] == 0 and codes[4] == 0
    assert codes[1] == invalid and codes[2] == invalid
    assert "empty" in r.embeddings[1].error.message.lower()
    # a truncated JPEG is either refused or decoded partially, never a crash
    assert codes[3] in (0, invalid)
    again = stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=[good]))
    assert not again.embeddings[0].HasField("error")


def test_too_many_images_in_one_request_is_refused_naming_the_limit(stubs):
    tiny = _jpeg((8, 8))
    with pytest.raises(grpc.RpcError) as err:
        stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=[tiny] * 257))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_images_per_request" in err.value.details()


def test_empty_request_is_invalid(stubs):
    with pytest.raises(grpc.RpcError) as err:
        stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_oversized_message_is_refused(stubs):
    huge = b"\xff" * (65 * 1024 * 1024)
    with pytest.raises(grpc.RpcError) as err:
        stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=[huge]))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_vocabulary_streams_words_in_frequency_order(stubs):
    chunks = list(
        stubs.embedder.StreamVocabulary(embedder_pb2.StreamVocabularyRequest(limit=1200, chunk_size=500))
    )
    assert [c.start_rank for c in chunks] == [0, 500, 1000]
    words = [w for c in chunks for w in c.words]
    assert len(words) == 1200 and words[0] == "the"
    assert len(chunks[0].vectors) == 500 * chunks[0].dim


def test_the_python_client_embeds_through_the_service(server, stubs):
    """The client calls the Embedder's stubs itself (it imports no server code): the same vectors
    and model info as the service, a bad image as a per-image error, and an embedder that does
    not answer as UNAVAILABLE naming its address."""
    from imgsearch.client import ClientError, ImageSearchClient

    with ImageSearchClient(server.addr) as client:
        info = client.model_info()
        assert (info["cnn"], info["visual_dim"], info["semantic_dim"]) == ("efficientnet-lite0", 1280, 50)
        good, bad = client.embed_images([_jpeg(), b"not an image"])
        direct = stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=[_jpeg()])).embeddings[0]
        assert np.allclose(good.visual, direct.visual) and (good.width, good.height) == (64, 48)
        assert bad.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and bad.visual.size == 0
        text = client.embed_text("cat zzqqxx")
        assert text.known_words == ["cat"] and text.unknown_words == ["zzqqxx"]
        assert np.linalg.norm(text.vector) == pytest.approx(1.0, abs=1e-5)
    with ImageSearchClient(server.addr, embedder_addr="127.0.0.1:1", timeout=2) as client:
        with pytest.raises(ClientError) as info:
            client.embed_text("cat")
        assert info.value.code == grpc.StatusCode.UNAVAILABLE and "127.0.0.1:1" in info.value.message
