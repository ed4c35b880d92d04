"""Conversions for the messages every service shares (common.proto)."""

from __future__ import annotations

import json
from typing import Any

from imgsearch.errors import InvalidArgument, ServiceError
from imgsearch.protogen.imagesearch.v1 import common_pb2
from imgsearch.rpc.packing import add_floats
from imgsearch.vectorstore.engine import SparseVector
from imgsearch.vectorstore.types import Hit, ImagePoint, PayloadFilter


def filter_from_proto(
    msg: common_pb2.Filter | None, exclude_ids: tuple[str, ...] = ()
) -> PayloadFilter | None:
    if msg is None and not exclude_ids:
        return None
    if msg is None:
        return PayloadFilter(exclude_ids=exclude_ids)
    flt = PayloadFilter(
        label=msg.label or None,
        metadata=dict(msg.metadata),
        exclude_ids=exclude_ids,
        labels=tuple(msg.labels),
        exclude_labels=tuple(msg.exclude_labels),
        exclude_metadata=tuple((p.key, p.value) for p in msg.exclude_metadata),
        has_metadata=tuple(msg.has_metadata),
        missing_metadata=tuple(msg.missing_metadata),
    )
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


# Payload keys a StoredImage carries as typed fields; the rest travels in `extra_json`.
_RECORD_KEYS = ("uri", "label", "metadata", "ingested_at", "sha256", "width", "height", "namespace")


def record_to_proto(point: ImagePoint, with_vectors: bool) -> common_pb2.StoredImage:
    """A stored image as a StoredImage; with vectors also the rest of its payload (`extra_json`)."""
    p = point.payload
    msg = common_pb2.StoredImage(
        id=point.id,
        namespace=str(p.get("namespace") or ""),
        uri=str(p.get("uri") or ""),
        label=str(p.get("label") or ""),
        ingested_at=float(p.get("ingested_at") or 0.0),
        sha256=str(p.get("sha256") or ""),
        width=int(p.get("width") or 0),
        height=int(p.get("height") or 0),
    )
    msg.metadata.update({str(k): str(v) for k, v in (p.get("metadata") or {}).items()})
    if with_vectors:
        add_floats(msg, "visual", point.visual)
        add_floats(msg, "semantic", point.semantic)
        extra = {k: v for k, v in p.items() if k not in _RECORD_KEYS}
        if extra:
            msg.extra_json = json.dumps(extra, separators=(",", ":"))
        if point.classes:
            msg.class_ids.extend(point.classes.indices)
            msg.class_scores.extend(point.classes.values)
    return msg


def record_classes(msg: common_pb2.StoredImage) -> SparseVector | None:
    """The sparse `classes` vector a StoredImage carries, or None."""
    if len(msg.class_ids) != len(msg.class_scores):
        ids, scores = len(msg.class_ids), len(msg.class_scores)
        raise InvalidArgument(f"record {msg.id[:40]}: {ids} class ids but {scores} scores")
    return SparseVector(tuple(msg.class_ids), tuple(msg.class_scores)) if msg.class_ids else None


def record_payload(msg: common_pb2.StoredImage, max_extra_bytes: int) -> dict[str, Any]:
    """The payload a StoredImage restores (its typed fields over its `extra_json`)."""
    extra: dict[str, Any] = {}
    if msg.extra_json:
        if len(msg.extra_json) > max_extra_bytes:
            raise InvalidArgument(f"record {msg.id[:40]}: extra_json is over {max_extra_bytes} bytes")
        try:  # NaN and infinity are not JSON; a deep nesting fails the parser's recursion
            extra = json.loads(msg.extra_json, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise InvalidArgument(
                f"record {msg.id[:40]}: extra_json is not JSON without NaN or infinity, or nests too deep"
            ) from None
        if not isinstance(extra, dict):
            raise InvalidArgument(f"record {msg.id[:40]}: extra_json must be a JSON object")
    payload = {k: v for k, v in extra.items() if k not in _RECORD_KEYS}
    payload.update(uri=msg.uri, label=msg.label, metadata=dict(msg.metadata), ingested_at=msg.ingested_at)
    if msg.sha256:
        payload["sha256"] = msg.sha256
    if msg.width or msg.height:
        payload.update(width=msg.width, height=msg.height)
    return payload


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
