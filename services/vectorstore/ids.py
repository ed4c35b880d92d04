"""Image ids: the public id every caller sees, and the point id the engine keeps it under.

The public id is the content id (UUIDv5 of the SHA-256 of the bytes) or the one a client gave, and
it is the same in every namespace. Namespaces never share a point: in the default namespace the
point id is the public id (as before namespaces, so stored data keeps working), in a named one it
is derived from (namespace, public id). So the same id lives in two namespaces independently, and
nothing a namespace stores can land on, or reveal, another's point.

Derived point ids are version-8 UUIDs (RFC 9562's version for custom layouts) made from the
SHA-256 of the namespace and id. No public id may be a version-8 UUID, so a default-namespace
writer cannot choose one either. A named namespace's payload keeps the public id (`PUBLIC_ID`), so
every reader (a search hit, a listing, an export) shows it.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from imgsearch.errors import InvalidArgument
from imgsearch.vectorstore.checks import check_point_id
from imgsearch.vectorstore.payloads import DEFAULT_NAMESPACE, PUBLIC_ID, namespace_of

# Fixed namespace of content ids: the same bytes get the same id on every server, forever.
CONTENT_IDS = uuid.UUID("6f1c1f2e-8d5a-5b7e-9a43-2c0d6e1b7a90")
_DERIVED_VERSION = "8"  # the version digit of a canonical UUID string (index 14)


def content_id(data: bytes) -> tuple[str, str]:
    """(id, sha256 hex) of image bytes: the same in every namespace."""
    digest = hashlib.sha256(data).hexdigest()
    return content_id_of(digest), digest


def content_id_of(sha256: str) -> str:
    """The content id of the bytes with this SHA-256 (hex)."""
    return str(uuid.uuid5(CONTENT_IDS, sha256))


def legacy_content_id(sha256: str, namespace: str) -> str:
    """The content id versions before per-namespace points gave an image of a named namespace."""
    return str(uuid.uuid5(CONTENT_IDS, f"{namespace}/{sha256}"))


def check_public_id(id: str) -> str:
    """A public image id: a UUID in canonical form, not of version 8 (kept for point ids)."""
    pid = check_point_id(id)
    if pid[14] == _DERIVED_VERSION:
        raise InvalidArgument(f"image id {pid}: version-8 UUIDs are reserved for the store; use another id")
    return pid


def point_id(id: str, namespace: str) -> str:
    """The engine's id of public id `id` (canonical) in `namespace`."""
    if namespace == DEFAULT_NAMESPACE:
        return id
    digest = bytearray(hashlib.sha256(f"{namespace}\x00{id}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(digest)))


def public_id(record: Any) -> str:
    """The public id of a stored record (a scored point, a retrieved or scrolled record)."""
    payload = record.payload or {}
    return str(payload.get(PUBLIC_ID) or record.id)


def is_derived(point: str) -> bool:
    """Whether a (canonical) point id is one `point_id` derived for a named namespace."""
    return point[14] == _DERIVED_VERSION


def with_public_id(stored: dict[str, Any], id: str) -> dict[str, Any]:
    """A stored payload with the public id kept where the point id is not it (named namespaces)."""
    if namespace_of(stored) != DEFAULT_NAMESPACE:
        return {**stored, PUBLIC_ID: id}
    return stored
