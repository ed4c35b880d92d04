"""Settings read once from the environment (CLI flags override them by `dataclasses.replace`).

Nothing else in the project reads `os.environ`: `main()` builds a `Settings` and passes it down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    """Guards against abusive input; each refusal names the limit it hit."""

    max_image_bytes: int = 20 * 1024 * 1024  # encoded size of one image
    max_image_pixels: int = 40_000_000  # decoded width * height (decompression bombs)
    max_images_per_request: int = 256
    max_message_bytes: int = 64 * 1024 * 1024  # gRPC receive limit
    max_k: int = 1000
    max_text_chars: int = 2000


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./data")
    cache_dir: Path = Path.home() / ".cache" / "imgsearch"
    port: int = 50051
    host: str = "[::]"
    addr: str = "localhost:50051"  # where the CLI connects
    indexer_addr: str | None = None  # where the CLI sends ingest/delete/stats; unset = addr
    qdrant_url: str | None = None  # unset = embedded Qdrant Edge under data_dir
    qdrant_api_key: str | None = None
    qdrant_shards: int | None = None  # shard_number of collections the indexer creates on a server
    qdrant_replicas: int | None = None  # replication_factor of those collections
    hnsw_ef: int | None = None  # search-time HNSW beam width (recall vs latency); unset = Qdrant's
    search_threads: int | None = None  # embedded store's search threads per collection; unset = auto
    quantization: str = "int8"  # "int8" (scalar quantization with rescoring) or "none"
    embedder: str | None = None  # address(es) of remote embedders; unset = in-process when served together
    glove: str | None = None  # a GloVe text file; unset = the packaged GloVe 6B 50d
    head: str = "conse"  # "conse" or the path of a trained DeViSE head
    token: str | None = None  # shared secret; when set, calls without it are refused
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None  # CA the CLI/clients trust for TLS
    vocab_size: int = 50_000  # words loaded into the `words` collection
    metrics_port: int = 0  # Prometheus metrics port; 0 = off
    log_format: str = "text"  # "text" or "json"
    grace_seconds: float = 10.0  # SIGTERM drain time
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Reads IMGSEARCH_* (and QDRANT_URL) from `env` (default: the process environment)."""
        e = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = e.get(name)
            return value if value not in (None, "") else None

        port = int(get("IMGSEARCH_PORT") or 50051)
        return cls(
            data_dir=Path(get("IMGSEARCH_DATA") or "./data"),
            cache_dir=Path(get("IMGSEARCH_CACHE") or _cache_from(e)),
            port=port,
            host=get("IMGSEARCH_HOST") or "[::]",
            addr=get("IMGSEARCH_ADDR") or "localhost:50051",
            indexer_addr=get("IMGSEARCH_INDEXER_ADDR"),
            qdrant_url=get("QDRANT_URL"),
            qdrant_api_key=get("QDRANT_API_KEY"),
            qdrant_shards=_int(get("IMGSEARCH_QDRANT_SHARDS")),
            qdrant_replicas=_int(get("IMGSEARCH_QDRANT_REPLICAS")),
            hnsw_ef=_int(get("IMGSEARCH_HNSW_EF")),
            search_threads=_int(get("IMGSEARCH_SEARCH_THREADS")),
            quantization=(get("IMGSEARCH_QUANTIZATION") or "int8").lower(),
            embedder=get("IMGSEARCH_EMBEDDER"),
            glove=get("IMGSEARCH_GLOVE"),
            head=get("IMGSEARCH_HEAD") or "conse",
            token=get("IMGSEARCH_TOKEN"),
            tls_cert=get("IMGSEARCH_TLS_CERT"),
            tls_key=get("IMGSEARCH_TLS_KEY"),
            tls_ca=get("IMGSEARCH_TLS_CA"),
            vocab_size=int(get("IMGSEARCH_VOCAB_SIZE") or 50_000),
            metrics_port=int(get("IMGSEARCH_METRICS_PORT") or 0),
            log_format=get("IMGSEARCH_LOG_FORMAT") or "text",
            grace_seconds=float(get("IMGSEARCH_GRACE_SECONDS") or 10.0),
        )

    @property
    def model_cache(self) -> Path:
        """Where converted models and parsed word vectors are cached."""
        return self.cache_dir

    def embedder_addresses(self) -> list[str]:
        """IMGSEARCH_EMBEDDER split on commas (a list of host:port, or one dns:/// name)."""
        if not self.embedder:
            return []
        return [a.strip() for a in self.embedder.split(",") if a.strip()]


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None


def _cache_from(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return str(Path(base) / "imgsearch")
