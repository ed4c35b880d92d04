"""The client's conversions (imgsearch.client.convert) without a server: every field of a record
and of an ingest result survives the trip through the protos, and the status table is one."""

from __future__ import annotations

import dataclasses

import numpy as np

from imgsearch.client.convert import (
    _STORED_SCALARS,
    embedding_from_proto,
    ingest_result_from_proto,
    stored_from_proto,
    stored_to_proto,
)
from imgsearch.client.types import StoredImage
from imgsearch.protogen.imagesearch.v1 import common_pb2, embedder_pb2, indexer_pb2
from imgsearch.types.items import STATUS_CODES, STATUS_NAMES, IngestItem


def test_a_record_keeps_every_field_both_ways():
    assert {f.name for f in dataclasses.fields(StoredImage)} == {
        *_STORED_SCALARS,
        *("metadata", "visual", "semantic", "class_ids", "class_scores"),
    }
    record = StoredImage(
        "id-1",
        "ns",
        "u",
        "l",
        {"a": "b"},
        1.5,
        "f" * 64,
        3,
        4,
        np.ones(2),
        np.ones(3),
        '{"x":1}',
        (7,),
        (0.5,),
    )
    back = stored_from_proto(stored_to_proto(record), with_vectors=True)
    for name in (*_STORED_SCALARS, "metadata", "class_ids", "class_scores"):
        assert getattr(back, name) == getattr(record, name), name
    assert np.array_equal(back.visual, record.visual) and np.array_equal(back.semantic, record.semantic)
    assert stored_from_proto(stored_to_proto(record), with_vectors=False).visual is None


def test_the_ingest_status_table_is_one_table_both_ways():
    assert {STATUS_NAMES[code]: code for code in STATUS_NAMES} == STATUS_CODES
    assert set(STATUS_CODES) == {"new", "duplicate", "updated", "failed"}
    failed = indexer_pb2.IngestResult(index=1, id="x", status=indexer_pb2.IngestResult.FAILED)
    failed.error.code, failed.error.message = 3, "bad"
    result = ingest_result_from_proto(
        failed, 10, [IngestItem(b"a", uri="first"), IngestItem(b"b", uri="second")]
    )
    assert (result.index, result.status, result.error_code, result.error, result.uri) == (
        11,
        "failed",
        3,
        "bad",
        "second",
    )
    unknown = ingest_result_from_proto(indexer_pb2.IngestResult(status=99), 0, [])
    assert unknown.status == "failed"


def test_an_embedding_or_its_error():
    bad = embedder_pb2.ImageEmbedding(error=common_pb2.ItemError(code=3, message="undecodable"))
    out = embedding_from_proto(bad)
    assert (out.error_code, out.error, out.visual.size) == (3, "undecodable", 0)
    good = embedding_from_proto(
        embedder_pb2.ImageEmbedding(visual=[1, 0], semantic=[0, 1], width=5, height=6)
    )
    assert good.visual.tolist() == [1.0, 0.0] and (good.width, good.height, good.error_code) == (5, 6, 0)
