"""Managing what is stored, over real gRPC on both store adapters: get, list, update, namespaces,
scoped tokens, export and import (between the embedded store and a Qdrant-client store, both
ways), an interrupted import resumed, and a backup taken while the server serves.

Two real all-in-one servers (real CNN, GloVe, conse head): one on Qdrant Edge, one on
qdrant-client's local mode standing in for a Qdrant server (the RemoteStore code path). Both
accept a full-access token and a token file of scoped tokens.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest

from imgsearch.app.serve import stop
from imgsearch.client import ClientError, ImageSearchClient, IngestItem, PointVectors, transfer
from imgsearch.protogen.imagesearch.v1 import indexer_pb2, indexer_pb2_grpc
from imgsearch.telemetry.metrics import IMAGES_EMBEDDED
from imgsearch.vectorstore.ids import point_id
from tests.e2e.conftest import Running, start_server

pytestmark = pytest.mark.slow

FULL = "full-access-token"
TOKENS = {
    "tokens": [
        {"token": "team-a-writer", "read": ["team-a"], "write": ["team-a"]},
        {"token": "team-a-reader", "read": ["team-a"]},
        {"token": "ops", "read": ["*"], "write": ["*"], "admin": True},
    ]
}
PETS = ["chelsea", "black_cat", "puppy", "puppies"]
OTHERS = ["coffee", "guitar", "tent", "jellyfish", "sea_turtle", "camera"]
QUERIES = ["dog", "cat", "coffee", "ocean", "music"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory, photos) -> dict[str, Running]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    started: dict[str, Running] = {}
    try:
        for kind, changes in (("edge", {}), ("remote", {"qdrant_url": ":memory:"})):
            data = tmp_path_factory.mktemp(f"data-{kind}")
            started[kind] = start_server(data, token=FULL, tokens_file=str(tokens), **changes)
            with _client(started[kind]) as c:
                _ingest(c, photos, PETS, label="pets", metadata={"kind": "animal"})
                _ingest(c, photos, OTHERS)
        yield started
    finally:
        for running in started.values():
            stop(running.served, running.parts, 1.0)


@pytest.fixture(params=["edge", "remote"])
def srv(request, servers) -> Running:
    return servers[request.param]


def _client(running: Running, token: str = FULL, namespace: str = "") -> ImageSearchClient:
    return ImageSearchClient(running.addr, token=token, namespace=namespace, timeout=60)


def _ingest(client, photos, names, label="", metadata=None, namespace=None, suffix=b""):
    items = [
        IngestItem(
            photos[n].read_bytes() + suffix, uri=str(photos[n]), label=label, metadata=dict(metadata or {})
        )
        for n in names
    ]
    summary = client.ingest(items, namespace=namespace)
    assert not summary.failed, summary.failed
    return summary


def _ids_by_uri(client, namespace=None) -> dict[str, str]:
    found = {}
    for page in client.iter_images(page_size=100, namespace=namespace):
        found.update({r.uri: r.id for r in page.images})
    return found


def _searches(client, namespace=None):
    return {
        q: [(h.id, h.score, h.label, h.metadata) for h in client.search(q, k=10, namespace=namespace).results]
        for q in QUERIES
    }


def _same_searches(a, b):
    assert a.keys() == b.keys()
    for q in a:
        assert [x[0] for x in a[q]] == [x[0] for x in b[q]], q
        assert [x[2:] for x in a[q]] == [x[2:] for x in b[q]], q
        assert np.allclose([x[1] for x in a[q]], [x[1] for x in b[q]], atol=1e-4), q


def _denied(fn):
    with pytest.raises(ClientError) as info:
        fn()
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED, info.value
    return info.value


# -- get and list ------------------------------------------------------------------------------------


def test_get_returns_the_records_and_names_the_unknown_ids(srv, photos):
    with _client(srv) as c:
        ids = _ids_by_uri(c)
        pid = ids[str(photos["puppy"])]
        unknown = str(uuid.uuid4())
        found, missing = c.get([pid, unknown])
        assert missing == [unknown]
        (record,) = found
        assert (record.id, record.uri, record.label, record.metadata) == (
            pid,
            str(photos["puppy"]),
            "pets",
            {"kind": "animal"},
        )
        assert record.ingested_at > 1.7e9 and record.width > 0 and len(record.sha256) == 64
        assert record.visual is None
        (with_vectors,), _ = c.get([pid], with_vectors=True)
        assert with_vectors.visual.shape == (1280,) and with_vectors.semantic.shape == (50,)
        assert np.linalg.norm(with_vectors.visual) == pytest.approx(1.0, abs=1e-4)
        with pytest.raises(ClientError) as info:
            c.get(["not-a-uuid"])
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_list_pages_stay_correct_while_images_are_added_and_deleted(srv):
    ns = f"paging-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(1)
    with _client(srv, namespace=ns) as c:
        points = [
            PointVectors(str(uuid.uuid4()), rng.standard_normal(1280), rng.standard_normal(50), label=f"p{i}")
            for i in range(30)
        ]
        c.upsert_vectors(points)
        first = c.list_images(limit=7)
        assert len(first.images) == 7 and first.next_page_token
        ordered = sorted((p.id for p in points), key=lambda i: point_id(i, ns))  # the engine's id order
        assert [r.id for r in first.images] == ordered[:7]
        assert first.next_page_token == point_id(ordered[7], ns)  # the token: where the next page starts
        # meanwhile: one not yet listed is deleted, the next page's first one too, and new ones arrive
        gone = [ordered[20], ordered[7]]
        assert c.delete(ids=gone) == 2
        added = [
            PointVectors(str(uuid.uuid4()), rng.standard_normal(1280), rng.standard_normal(50))
            for _ in range(5)
        ]
        c.upsert_vectors(added)
        seen = [r.id for r in first.images]
        for page in c.iter_images(page_size=7, page_token=first.next_page_token):
            seen += [r.id for r in page.images]
        assert len(seen) == len(set(seen))  # nothing listed twice
        assert not set(gone) & set(seen)
        assert set(ordered) - set(gone) <= set(seen)  # every image there all along is listed
        assert set(seen) <= set(ordered) | {p.id for p in added}
        kept = first.images[0].label  # never deleted
        assert [r.label for r in c.list_images(limit=100, label=kept).images] == [kept]  # under a filter
        with pytest.raises(ClientError) as info:
            c.list_images(limit=5000)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


# -- update ------------------------------------------------------------------------------------------


def test_update_changes_label_and_metadata_without_reembedding(srv, photos):
    with _client(srv) as c:
        pid = _ids_by_uri(c)[str(photos["guitar"])]
        (before,), _ = c.get([pid], with_vectors=True)
        embedded = IMAGES_EMBEDDED._value.get()
        assert c.update([pid], label="instrument", set_metadata={"room": "music", "tuned": "no"}) == 1
        assert c.update([pid], remove_metadata=["tuned"]) == 1
        (after,), _ = c.get([pid], with_vectors=True)
        assert (after.label, after.metadata) == ("instrument", {"room": "music"})
        assert np.array_equal(before.visual, after.visual) and np.array_equal(before.semantic, after.semantic)
        assert [h.id for h in c.search("guitar", k=3, label="instrument").results] == [pid]
        # by filter: every "pets" image gets a key
        assert c.update(set_metadata={"checked": "yes"}, filter=_filter(labels=["pets"])) == len(PETS)
        assert {r.metadata.get("checked") for r in c.list_images(label="pets").images} == {"yes"}
        assert IMAGES_EMBEDDED._value.get() == embedded  # nothing went through the CNN
        for bad in (
            lambda: c.update([pid]),
            lambda: c.update(label="x"),
            lambda: c.update([pid], label="x" * 5000),
        ):
            with pytest.raises(ClientError) as info:
                bad()
            assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def _filter(**kw):
    from imgsearch.client import Filter

    return Filter(**kw)


def test_reingesting_known_content_with_a_new_label_updates_it(srv, photos):
    with _client(srv) as c:
        embedded = IMAGES_EMBEDDED._value.get()
        summary = _ingest(c, photos, ["tent"], label="camping", metadata={"season": "summer"})
        assert (summary.updated, summary.ingested, summary.duplicates) == (1, 0, 0)
        assert summary.results[0].status == "updated"
        (record,), _ = c.get([summary.results[0].id])
        assert (record.label, record.metadata) == ("camping", {"season": "summer"})
        again = _ingest(c, photos, ["tent"])  # no label, no metadata: nothing to change
        assert (again.updated, again.duplicates) == (0, 1)
        assert IMAGES_EMBEDDED._value.get() == embedded
    raw = indexer_pb2_grpc.IndexerStub(grpc.insecure_channel(srv.addr))
    response = raw.Ingest(
        iter([indexer_pb2.IngestRequest(image=photos["tent"].read_bytes(), label="tents")]),
        metadata=(("authorization", f"Bearer {FULL}"),),
    )
    assert response.results[0].status == indexer_pb2.IngestResult.UPDATED and response.updated == 1


# -- namespaces --------------------------------------------------------------------------------------


def test_namespaces_never_see_or_change_each_others_images(srv, photos):
    a, b = f"ns-a-{uuid.uuid4().hex[:6]}", f"ns-b-{uuid.uuid4().hex[:6]}"
    with _client(srv, namespace=a) as ca, _client(srv, namespace=b) as cb, _client(srv) as cd:
        default_before = cd.stats()["images"]
        ra = _ingest(ca, photos, ["puppy", "coffee"], label="a")
        rb = _ingest(cb, photos, ["puppy"], label="b")
        assert ra.ingested == 2 and rb.ingested == 1  # the same bytes are a separate image per namespace
        a_ids = {r.id for r in ra.results}
        puppy = rb.results[0].id
        assert puppy in a_ids  # with the same public id in each: ids are per namespace
        coffee = next(iter(a_ids - {puppy}))
        assert {h.id for h in ca.search("dog", k=50).results} == a_ids
        assert [h.label for h in cb.search("dog", k=50).results] == ["b"]
        assert {"a", "b"}.isdisjoint({h.label for h in cd.search("dog", k=1000).results})
        assert (ca.stats()["images"], cb.stats()["images"], cd.stats()["images"]) == (2, 1, default_before)
        assert [r.label for r in cb.get(list(a_ids))[0]] == ["b"]  # b's own puppy only
        assert cb.update([coffee], label="stolen") == 0
        assert cb.update([puppy], label="b2") == 1  # b's own image of that id
        assert cb.delete(ids=[coffee]) == 0
        assert {r.id for r in cb.list_images().images} == {puppy}
        with pytest.raises(ClientError) as info:  # an image of namespace a is unknown in b
            cb.similar(id=coffee, k=5)
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        # b storing precomputed vectors under a's id makes an image of b's, and changes nothing in a
        assert cb.upsert_vectors([PointVectors(coffee, np.ones(1280), np.ones(50), label="squat")]) == 1
        (theirs,), _ = ca.get([coffee])
        assert theirs.label == "a"
        assert {r.label for r in ca.get(list(a_ids))[0]} == {"a"}
        assert cb.delete(all=True) == 2
        assert ca.stats()["images"] == 2 and cb.stats()["images"] == 0
        assert {r.label for r in ca.list_images().images} == {"a"}
        assert [f[0] for f in ca.facets()] == ["a"]
        with pytest.raises(ClientError) as info:
            ca.search("dog", namespace="bad namespace!")
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


# -- scoped tokens -----------------------------------------------------------------------------------


def test_a_token_scoped_to_namespace_a_cannot_touch_namespace_b(srv, photos, tmp_path):
    with _client(srv, "ops", namespace="team-b") as ops:
        _ingest(ops, photos, ["jellyfish"], label="b-only")
        b_id = ops.list_images().images[0].id
    with _client(srv, "team-a-writer", namespace="team-a") as writer:
        _ingest(writer, photos, ["sea_turtle"], label="a-only")  # its own namespace: allowed
        assert writer.search("turtle", k=5).results[0].label == "a-only"
        assert writer.update(label="a-label", filter=_filter(labels=["a-only"])) == 1
        _denied(lambda: writer.delete(all=True))  # deleting everything needs admin
        _denied(lambda: writer.reindex().__next__())
        _denied(lambda: writer.load_vocabulary(limit=10))
    with _client(srv, "team-a-reader", namespace="team-a") as reader:
        assert reader.list_images().images[0].label == "a-label"
        _denied(lambda: reader.update(label="x", filter=_filter(labels=["a-label"])))
        _denied(lambda: reader.delete(label="a-label"))
    for token in ("team-a-writer", "team-a-reader"):
        with _client(srv, token, namespace="team-b") as c:
            _denied(lambda: c.search("jellyfish", k=5))
            _denied(lambda: c.similar(id=b_id))
            _denied(lambda: c.get([b_id]))
            _denied(lambda: c.list_images())
            _denied(lambda: c.list_images(namespace="team-a", all_namespaces=True))
            _denied(lambda: c.stats())
            _denied(lambda: c.facets())
            _denied(lambda: c.update([b_id], label="mine"))
            _denied(lambda: c.delete(ids=[b_id]))
            _denied(lambda: transfer.export(c, tmp_path / "denied.parquet"))
            _denied(lambda: _ingest(c, photos, ["camera"]))
            _denied(lambda: c.upsert_vectors([PointVectors(str(uuid.uuid4()), np.ones(1280), np.ones(50))]))
    with _client(srv, "ops", namespace="team-b") as ops:
        (record,), _ = ops.get([b_id])
        assert record.label == "b-only"  # untouched
    with _client(srv, "no-such-token") as stranger:
        with pytest.raises(ClientError) as info:
            stranger.search("dog")
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED


# -- export and import -------------------------------------------------------------------------------


def test_export_import_moves_a_namespace_between_stores_both_ways(servers, photos, tmp_path):
    ns = f"move-{uuid.uuid4().hex[:6]}"
    edge, remote = _client(servers["edge"], namespace=ns), _client(servers["remote"], namespace=ns)
    with edge, remote:
        _ingest(edge, photos, PETS, label="pets", metadata={"kind": "animal"})
        _ingest(edge, photos, OTHERS)
        original = _searches(edge)
        embedded = IMAGES_EMBEDDED._value.get()
        out = transfer.export(edge, tmp_path / "edge.parquet")
        assert out.records == len(PETS) + len(OTHERS)
        header = transfer.read_header(out.path)
        assert header.model == edge.model_info() and header.namespace == ns and header.records == out.records
        assert remote.stats()["images"] == 0
        result = transfer.import_file(remote, out.path)
        assert (result.imported, result.skipped) == (out.records, 0)
        _same_searches(original, _searches(remote))
        # and back: a backup restored into the emptied embedded store
        back = transfer.export(remote, tmp_path / "remote.parquet")
        assert edge.delete(all=True) == out.records
        assert transfer.import_file(edge, back.path).imported == out.records
        _same_searches(original, _searches(edge))
        pid = _ids_by_uri(edge)[str(photos["puppy"])]
        (restored,), _ = edge.get([pid])
        assert (restored.label, restored.metadata, restored.sha256 != "") == (
            "pets",
            {"kind": "animal"},
            True,
        )
        assert IMAGES_EMBEDDED._value.get() == embedded  # no image went through the CNN


def test_importing_twice_and_resuming_an_interrupted_import_add_no_duplicates(srv, photos, tmp_path):
    ns = f"resume-{uuid.uuid4().hex[:6]}"
    with _client(srv, namespace=ns) as c:
        _ingest(c, photos, PETS + OTHERS)
        out = transfer.export(c, tmp_path / "backup.parquet")
        assert c.delete(all=True) == out.records

        def interrupt(done, total):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):  # stopped after the first batch of 3
            transfer.import_file(c, out.path, batch=3, progress=interrupt)
        assert c.stats()["images"] == 3
        resumed = transfer.import_file(c, out.path, batch=3)
        assert (resumed.imported, resumed.skipped) == (out.records - 3, 3)
        assert c.stats()["images"] == out.records
        again = transfer.import_file(c, out.path)
        assert (again.imported, again.skipped) == (0, out.records)
        assert c.stats()["images"] == out.records
        ids = [r.id for p in c.iter_images(page_size=4) for r in p.images]
        assert len(ids) == len(set(ids)) == out.records


def test_import_refuses_vectors_of_another_model(srv, tmp_path):
    with _client(srv) as c:
        out = transfer.export(c, tmp_path / "x.parquet")
        records = next(transfer.read_records(out.path, batch=2))
        for change in ({"head": "devise"}, {"cnn": "resnet50"}, {"semantic_dim": 300}):
            with pytest.raises(ClientError) as info:
                c.import_images(records, {**c.model_info(), **change})
            assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
        wrong = [dataclasses.replace(records[0], id=str(uuid.uuid4()), visual=np.ones(7))]
        with pytest.raises(ClientError) as info:
            c.import_images(wrong, c.model_info())
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_backup_taken_while_serving_restores_every_exported_record(srv, photos, tmp_path):
    ns = f"live-{uuid.uuid4().hex[:6]}"
    rng = np.random.default_rng(7)
    with _client(srv, namespace=ns) as c:
        base = [
            PointVectors(str(uuid.uuid4()), rng.standard_normal(1280), rng.standard_normal(50))
            for _ in range(600)
        ]
        c.upsert_vectors(base)
        stop_writing = threading.Event()

        def write():  # the server keeps taking writes while the backup runs
            with _client(srv, namespace=ns) as w:
                while not stop_writing.is_set():
                    w.upsert_vectors(
                        [PointVectors(str(uuid.uuid4()), rng.standard_normal(1280), rng.standard_normal(50))]
                    )

        writer = threading.Thread(target=write)
        writer.start()
        try:
            out = transfer.export(c, tmp_path / "live.parquet")
        finally:
            stop_writing.set()
            writer.join()
        exported = {r.id: r for batch in transfer.read_records(out.path) for r in batch}
        assert len(exported) == out.records and {p.id for p in base} <= set(exported)
        c.delete(all=True)
        assert transfer.import_file(c, out.path).imported == out.records
        restored = [r for p in c.iter_images(page_size=1000, with_vectors=True) for r in p.images]
        assert {r.id for r in restored} == set(exported)
        for r in restored[:50]:
            assert np.allclose(r.semantic, exported[r.id].semantic, atol=1e-6)


def test_export_without_pyarrow_says_what_to_install(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(transfer.PyarrowMissing, match=r"imgsearch\[server\]"):
        transfer.read_header(Path(tmp_path) / "x.parquet")
