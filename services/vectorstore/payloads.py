"""Payload layout shared by both stores, so data written by one reads the same through the other.

User metadata keys are free text ("camera.model", "shot at"), which Qdrant's JSON paths cannot
always address. Each image therefore also carries `_meta_kv`, a list of JSON-encoded [key, value]
pairs under one keyword index: a metadata filter is a plain match on that list, whatever the key.
"""

from __future__ import annotations

import json
from typing import Any

from imgsearch.errors import InvalidArgument

META_KV = "_meta_kv"
# A named namespace's image's public id (its point id is derived: imgsearch.vectorstore.ids).
PUBLIC_ID = "_id"
# Keys only the store writes: never taken from a caller's payload, never shown to one.
_STORE_KEYS = (META_KV, PUBLIC_ID)
# The indexer's JPEG thumbnail (base64 text; WebP in stores made before 2026-12-04); left out of
# search results, read by id (thumbnails()).
THUMBNAIL = "thumbnail"
LABEL = "label"
WORD = "word"
RANK = "rank"
# The image's namespace (tenant), "" for the default namespace: a tenant keyword index serves the
# match every call adds, for the default namespace too (an "is empty" condition instead cost 8x as
# much per search at 100,000 images). Images stored before namespaces existed get "" when the store
# opens (VectorStore.ensure_collections).
NAMESPACE = "namespace"
DEFAULT_NAMESPACE = ""
MAX_NAMESPACE_CHARS = 64
_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def check_namespace(namespace: str) -> str:
    """A namespace name: up to 64 letters, digits, '.', '_' or '-'; "" is the default namespace."""
    if len(namespace) > MAX_NAMESPACE_CHARS or not set(namespace) <= _NAMESPACE_CHARS:
        shown = repr(namespace) if len(namespace) <= 80 else f"{len(namespace)} characters"
        raise InvalidArgument(
            f"namespace must be at most {MAX_NAMESPACE_CHARS} letters, digits, '.', '_' or '-', got {shown}"
        )
    return namespace


def namespace_of(payload: dict[str, Any] | None) -> str:
    """The namespace a stored payload belongs to ("" = the default namespace)."""
    return str((payload or {}).get(NAMESPACE) or DEFAULT_NAMESPACE)


def meta_token(key: str, value: str) -> str:
    """The `_meta_kv` entry for one metadata pair (JSON keeps any key or value unambiguous)."""
    return json.dumps([key, value], ensure_ascii=False, separators=(",", ":"))


def meta_path(key: str) -> str:
    """The payload path of one metadata key (quoted, so dots and spaces stay part of the key)."""
    if not key or '"' in key or "\\" in key:
        raise InvalidArgument(f"metadata key {key!r}: give a non-empty key without quotes or backslashes")
    return f'metadata."{key}"'


def to_stored(payload: dict[str, Any]) -> dict[str, Any]:
    """The image payload as stored: metadata as str -> str plus its `_meta_kv` index entries."""
    stored = {k: v for k, v in payload.items() if k not in _STORE_KEYS}
    metadata = {str(k): str(v) for k, v in (payload.get("metadata") or {}).items()}
    stored["metadata"] = metadata
    stored[META_KV] = [meta_token(k, v) for k, v in sorted(metadata.items())]
    stored[NAMESPACE] = str(payload.get(NAMESPACE) or DEFAULT_NAMESPACE)
    return stored


def from_stored(payload: dict[str, Any] | None) -> dict[str, Any]:
    """The payload as callers see it, without the store's own fields (nor the default namespace's
    empty name)."""
    if not payload:
        return {"metadata": {}}
    out = {k: v for k, v in payload.items() if k not in _STORE_KEYS}
    out.setdefault("metadata", {})
    if not out.get(NAMESPACE):  # the default namespace reads as before namespaces: no key
        out.pop(NAMESPACE, None)
    return out
