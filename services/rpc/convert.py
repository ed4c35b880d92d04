"""Conversions for the messages every service shares (common.proto)."""

from __future__ import annotations

from imgsearch.errors import ServiceError
from imgsearch.protogen.imagesearch.v1 import common_pb2
from imgsearch.vectorstore.base import Hit, PayloadFilter


def filter_from_proto(
    msg: common_pb2.Filter | None, exclude_ids: tuple[str, ...] = ()
) -> PayloadFilter | None:
    if msg is None and not exclude_ids:
        return None
    label = msg.label if msg is not None else ""
    metadata = dict(msg.metadata) if msg is not None else {}
    flt = PayloadFilter(label=label or None, metadata=metadata, exclude_ids=exclude_ids)
    return None if flt.is_empty() else flt


def item_error(exc: ServiceError) -> common_pb2.ItemError:
    return common_pb2.ItemError(code=exc.code_number, message=exc.message)


def hit_to_proto(hit: Hit) -> common_pb2.ImageHit:
    payload = hit.payload
    msg = common_pb2.ImageHit(
        id=hit.id, score=hit.score, uri=str(payload.get("uri") or ""), label=str(payload.get("label") or "")
    )
    metadata = payload.get("metadata")
    if metadata:  # most images have none; skipping the empty map is measurable per search
        msg.metadata.update({str(k): str(v) for k, v in metadata.items()})
    return msg
