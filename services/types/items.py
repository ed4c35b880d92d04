"""What goes into an ingest and what comes back per image: one definition for the Indexer service,
the Python client and the CLI (plain data, importable without the server's packages), and the one
table between a result's status and the proto's `IngestResult.Status`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from imgsearch.protogen.imagesearch.v1 import indexer_pb2

Status = Literal["new", "duplicate", "updated", "failed"]
# A result's status as the proto's enum value, and back (an unknown value reads as "failed").
STATUS_CODES: dict[Status, int] = {
    "new": indexer_pb2.IngestResult.NEW,
    "duplicate": indexer_pb2.IngestResult.DUPLICATE,
    "failed": indexer_pb2.IngestResult.FAILED,
    "updated": indexer_pb2.IngestResult.UPDATED,
}
STATUS_NAMES: dict[int, Status] = {code: name for name, code in STATUS_CODES.items()}


@dataclass(frozen=True)
class IngestItem:
    """One image to ingest; `id` empty means the server derives it from the content."""

    image: bytes
    id: str = ""
    uri: str = ""
    label: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    namespace: str = ""  # "" = the default namespace
    caption: str = ""  # free text for the lexical channel; stored as metadata key "caption"

    def __post_init__(self) -> None:
        if self.caption:  # the caption is the metadata value the lexical channel reads first
            object.__setattr__(self, "metadata", {**self.metadata, "caption": self.caption})


@dataclass(frozen=True)
class IngestItemResult:
    """What happened to one ingested image; `index` counts over the whole ingest call.

    `error_code` is the number of a gRPC status code when the image failed (3 = INVALID_ARGUMENT)."""

    index: int
    id: str
    uri: str
    status: Status
    error_code: int = 0
    error: str = ""
