"""The limits on what one stored image may carry (uri, label, metadata), checked per item.

A refusal names the limit and the size, never echoes the value: an answer must not grow with
what the client sent. Within these limits a search reply of `max_k` hits stays under the
message limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from imgsearch.config.settings import Limits
from imgsearch.errors import InvalidArgument

ECHO_CHARS = 80  # the most of a client's string an answer repeats
MAX_ID_CHARS = 64  # a UUID has 36; longer is no id, whatever it holds
# How deep an imported record's other payload values may nest (what the indexer stores is flat).
MAX_JSON_DEPTH = 8
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_payload(uri: str, label: str, metadata: Mapping[str, str], limits: Limits) -> None:
    """InvalidArgument when the uri, label or metadata is over a limit in `limits`."""
    total = _check("uri", uri, limits.max_uri_bytes, "max_uri_bytes")
    total += _check("label", label, limits.max_label_bytes, "max_label_bytes")
    if len(metadata) > limits.max_metadata_keys:
        raise InvalidArgument(
            f"metadata has {len(metadata)} keys, over the limit max_metadata_keys={limits.max_metadata_keys}"
        )
    for key, value in metadata.items():
        if not key:  # a filter could never name it (an HTTP form field "metadata." gave one)
            raise InvalidArgument("a metadata key must not be empty")
        total += _check("a metadata key", key, limits.max_metadata_key_bytes, "max_metadata_key_bytes")
        total += _check(
            f"metadata value of {echo(key)!r}",
            value,
            limits.max_metadata_value_bytes,
            "max_metadata_value_bytes",
        )
    if total > limits.max_payload_bytes:
        raise InvalidArgument(
            f"uri, label and metadata are {total} bytes together, over the limit "
            f"max_payload_bytes={limits.max_payload_bytes}"
        )


def check_id_length(id: str) -> None:
    """Refuses an id too long to be a UUID before any message repeats it."""
    if len(id) > MAX_ID_CHARS:
        raise InvalidArgument(f"image id must be a UUID, got {len(id)} characters")


def echo(text: str) -> str:
    """What an answer may repeat of a client's string: all of a short one, the start of a long one."""
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + f"... ({len(text)} characters)"


def _check(what: str, text: str, limit: int, name: str) -> int:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InvalidArgument(f"{what} is {size} bytes, over the limit {name}={limit}")
    return size


def check_stored_fields(payload: Mapping[str, Any], limits: Limits) -> None:
    """InvalidArgument unless an imported payload holds what an ingest would have stored: the
    limits of `check_payload`, finite numbers (no NaN), a SHA-256 in hex, other values nested at
    most MAX_JSON_DEPTH deep (the thumbnail is checked apart, imgsearch.indexer.thumbnails)."""
    check_payload(
        _text(payload.get("uri", ""), "uri"),
        _text(payload.get("label", ""), "label"),
        payload.get("metadata") or {},
        limits,
    )
    _number(payload.get("ingested_at", 0.0), "ingested_at")
    for key in ("width", "height"):
        value = payload.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"{key} must be a whole number of pixels, not negative")
    if "feature_norm" in payload:
        _number(payload["feature_norm"], "feature_norm")
    sha = payload.get("sha256", "")
    if sha and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        raise InvalidArgument("sha256 must be 64 lowercase hexadecimal digits")
    for key, value in payload.items():
        check_json_depth(value, f"payload value {echo(str(key))!r}")


def check_json_depth(value: Any, what: str, most: int = MAX_JSON_DEPTH) -> None:
    """InvalidArgument when a JSON value nests deeper than `most` or holds a number that is not
    finite (read without recursion, so no depth can overflow the stack)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidArgument(f"{what} holds a number that is not finite (NaN or infinity)")
        if isinstance(item, dict | list):
            if depth >= most:
                raise InvalidArgument(f"{what} nests deeper than {most} levels")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be text")
    return value


def _number(value: Any, what: str) -> float:
    """A finite, non-negative number (what the indexer stores for times and norms)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"{what} must be a finite number, not negative")
    return float(value)
