"""Payload layout shared by both stores, so data written by one reads the same through the other.

User metadata keys are free text ("camera.model", "shot at"), which Qdrant's JSON paths cannot
always address. Each image therefore also carries `_meta_kv`, a list of JSON-encoded [key, value]
pairs under one keyword index: a metadata filter is a plain match on that list, whatever the key.
"""

from __future__ import annotations

import json
from typing import Any

META_KV = "_meta_kv"
LABEL = "label"
WORD = "word"
RANK = "rank"


def meta_token(key: str, value: str) -> str:
    """The `_meta_kv` entry for one metadata pair (JSON keeps any key or value unambiguous)."""
    return json.dumps([key, value], ensure_ascii=False, separators=(",", ":"))


def to_stored(payload: dict[str, Any]) -> dict[str, Any]:
    """The image payload as stored: metadata as str -> str plus its `_meta_kv` index entries."""
    stored = {k: v for k, v in payload.items() if k != META_KV}
    metadata = {str(k): str(v) for k, v in (payload.get("metadata") or {}).items()}
    stored["metadata"] = metadata
    stored[META_KV] = [meta_token(k, v) for k, v in sorted(metadata.items())]
    return stored


def from_stored(payload: dict[str, Any] | None) -> dict[str, Any]:
    """The payload as callers see it, without the index-only field."""
    if not payload:
        return {"metadata": {}}
    out = {k: v for k, v in payload.items() if k != META_KV}
    out.setdefault("metadata", {})
    return out
