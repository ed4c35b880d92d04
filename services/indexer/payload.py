"""The limits on what one stored image may carry (uri, label, metadata), checked per item.

A refusal names the limit and the size, never echoes the value: an answer must not grow with
what the client sent. Within these limits a search reply of `max_k` hits stays under the
message limit.
"""

from __future__ import annotations

from collections.abc import Mapping

from imgsearch.config.settings import Limits
from imgsearch.errors import InvalidArgument

ECHO_CHARS = 80  # the most of a client's string an answer repeats
MAX_ID_CHARS = 64  # a UUID has 36; longer is no id, whatever it holds


def check_payload(uri: str, label: str, metadata: Mapping[str, str], limits: Limits) -> None:
    """InvalidArgument when the uri, label or metadata is over a limit in `limits`."""
    total = _check("uri", uri, limits.max_uri_bytes, "max_uri_bytes")
    total += _check("label", label, limits.max_label_bytes, "max_label_bytes")
    if len(metadata) > limits.max_metadata_keys:
        raise InvalidArgument(
            f"metadata has {len(metadata)} keys, over the limit max_metadata_keys={limits.max_metadata_keys}"
        )
    for key, value in metadata.items():
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
