"""Replies that page by size: whatever a writer stored (an import may bring thumbnails of 64 KiB
and 512 KiB of other payload per image), no search with thumbnails, listing or export page grows
past the message limit.

The budget is half of `max_message_bytes`, so a reply keeps room under the receiver's limit (the
client's is the same size) and a page is never cut below one record. A listing ends its page early
at the first record past the budget, with the next page's token pointing at it; a search fills
thumbnails best first while they fit, and the hits past the budget come without one (the
thumbnail route serves each by id); a GetImages call over the budget is refused
(RESOURCE_EXHAUSTED) with the advice to ask for fewer ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from imgsearch.config.settings import Limits
from imgsearch.errors import ResourceExhausted
from imgsearch.protogen.imagesearch.v1 import common_pb2, query_pb2

# What a repeated field's entry costs besides its message: a tag and a length of up to 5 bytes.
ENTRY_OVERHEAD = 6


def budget(limits: Limits) -> int:
    """The most bytes one reply holds."""
    return limits.max_message_bytes // 2


def records_that_fit(records: Sequence[common_pb2.StoredImage], most: int) -> int:
    """How many of `records`, from the first, fit in `most` bytes (at least one)."""
    total = 0
    for n, record in enumerate(records):
        total += record.ByteSize() + ENTRY_OVERHEAD
        if total > most and n > 0:
            return n
    return len(records)


def check_records_fit(records: Sequence[common_pb2.StoredImage], most: int) -> None:
    """ResourceExhausted when the records are over `most` bytes together."""
    size = sum(r.ByteSize() + ENTRY_OVERHEAD for r in records)
    if size > most:
        raise ResourceExhausted(
            f"the {len(records)} images asked for are {size} bytes, over the reply budget of {most}; "
            "ask for fewer ids at a time (or without vectors)"
        )


def add_thumbnails(response: query_pb2.SearchImagesResponse, found: dict[str, bytes], most: int) -> int:
    """Sets each hit's thumbnail from `found`, best hit first, while the reply stays within `most`
    bytes; returns how many were left out for size."""
    size = response.ByteSize()
    left_out = 0
    for hit in response.results:
        thumbnail = found.get(hit.id, b"")
        if not thumbnail:
            continue
        if size + len(thumbnail) + ENTRY_OVERHEAD > most:
            left_out += 1
            continue
        hit.thumbnail = thumbnail
        size += len(thumbnail) + ENTRY_OVERHEAD
    return left_out
