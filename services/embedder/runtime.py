"""The embedder's working parts in one object: CNN, word vectors, semantic head, decoding pool
and batcher. Plain Python, no gRPC: the servicer and the in-process indexer/query call it."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from imgsearch.config import Settings
from imgsearch.config.cpus import usable_cpus
from imgsearch.config.settings import Limits
from imgsearch.embedder.batching import Batcher
from imgsearch.embedder.channels.colours import colour_shares
from imgsearch.embedder.channels.sky import sky_entries
from imgsearch.embedder.channels.taxonomy import image_classes, with_entries, with_person
from imgsearch.embedder.results import (
    ClassScores,
    ImageOutcome,
    ImageVectors,
    ModelInfo,
    Thumbnailer,
    VocabularyChunk,
)
from imgsearch.embedder.wordspace.heads import softmax
from imgsearch.embedder.wordspace.wordvectors import tokenize
from imgsearch.errors import InvalidArgument, ResourceExhausted, ServiceError
from imgsearch.telemetry.metrics import BATCH_SIZE, IMAGES_EMBEDDED, IMAGES_FAILED

log = logging.getLogger(__name__)

MAX_BATCH = 32  # images per request worth sending; callers read it from ModelInfo.max_batch


@dataclass(frozen=True)
class _Decoded:
    """What the decoding thread learnt of an image besides the CNN's input."""

    width: int
    height: int
    face: bool
    thumbnail: bytes | None


@dataclass(frozen=True)
class _Embedded:
    visual: np.ndarray
    semantic: np.ndarray
    norm: float
    classes: ClassScores


class EmbedderRuntime:
    """Embeds images (decoded in a thread pool, run through the CNN in shared batches) and text.

    The CNN says how to feed it: Keras one batch of up to 32 at a time, which may wait 10 ms for
    decodes in flight; LiteRT a few images per call on as many calls at once as it has
    interpreters, never waiting (it runs one image per invoke, so gathering gains nothing).

    Each image is decoded once: the decoding thread queues the CNN's input, then, while the CNN
    runs, looks for faces in the same 224 x 224 picture and makes the caller's thumbnail from the
    uncropped picture.
    """

    def __init__(
        self, cnn, words, head, limits: Limits, decode_workers: int | None = None, taxonomy=None, faces=None
    ):
        """taxonomy: an imgsearch.embedder.channels.taxonomy.Taxonomy, which gives texts their ImageNet
        classes; None leaves them without (images always get theirs). faces: an
        imgsearch.embedder.channels.faces.FaceDetector, which adds PERSON to the classes of images
        with a face."""
        self.cnn = cnn
        self.words = words
        self.head = head
        self.taxonomy = taxonomy
        self.faces = faces
        self.limits = limits
        workers = decode_workers or max(2, min(4, usable_cpus()))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        concurrency = getattr(cnn, "concurrency", 1)
        self._batcher = Batcher(
            self._run_batch,
            max_batch=getattr(cnn, "batch_size", MAX_BATCH),
            max_wait=0.01 if concurrency == 1 else 0.0,
            workers=concurrency,
        )

    @classmethod
    def load(cls, settings: Settings) -> EmbedderRuntime:
        """Loads (converting and caching on first use) the CNN, word vectors and head."""
        from imgsearch.embedder.vision.cnn_loading import load_cnn
        from imgsearch.embedder.wordspace.head_loading import load_head
        from imgsearch.embedder.wordspace.wordvectors import load_word_vectors

        start = time.perf_counter()
        cnn = load_cnn(settings.cnn_runtime, settings.cache_dir)
        words = load_word_vectors(settings.glove, settings.cache_dir)
        head = load_head(settings.head, words, settings.cache_dir)
        taxonomy = faces = None
        if settings.taxonomy:
            from imgsearch.embedder.channels.taxonomy import Taxonomy

            taxonomy = Taxonomy.load()
        if settings.people:
            from imgsearch.embedder.channels.faces import FaceDetector

            faces = FaceDetector.load()
        runtime = cls(cnn, words, head, settings.limits, taxonomy=taxonomy, faces=faces)
        runtime.embed_pixels(np.zeros((1, cnn.input_size, cnn.input_size, 3), np.uint8))  # trace the graph
        log.info(
            "embedder ready in %.1f s: %s on %s, head %s, %s (%d words, %d-d)",
            time.perf_counter() - start,
            cnn.name,
            cnn.runtime,
            head.name,
            words.source,
            len(words.words),
            words.dim,
        )
        return runtime

    def close(self) -> None:
        self._batcher.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- images ---------------------------------------------------------------------------------

    def embed_images(self, images: list[bytes], thumbnail: Thumbnailer | None = None) -> list[ImageOutcome]:
        """One outcome per image, in order: vectors, or the error that image alone failed with.
        `thumbnail` (a function of the decoded picture) fills each outcome's `thumbnail`."""
        n = len(images)
        if n > self.limits.max_images_per_request:
            raise ResourceExhausted(
                f"{n} images in one request, over the limit max_images_per_request="
                f"{self.limits.max_images_per_request}"
            )
        self._batcher.expect(n)
        pending = [self._pool.submit(self._decode_and_queue, data, thumbnail) for data in images]
        outcomes: list[ImageOutcome] = []
        for job in pending:
            try:
                decoded, model_future = job.result()
                out: _Embedded = model_future.result()
                classes = with_person(out.classes) if decoded.face else out.classes
                outcomes.append(
                    ImageVectors(
                        out.visual,
                        out.semantic,
                        decoded.width,
                        decoded.height,
                        out.norm,
                        classes,
                        decoded.thumbnail,
                    )
                )
            except ServiceError as exc:
                IMAGES_FAILED.labels(exc.code_name).inc()
                outcomes.append(exc)
        return outcomes

    def embed_features(self, features: np.ndarray) -> np.ndarray:
        """Semantic vectors (N, dim) of raw CNN features (N, 1280): the logits are the CNN's final
        linear layer over them, so no image is needed to re-run the head."""
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or features.shape[1] != self.cnn.feature_dim:
            raise InvalidArgument(
                f"features must be (N, {self.cnn.feature_dim}), got {tuple(features.shape)}"
            )
        if not np.all(np.isfinite(features)):
            raise InvalidArgument("features contain NaN or infinity")
        return self.head.embed(features, self.cnn.logits_from_features(features))

    def classify_features(self, features: np.ndarray) -> list[ClassScores]:
        """The most probable ImageNet classes of raw CNN features (N, 1280), as `embed_images` gives."""
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or features.shape[1] != self.cnn.feature_dim:
            raise InvalidArgument(
                f"features must be (N, {self.cnn.feature_dim}), got {tuple(features.shape)}"
            )
        return image_classes(softmax(self.cnn.logits_from_features(features)))

    def embed_pixels(self, pixels: np.ndarray) -> list[_Embedded]:
        """Runs already-decoded images (N, 224, 224, 3) uint8 straight through the model (and the
        face detector)."""
        embedded = self._run_batch(pixels)
        if self.faces is None:
            return embedded
        faces = self.faces.faces(pixels)
        return [
            replace(e, classes=with_person(e.classes)) if n else e
            for e, n in zip(embedded, faces, strict=True)
        ]

    def _decode_and_queue(self, data: bytes, thumbnail: Thumbnailer | None) -> tuple[_Decoded, Future]:
        from imgsearch.embedder.images import decode_image

        try:
            decoded = decode_image(
                data, self.limits, getattr(self.cnn, "input_size", 224), keep_picture=thumbnail is not None
            )
        except BaseException:
            self._batcher.cancel_expected()
            raise
        model_future = self._batcher.submit(decoded.pixels, expected=True)
        # While the CNN runs (other threads), the rest of what the decoded image gives:
        face = bool(self.faces.faces(decoded.pixels[None])[0]) if self.faces is not None else False
        thumb = _thumbnail(thumbnail, decoded.picture) if thumbnail is not None else None
        return _Decoded(decoded.width, decoded.height, face, thumb), model_future

    def _run_batch(self, pixels: np.ndarray) -> list[_Embedded]:
        features, logits = self.cnn.run(pixels, alone=not self._batcher.busy())
        norms = np.linalg.norm(features, axis=1)
        visual = features / np.maximum(norms, 1e-12)[:, None]
        semantic = self.head.embed(features, logits)
        classes = image_classes(softmax(logits))
        classes = [
            with_entries(c, {**shares, **sky})
            for c, shares, sky in zip(classes, colour_shares(pixels), sky_entries(pixels), strict=True)
        ]
        BATCH_SIZE.observe(len(pixels))
        IMAGES_EMBEDDED.inc(len(pixels))
        return [
            _Embedded(visual[i].astype(np.float32), semantic[i].astype(np.float32), float(norms[i]), c)
            for i, c in enumerate(classes)
        ]

    # -- text -----------------------------------------------------------------------------------

    def embed_text(self, text: str):
        """The normalised mean of the known words' vectors (see WordVectors.embed_text)."""
        if len(text) > self.limits.max_text_chars:
            raise ResourceExhausted(
                f"text of {len(text)} characters, over the limit max_text_chars={self.limits.max_text_chars}"
            )
        embedded = self.words.embed_text(text)
        if self.taxonomy is None:
            return embedded
        return replace(embedded, classes=self.taxonomy.query([(w, 1.0) for w in tokenize(text)]))

    def model_info(self) -> ModelInfo:
        return ModelInfo(
            cnn=self.cnn.name,
            head=self.head.name,
            visual_dim=self.cnn.feature_dim,
            semantic_dim=self.head.dim,
            vocabulary_size=len(self.words.words),
            word_vectors=self.words.source,
            max_batch=MAX_BATCH,
            head_detail=str(getattr(self.head, "description", self.head.name)),
        )

    def vocabulary(self, limit: int = 0, chunk_size: int = 5000) -> Iterator[VocabularyChunk]:
        """The most frequent `limit` words (0 = all) with their vectors, in chunks."""
        if limit < 0 or chunk_size < 0:
            raise InvalidArgument(f"limit and chunk_size must not be negative, got {limit} and {chunk_size}")
        total = len(self.words.words) if limit <= 0 else min(limit, len(self.words.words))
        chunk_size = chunk_size if chunk_size > 0 else 5000
        for start in range(0, total, chunk_size):
            end = min(total, start + chunk_size)
            yield VocabularyChunk(start, list(self.words.words[start:end]), self.words.vectors[start:end])


def _thumbnail(make: Thumbnailer, picture) -> bytes | None:
    """The caller's thumbnail, or None if it fails: a thumbnail never fails an image."""
    try:
        return make(picture)
    except Exception as exc:  # noqa: BLE001 - a convenience only
        log.warning("no thumbnail: %s: %s", type(exc).__name__, exc)
        return None


def warmup(settings: Settings) -> ModelInfo:
    """Converts and caches the CNN (for LiteRT, the flatbuffer too, checked against Keras) and
    parses the word vectors, so later starts are fast, offline and, on LiteRT, free of TensorFlow."""
    runtime = EmbedderRuntime.load(settings)
    try:
        return runtime.model_info()
    finally:
        runtime.close()
