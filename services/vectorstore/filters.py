"""Filters as the engine-neutral `Match`: a PayloadFilter, and the namespace every image read and
write is narrowed to."""

from __future__ import annotations

from dataclasses import replace
from typing import overload

from imgsearch.vectorstore import payloads
from imgsearch.vectorstore.checks import check_point_id
from imgsearch.vectorstore.engine import Match
from imgsearch.vectorstore.ids import point_id
from imgsearch.vectorstore.payloads import check_namespace
from imgsearch.vectorstore.types import PayloadFilter


def match_of(flt: PayloadFilter | None) -> Match | None:
    """A PayloadFilter as the engine-neutral Match (None when it filters nothing)."""
    if flt is None or flt.is_empty():
        return None
    must = [(payloads.LABEL, flt.label)] if flt.label else []
    must += [(payloads.META_KV, payloads.meta_token(k, v)) for k, v in sorted(flt.metadata.items())]
    must_not = [(payloads.LABEL, label) for label in flt.exclude_labels]
    must_not += [(payloads.META_KV, payloads.meta_token(k, v)) for k, v in flt.exclude_metadata]
    return Match(
        must=tuple(must),
        exclude_ids=tuple(check_point_id(i) for i in flt.exclude_ids),
        any_of=((payloads.LABEL, tuple(flt.labels)),) if flt.labels else (),
        must_not=tuple(must_not),
        present=tuple(payloads.meta_path(k) for k in flt.has_metadata),
        absent=tuple(payloads.meta_path(k) for k in flt.missing_metadata),
    )


@overload
def in_namespace(match: Match, namespace: str | None) -> Match: ...
@overload
def in_namespace(match: Match | None, namespace: str) -> Match: ...
@overload
def in_namespace(match: Match | None, namespace: None) -> Match | None: ...


def in_namespace(match: Match | None, namespace: str | None) -> Match | None:
    """`match` narrowed to the images of `namespace` (None: every namespace; "" the default one),
    its excluded ids (public ids) as that namespace's point ids."""
    if namespace is None:
        return match
    check_namespace(namespace)
    match = match or Match()
    excluded = tuple(point_id(i, namespace) for i in match.exclude_ids)
    return replace(match, must=(*match.must, (payloads.NAMESPACE, namespace)), exclude_ids=excluded)
