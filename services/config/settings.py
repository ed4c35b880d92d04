"""Settings read once from the environment (CLI flags override them by `dataclasses.replace`).

Nothing else in the project reads `os.environ`: `main()` builds a `Settings` and passes it down.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Guards against abusive input; each refusal names the limit it hit."""

    max_image_bytes: int = 20 * 1024 * 1024  # encoded size of one image
    max_image_pixels: int = 40_000_000  # width * height of a JPEG (decoded at 1/8 scale through the DCT)
    # width * height of the other formats, which decode at full size: about 0.1 s and 64 MB per
    # image at the cap (a 224-pixel model needs far fewer; docs/grpc-api.md "What an image may cost")
    max_full_decode_pixels: int = 16_777_216
    max_images_per_request: int = 256
    max_message_bytes: int = 64 * 1024 * 1024  # gRPC receive limit
    max_k: int = 1000
    max_text_chars: int = 2000
    # Stored payload of one image (Ingest and UpsertVectors refuse an item over any of them, so a
    # search reply of max_k hits stays under max_message_bytes).
    max_uri_bytes: int = 2048
    max_label_bytes: int = 256
    max_metadata_keys: int = 64
    max_metadata_key_bytes: int = 256
    max_metadata_value_bytes: int = 8192
    max_payload_bytes: int = 32 * 1024  # uri + label + every metadata key and value
    max_images_per_stream: int = 10_000  # one Ingest call (the client sends 256 per call)
    # Concurrency: calls past these caps are refused at once with RESOURCE_EXHAUSTED; health and
    # reflection are never counted, and the server keeps workers free for them.
    max_concurrent_calls: int = 48
    max_concurrent_streams: int = 16  # client streams (Ingest) open at once
    stream_idle_seconds: float = 30.0  # a client stream that sends nothing for this long is ended
    min_free_disk_bytes: int = 64 * 1024 * 1024  # the embedded store refuses writes below this


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./data")
    cache_dir: Path = Path.home() / ".cache" / "imgsearch"
    port: int = 50051
    host: str = "127.0.0.1"  # interface `serve` binds; "[::]" or "0.0.0.0" for every interface
    addr: str = "localhost:50051"  # where the CLI connects
    indexer_addr: str | None = None  # where the CLI sends ingest/delete/stats; unset = addr
    qdrant_url: str | None = None  # unset = embedded Qdrant Edge under data_dir
    qdrant_api_key: str | None = None
    qdrant_shards: int | None = None  # shard_number of collections the indexer creates on a server
    qdrant_replicas: int | None = None  # replication_factor of those collections
    hnsw_ef: int | None = None  # search-time HNSW beam width (recall vs latency); unset = Qdrant's
    search_threads: int | None = None  # embedded store's search threads per collection; unset = auto
    quantization: str = "int8"  # "int8" (scalar quantization with rescoring), "binary", "product" or "none"
    # How collections are laid out when created (vectorstore/storage.py, docs/storage.md).
    vectors_on_disk: bool = True  # original float32 vectors memory-mapped from disk, not held in RAM
    payload_on_disk: bool = True  # stored payloads read from disk (their indexes stay in RAM)
    hnsw_m: int = 16  # HNSW graph links per point
    hnsw_ef_construct: int = 100  # HNSW build-time beam
    max_segment_mb: int | None = None  # largest segment the optimizer builds; unset = the engine's
    # Points that may wait unindexed while writes keep coming (embedded store); 0 (the default) =
    # index once writes pause, Qdrant's advice for bulk loads: an optimize during a load holds the
    # load's writes and rebuilds what it indexed before (vectorstore/optimizer.py).
    optimize_max_pending: int = 0
    embedder: str | None = None  # address(es) of remote embedders; unset = in-process when served together
    glove: str | None = None  # a GloVe text file; unset = the packaged GloVe 6B 50d
    head: str = "conse"  # "conse" or the path of a trained DeViSE head
    cnn_runtime: str = "litert"  # "litert" (float32, XNNPACK), "litert-int8" or "keras" (TensorFlow)
    taxonomy: bool = True  # fuse text searches with the ImageNet classes their words name (WordNet)
    people: bool = True  # detect faces in ingested images, for words naming people (OpenCV)
    token: str | None = None  # shared secret; when set, calls without it are refused
    tokens_file: str | None = None  # scoped tokens (JSON: namespaces each may read/write, admin)
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None  # CA the CLI/clients trust for TLS
    vocab_size: int = 50_000  # words loaded into the `words` collection
    metrics_port: int = 0  # Prometheus metrics port; 0 = off
    http_port: int | None = None  # HTTP/JSON API and web page; unset = off, 0 = a free port
    # Host names the HTTP side answers for (comma-separated; "*" = any), beside the loopback names
    # and the --host address: the Host check against DNS rebinding (docs/security.md).
    http_hosts: str | None = None
    log_format: str = "text"  # "text" or "json"
    grace_seconds: float = 10.0  # SIGTERM drain time
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Reads IMGSEARCH_* (and QDRANT_URL) from `env` (default: the process environment); a
        variable that is unset or empty keeps the field's default above (written once, there)."""
        e = os.environ if env is None else env
        values: dict[str, Any] = {"cache_dir": Path(e.get("IMGSEARCH_CACHE") or _cache_from(e))}
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
    "vectors_on_disk": ("IMGSEARCH_VECTORS_ON_DISK", lambda raw: _flag("IMGSEARCH_VECTORS_ON_DISK", raw)),
    "payload_on_disk": ("IMGSEARCH_PAYLOAD_ON_DISK", lambda raw: _flag("IMGSEARCH_PAYLOAD_ON_DISK", raw)),
    "hnsw_m": ("IMGSEARCH_HNSW_M", int),
    "hnsw_ef_construct": ("IMGSEARCH_HNSW_EF_CONSTRUCT", int),
    "max_segment_mb": ("IMGSEARCH_MAX_SEGMENT_MB", int),
    "optimize_max_pending": ("IMGSEARCH_OPTIMIZE_MAX_PENDING", int),
    "embedder": ("IMGSEARCH_EMBEDDER", str),
    "glove": ("IMGSEARCH_GLOVE", str),
    "head": ("IMGSEARCH_HEAD", str),
    "cnn_runtime": ("IMGSEARCH_CNN_RUNTIME", str.lower),
    "taxonomy": ("IMGSEARCH_TAXONOMY", lambda v: v.strip().lower() not in ("0", "false", "no", "off")),
    "people": ("IMGSEARCH_PEOPLE", lambda v: v.strip().lower() not in ("0", "false", "no", "off")),
    "token": ("IMGSEARCH_TOKEN", str),
    "tokens_file": ("IMGSEARCH_TOKENS_FILE", str),
    "tls_cert": ("IMGSEARCH_TLS_CERT", str),
    "tls_key": ("IMGSEARCH_TLS_KEY", str),
    "tls_ca": ("IMGSEARCH_TLS_CA", str),
    "vocab_size": ("IMGSEARCH_VOCAB_SIZE", int),
    "metrics_port": ("IMGSEARCH_METRICS_PORT", int),
    "http_port": ("IMGSEARCH_HTTP_PORT", int),
    "http_hosts": ("IMGSEARCH_HTTP_HOSTS", str),
    "log_format": ("IMGSEARCH_LOG_FORMAT", str),
    "grace_seconds": ("IMGSEARCH_GRACE_SECONDS", float),
}


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(variable: str, raw: str) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off, any case; anything else is refused."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{variable} must be one of {', '.join(_TRUE + _FALSE)}, got {raw!r}")


def _cache_from(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return str(Path(base) / "imgsearch")
