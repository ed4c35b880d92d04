"""How the stores lay collections out: where the original vectors live, how they are quantized,
the HNSW graph's shape, where payloads live and how large segments grow.

Both engines take the same options (Qdrant Edge's `EdgeConfig` and a Qdrant server's collection
parameters mirror each other), so one `StorageOptions` describes a collection for either store.
The defaults are the measured choice for about a million images on a 2-CPU, 24 GB machine
(benchmarks/scale_bench.py, docs/storage.md):

- Original float32 vectors on disk (memory-mapped): searches walk the graph over the quantized
  copy kept in RAM and read only the OVERSAMPLING x k candidates' originals to rescore them, so
  the originals need page cache, not process memory (5.1 GB per million images of 1280-d).
- int8 scalar quantization: a quarter of the originals' size; similar-by-id recall@10 with
  rescoring 0.99 at 50,000 and 200,000 images. Binary quantization (1 bit per dimension, 1/32)
  keeps only the sign of each value, and pooled CNN features are all >= 0: recall@10 0.36 at
  50,000 images, so it is no choice for these vectors. Product quantization (1/16: 80 bytes per
  image instead of 1,280) kept recall: similar-by-id recall@10 0.977 against int8's 0.978 at
  20,000 images (its candidates rescored with the originals), but building its codebooks made the
  optimize 7x slower (231 against 33 s) on 2 CPUs: an option for RAM-bound clusters, not the default.
- HNSW m=16, ef_construct=100 (Qdrant's defaults) for the visual vectors: recall@10 0.997 at
  200,000 images with the search-time ef left at its default.
- Payloads on disk: the stored payload (uri, label, metadata, thumbnail) is read only for the
  hits returned; the payload indexes used by filters stay in RAM.
- Segments up to `max_segment_mb` of vectors: fewer, larger segments answer faster (one graph
  walk each) but each rebuild of a merged segment takes longer.

All of that is for the large `visual` vector. The word-space vectors (`semantic`, and the words
collection's), 50 floats by default, are kept float32 in RAM without quantization and get a
denser graph (WORD_SPACE_M, WORD_SPACE_EF_CONSTRUCT): ConSE vectors crowd around class-word
mixtures (the 10th and 11th nearest images of a text query differ by about 4e-4 in cosine at
200,000 images), which int8's rounding and a sparse graph cannot tell apart. Text-query recall@10
at 200,000 images: int8 at m=16, ef_construct=100: 0.56; float32 there: 0.76; float32 at m=32
with ef_construct 128, 256, 400: 0.84, 0.945, 0.96. Keeping them costs 200 bytes per image in RAM
and a longer graph build (50 floats per distance, so still cheaper than the visual graph's).

At a million images the images' semantic graph is denser still (SEMANTIC_M, SEMANTIC_EF_CONSTRUCT):
the million images' semantic vectors alone in one graph, text-query recall@10 at search beams
1000 / 2000 / 4000 (benchmarks/README.md, 2026-12-04): m=32, ef_construct=400: 0.915 / 0.920 /
0.948; m=48: 0.918 / 0.923 / 0.948; m=64: 0.930 / 0.935 / 0.950; m=64, ef_construct=800: 0.953 /
0.958 / 0.970 (0.85 ms a search at beam 1000 in process). The build beam matters more than the
links: 2.4x the graph's build CPU (883 against 400 s for the million) and 64 more links a point
(about 0.25 GB more per million images). The words collection (50,000 words by default, built at
the first start) keeps m=32, ef_construct=400: its searches ask for a few neighbours of a word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgsearch.vectorstore.engine import QUANTIZATION_OVERSAMPLING, QUANTIZATION_QUANTILE, QUANTIZATIONS
from imgsearch.vectorstore.schema import SEMANTIC, VISUAL

# The graph of the word-space vectors (semantic, words): denser than the visual one (see above);
# the images' semantic vectors, which text queries search among up to millions, denser again.
WORD_SPACE_M = 32
WORD_SPACE_EF_CONSTRUCT = 400
SEMANTIC_M = 64
SEMANTIC_EF_CONSTRUCT = 800
# Their search-time beam (IMGSEARCH_HNSW_EF, when set, applies to both spaces): word_space_beam.
WORD_SPACE_EF = 1000
LARGE_WORD_SPACE_EF = 2000
LARGE_COLLECTION = 500_000

# Candidates rescored with the original vectors, per result asked for.
OVERSAMPLING = {"int8": QUANTIZATION_OVERSAMPLING, "binary": 4.0, "product": 4.0}


@dataclass(frozen=True)
class StorageOptions:
    """Collection settings fixed when a collection is created (see the module docstring)."""

    quantization: str = "int8"
    vectors_on_disk: bool = True
    payload_on_disk: bool = True
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    max_segment_mb: int | None = None  # None: the engine's default (256 MB per CPU)

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(
                f"IMGSEARCH_QUANTIZATION must be one of {', '.join(QUANTIZATIONS)}, got {self.quantization!r}"
            )
        if self.hnsw_m < 4 or self.hnsw_ef_construct < 4:
            raise ValueError(
                f"HNSW m and ef_construct must be at least 4, got {self.hnsw_m} and {self.hnsw_ef_construct}"
            )
        if self.max_segment_mb is not None and self.max_segment_mb < 1:
            raise ValueError(f"the largest segment must be at least 1 MB, got {self.max_segment_mb}")

    @property
    def quantized(self) -> bool:
        return self.quantization != "none"

    @property
    def oversampling(self) -> float:
        return OVERSAMPLING.get(self.quantization, 1.0)

    @property
    def max_segment_kb(self) -> int | None:
        return None if self.max_segment_mb is None else self.max_segment_mb * 1024

    # -- Qdrant Edge ---------------------------------------------------------------------------

    def edge_quantization(self, qe: Any) -> Any:
        """The quantized copy, kept in RAM (pinned), as Qdrant Edge takes it; None for "none"."""
        if self.quantization == "int8":
            return qe.ScalarQuantizationConfig(
                type=qe.ScalarType.Int8, quantile=QUANTIZATION_QUANTILE, memory=qe.Memory.Pinned
            )
        if self.quantization == "binary":
            return qe.BinaryQuantizationConfig(memory=qe.Memory.Pinned)
        if self.quantization == "product":
            return qe.ProductQuantizationConfig(compression=qe.CompressionRatio.X16, memory=qe.Memory.Pinned)
        return None

    def quantizes(self, vector_name: str) -> bool:
        """Whether vectors of that name get a quantized copy (only the large visual ones)."""
        return self.quantized and vector_name == VISUAL

    def edge_vector_params(
        self, qe: Any, vector_name: str, size: int, full_scan_threshold_kb: int | None
    ) -> Any:
        if vector_name == VISUAL:
            return qe.EdgeVectorParams(
                size=size,
                distance=qe.Distance.Cosine,
                on_disk=self.vectors_on_disk,
                quantization_config=self.edge_quantization(qe),
            )
        m, ef_construct = word_space_graph(vector_name)
        return qe.EdgeVectorParams(
            size=size,
            distance=qe.Distance.Cosine,
            on_disk=False,
            hnsw_config=qe.HnswIndexConfig(
                m=m,
                ef_construct=ef_construct,
                full_scan_threshold=10_000 if full_scan_threshold_kb is None else full_scan_threshold_kb,
            ),
        )

    def edge_hnsw(self, qe: Any, full_scan_threshold_kb: int | None) -> Any:
        return qe.HnswIndexConfig(
            m=self.hnsw_m,
            ef_construct=self.hnsw_ef_construct,
            full_scan_threshold=10_000 if full_scan_threshold_kb is None else full_scan_threshold_kb,
        )

    # -- Qdrant server (qdrant-client models) ----------------------------------------------------

    def remote_quantization(self, models: Any) -> Any:
        if self.quantization == "int8":
            return models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(
                    type=models.ScalarType.INT8, quantile=QUANTIZATION_QUANTILE, always_ram=True
                )
            )
        if self.quantization == "binary":
            return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
        if self.quantization == "product":
            return models.ProductQuantization(
                product=models.ProductQuantizationConfig(
                    compression=models.CompressionRatio.X16, always_ram=True
                )
            )
        return None

    def remote_vector_params(self, models: Any, vector_name: str, size: int, local: bool) -> Any:
        """One named vector's parameters (local mode keeps everything in RAM and only the quantization)."""
        if vector_name == VISUAL:
            return models.VectorParams(
                size=size,
                distance=models.Distance.COSINE,
                on_disk=None if local else self.vectors_on_disk,
                quantization_config=self.remote_quantization(models),
            )
        m, ef_construct = word_space_graph(vector_name)
        return models.VectorParams(
            size=size,
            distance=models.Distance.COSINE,
            on_disk=None if local else False,
            hnsw_config=None if local else models.HnswConfigDiff(m=m, ef_construct=ef_construct),
        )

    def remote_collection(self, models: Any) -> dict[str, Any]:
        """create_collection's keywords besides the vectors (HNSW, payload, optimizer)."""
        return {
            "hnsw_config": models.HnswConfigDiff(m=self.hnsw_m, ef_construct=self.hnsw_ef_construct),
            "on_disk_payload": self.payload_on_disk,
            "optimizers_config": models.OptimizersConfigDiff(max_segment_size=self.max_segment_kb)
            if self.max_segment_kb
            else None,
        }


def word_space_graph(vector_name: str) -> tuple[int, int]:
    """(m, ef_construct) of a word-space vector's graph: the images' semantic vectors or a word's."""
    if vector_name == SEMANTIC:
        return SEMANTIC_M, SEMANTIC_EF_CONSTRUCT
    return WORD_SPACE_M, WORD_SPACE_EF_CONSTRUCT


def word_space_beam(points: int) -> int:
    """The search beam of the images' semantic vectors in a collection of `points` images.

    The engine's default (ef_construct) gave text-query recall@10 0.96 at 200,000 images but 0.91
    at a million. WORD_SPACE_EF (1,000) keeps recall@10 at 1.00 at 100,000 images; at a million
    over gRPC it gave 0.94 at m=32 and 0.9475 at m=64, ef_construct=800 (p50 2.5 ms), and 2,000
    buys the margin over 0.95 (0.958 in process, 0.5 ms more a search). Below LARGE_COLLECTION the
    wider beam buys nothing and costs: at 100,000 images 4.7 against 3.3 ms a SearchText and 217
    against 313 queries/s from 8 clients (benchmarks/README.md, 2026-12-04).
    """
    return LARGE_WORD_SPACE_EF if points >= LARGE_COLLECTION else WORD_SPACE_EF
