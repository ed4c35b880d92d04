"""Settings read once from the environment (CLI flags override them by `dataclasses.replace`).

Nothing else in the project reads `os.environ`: `main()` builds a `Settings` and passes it down.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
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
        """Reads IMGSEARCH_* (and QDRANT_URL) from `env` (default: the process environment); a
        variable that is unset or empty keeps the field's default above (written once, there)."""
        e = os.environ if env is None else env
        values: dict[str, object] = {"cache_dir": Path(e.get("IMGSEARCH_CACHE") or _cache_from(e))}
        for name, (variable, parse) in _ENVIRONMENT.items():
            raw = e.get(variable)
            if raw not in (None, ""):
                values[name] = parse(raw)
        return cls(**values)

    def embedder_addresses(self) -> list[str]:
        """IMGSEARCH_EMBEDDER split on commas (a list of host:port, or one dns:/// name)."""
        if not self.embedder:
            return []
        return [a.strip() for a in self.embedder.split(",") if a.strip()]


# Field -> (environment variable, parser). IMGSEARCH_CACHE is read apart: its default follows HOME.
_ENVIRONMENT: dict[str, tuple[str, Callable[[str], object]]] = {
    "data_dir": ("IMGSEARCH_DATA", Path),
    "port": ("IMGSEARCH_PORT", int),
    "host": ("IMGSEARCH_HOST", str),
    "addr": ("IMGSEARCH_ADDR", str),
    "indexer_addr": ("IMGSEARCH_INDEXER_ADDR", str),
    "qdrant_url": ("QDRANT_URL", str),
    "qdrant_api_key": ("QDRANT_API_KEY", str),
    "qdrant_shards": ("IMGSEARCH_QDRANT_SHARDS", int),
    "qdrant_replicas": ("IMGSEARCH_QDRANT_REPLICAS", int),
    "hnsw_ef": ("IMGSEARCH_HNSW_EF", int),
    "search_threads": ("IMGSEARCH_SEARCH_THREADS", int),
    "quantization": ("IMGSEARCH_QUANTIZATION", str.lower),
    "embedder": ("IMGSEARCH_EMBEDDER", str),
    "glove": ("IMGSEARCH_GLOVE", str),
    "head": ("IMGSEARCH_HEAD", str),
    "token": ("IMGSEARCH_TOKEN", str),
    "tls_cert": ("IMGSEARCH_TLS_CERT", str),
    "tls_key": ("IMGSEARCH_TLS_KEY", str),
    "tls_ca": ("IMGSEARCH_TLS_CA", str),
    "vocab_size": ("IMGSEARCH_VOCAB_SIZE", int),
    "metrics_port": ("IMGSEARCH_METRICS_PORT", int),
    "log_format": ("IMGSEARCH_LOG_FORMAT", str),
    "grace_seconds": ("IMGSEARCH_GRACE_SECONDS", float),
}


def _cache_from(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return str(Path(base) / "imgsearch")
