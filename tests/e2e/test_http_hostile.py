"""What broke over HTTP and scoped tokens (issue 20 items 3, 4, 12 and "also seen"; issue 22 items
22, 24, 26), on a real server (real models, Qdrant Edge, a token file): a writer token cannot
empty its namespace with a filter that matches everything (HTTP or gRPC), getStats keeps the data
path from scoped tokens, a token taken out of the file stops working without a restart, and
during the drain HTTP health is 503 and HTTP writes are refused.

The HTTP side's own guard (methods, bodies, Origin/Host, timeouts) is tested without models in
tests/app/test_http_transport.py."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from imgsearch.app.serve import stop
from imgsearch.protogen.imagesearch.v1 import common_pb2, indexer_pb2
from tests.e2e.conftest import Running, http_base, start_server, stubs_for
from tests.e2e.test_http_api import call

pytestmark = pytest.mark.slow

TOKENS = {
    "tokens": [
        {"token": "ops-secret", "read": ["*"], "write": ["*"], "admin": True},
        {"token": "team-b-secret", "read": ["team-b"], "write": ["team-b"]},
        {"token": "reader-secret", "read": [""]},
    ]
}
OPS = {"Authorization": "Bearer ops-secret"}
TEAM_B = {"Authorization": "Bearer team-b-secret"}
NAMES = ("puppy", "coffee", "guitar")


@dataclass
class Tenants:
    running: Running
    base: str
    tokens: Path
    data: Path
    stopped: bool = False


@pytest.fixture(scope="module")
def tenants(tmp_path_factory, photos) -> Iterator[Tenants]:
    data = tmp_path_factory.mktemp("tenants")
    tokens = data / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    tokens.chmod(0o600)
    running = start_server(data, http_port=0, tokens_file=str(tokens), vocab_size=5000)
    t = Tenants(running, http_base(running), tokens, data)
    for namespace in ("team-b", "team-c"):
        items = [
            {"image": base64.b64encode(photos[n].read_bytes()).decode(), "label": n, "namespace": namespace}
            for n in NAMES
        ]
        status, _, doc = call(t.base, "POST", "/v1/indexer:ingest", items, OPS)
        assert status == 200 and doc["ingested"] == 3, doc
    yield t
    if not t.stopped:
        stop(running.served, running.parts, 1.0)


def _count(t: Tenants, namespace: str) -> int:
    status, _, doc = call(t.base, "GET", f"/v1/indexer:getStats?namespace={namespace}", headers=OPS)
    assert status == 200
    return int(doc["images"])


def test_a_filter_that_matches_every_image_is_a_whole_namespace_delete(tenants):
    t = tenants
    everything = [
        {"namespace": "team-b", "filter": {"excludeLabels": ["zzz"]}},
        {"namespace": "team-b", "filter": {"labels": list(NAMES)}},
        {"namespace": "team-b", "all": True, "filter": {}},
        {"namespace": "team-b", "all": True},
    ]
    for body in everything:
        status, _, doc = call(t.base, "POST", "/v1/indexer:delete", body, TEAM_B)
        assert status == 403 and "admin" in doc["message"], (body, doc)
    assert _count(t, "team-b") == 3
    stubs = stubs_for(t.running.addr)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            stubs.indexer.Delete(
                indexer_pb2.DeleteRequest(
                    namespace="team-b", filter=common_pb2.Filter(exclude_labels=["zzz"])
                ),
                metadata=[("authorization", "Bearer team-b-secret")],
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        stubs.channel.close()
    assert _count(t, "team-b") == 3
    # a filter that leaves something is the writer's to use; an admin may empty a namespace
    status, _, doc = call(
        t.base, "POST", "/v1/indexer:delete", {"namespace": "team-b", "filter": {"label": "coffee"}}, TEAM_B
    )
    assert status == 200 and doc["deleted"] == 1
    status, _, doc = call(
        t.base,
        "POST",
        "/v1/indexer:delete",
        {"namespace": "team-c", "filter": {"excludeLabels": ["zzz"]}},
        OPS,
    )
    assert status == 200 and doc["deleted"] == 3 and _count(t, "team-c") == 0


def test_get_stats_shows_the_data_path_to_admin_tokens_only(tenants):
    t = tenants
    status, _, doc = call(t.base, "GET", "/v1/indexer:getStats?namespace=team-b", headers=TEAM_B)
    assert status == 200 and str(t.data) not in doc["store"] and doc["store"].startswith("qdrant-edge")
    status, _, doc = call(t.base, "GET", "/v1/indexer:getStats?namespace=team-b", headers=OPS)
    assert status == 200 and str(t.data) in doc["store"]


def test_a_token_taken_out_of_the_file_stops_working_without_a_restart(tenants):
    t = tenants
    assert (
        call(t.base, "GET", "/v1/indexer:getStats", headers={"Authorization": "Bearer reader-secret"})[0]
        == 200
    )
    t.tokens.write_text(json.dumps({"tokens": TOKENS["tokens"][:2]}))
    stubs = stubs_for(t.running.addr)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if (
                call(
                    t.base, "GET", "/v1/indexer:getStats", headers={"Authorization": "Bearer reader-secret"}
                )[0]
                == 401
            ):
                break
            time.sleep(0.2)
        status, _, doc = call(
            t.base, "GET", "/v1/indexer:getStats", headers={"Authorization": "Bearer reader-secret"}
        )
        assert status == 401 and doc["code"] == 16
        with pytest.raises(grpc.RpcError) as caught:
            stubs.indexer.GetStats(
                indexer_pb2.GetStatsRequest(), metadata=[("authorization", "Bearer reader-secret")]
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        stubs.channel.close()
        t.tokens.write_text(json.dumps(TOKENS))


def test_an_over_long_query_is_400_not_429(tenants):
    status, _, doc = call(tenants.base, "POST", "/v1/query:searchText", {"text": "dog " * 1000, "k": 3}, OPS)
    assert status == 400 and doc["code"] == 8 and "max_text_chars" in doc["message"]


def test_records_over_http_carry_only_what_was_asked_for(tenants):
    status, _, doc = call(tenants.base, "GET", "/v1/query:listImages?namespace=team-b", headers=OPS)
    assert status == 200 and doc["images"]
    record = doc["images"][0]
    assert {"id", "uri", "label", "metadata", "sha256"} <= set(record)
    assert not {"visual", "semantic", "extraJson", "classIds", "classScores"} & set(record)
    status, _, doc = call(
        tenants.base, "GET", "/v1/query:listImages?namespace=team-b&withVectors=true", headers=OPS
    )
    assert status == 200 and len(doc["images"][0]["visual"]) > 100


def test_ndjson_ingest_with_one_bad_line_fails_that_item_only(tenants, photos):
    good = base64.b64encode(photos["black_cat"].read_bytes()).decode()
    lines = [
        {"image": good, "label": "ndjson", "namespace": "team-b"},
        {"image": "%%% not base64 %%%", "label": "ndjson", "namespace": "team-b"},
    ]
    body = "\n".join(json.dumps(line) for line in lines).encode()
    status, _, doc = call(
        tenants.base,
        "POST",
        "/v1/indexer:ingest",
        raw=body,
        headers={**TEAM_B, "Content-Type": "application/x-ndjson"},
    )
    assert status == 200 and doc["ingested"] == 1 and doc["failed"] == 1
    assert [r["status"] for r in doc["results"]] == ["NEW", "FAILED"]
    assert doc["results"][1]["index"] == 1 and "base64" in doc["results"][1]["error"]["message"]


def test_during_the_drain_http_health_is_503_and_writes_are_refused(tenants):
    """The last test of the module: it stops the server (SIGTERM's path, serve.stop)."""
    t = tenants
    stubs = stubs_for(t.running.addr)
    hold = threading.Event()

    def idle():  # an Ingest stream that keeps the drain waiting for the grace period
        hold.wait(10)
        return
        yield

    pending = stubs.indexer.Ingest.future(
        idle(), metadata=[("authorization", "Bearer ops-secret")], timeout=20
    )
    time.sleep(0.5)
    stopping = threading.Thread(target=stop, args=(t.running.served, t.running.parts, 4.0))
    stopping.start()
    t.stopped = True
    try:
        time.sleep(0.5)
        status, _, doc = call(t.base, "GET", "/v1/health")
        assert status == 503 and doc == {"status": "NOT_SERVING"}
        status, _, doc = call(t.base, "POST", "/v1/indexer:ingest", [{"image": "AAAA"}], OPS)
        assert status == 503 and doc["code"] == 14
        status, _, doc = call(t.base, "POST", "/v1/query:searchText", {"text": "dog"}, OPS)
        assert status == 503
    finally:
        hold.set()
        stopping.join(30)
        pending.cancel()
        stubs.channel.close()
