"""`imgsearch` end to end through main(): argument handling, exit statuses, --json on stdout only.

A small in-test servicer answers fixed results, so the formatting of every command is checked
without the models; the lead's end-to-end tests run the same commands against the real server.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import re
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from imgsearch.cli.main import Environment, ExitStatus, apply_flags, build_parser, main
from imgsearch.cli.status import exit_status_for
from imgsearch.config import Settings
from imgsearch.protogen.imagesearch.v1 import (
    common_pb2,
    indexer_pb2,
    indexer_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)


class FakeQuery(query_pb2_grpc.QueryServicer):
    def __init__(self):
        self.metadata: list[dict] = []
        self.requests: list = []

    def _seen(self, request, context):
        self.metadata.append(dict(context.invocation_metadata()))
        self.requests.append(request)

    def SearchText(self, request, context):
        self._seen(request, context)
        if request.text == "qqqx":
            context.abort(grpc.StatusCode.NOT_FOUND, "no known word in 'qqqx'")
        hits = [
            common_pb2.ImageHit(
                id=f"id-{i}", score=1.0 - i / 10, uri=f"/p/{i}.jpg", label="dog", metadata={"i": str(i)}
            )
            for i in range(min(request.k, 3))
        ]
        return query_pb2.SearchImagesResponse(results=hits, unknown_terms=["zzzq"])

    def SimilarImages(self, request, context):
        self._seen(request, context)
        if request.HasField("id") and request.id == "missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown id")
        return query_pb2.SearchImagesResponse(results=[common_pb2.ImageHit(id="x", score=0.5, uri="/x.jpg")])

    def TagImage(self, request, context):
        self._seen(request, context)
        return query_pb2.WordsResponse(results=[common_pb2.WordHit(word="bottle", score=0.4)])

    def SimilarWords(self, request, context):
        self._seen(request, context)
        return query_pb2.WordsResponse(results=[common_pb2.WordHit(word="told", score=0.9)])


class FakeIndexer(indexer_pb2_grpc.IndexerServicer):
    def __init__(self):
        self.ingested: list[indexer_pb2.IngestRequest] = []
        self.deletes: list[indexer_pb2.DeleteRequest] = []

    def Ingest(self, request_iterator, context):
        results, counts = [], {"new": 0, "dup": 0, "failed": 0}
        for i, r in enumerate(request_iterator):
            seen = any(p.image == r.image for p in self.ingested)
            self.ingested.append(r)
            if r.image.startswith(b"bad"):
                status, counts["failed"] = indexer_pb2.IngestResult.FAILED, counts["failed"] + 1
                err = common_pb2.ItemError(code=3, message="cannot decode image")
            elif seen:
                status, counts["dup"], err = indexer_pb2.IngestResult.DUPLICATE, counts["dup"] + 1, None
            else:
                status, counts["new"], err = indexer_pb2.IngestResult.NEW, counts["new"] + 1, None
            results.append(
                indexer_pb2.IngestResult(index=i, id=f"id{i}", uri=r.uri, status=status, error=err)
            )
        return indexer_pb2.IngestResponse(
            results=results, ingested=counts["new"], duplicates=counts["dup"], failed=counts["failed"]
        )

    def Delete(self, request, context):
        self.deletes.append(request)
        return indexer_pb2.DeleteResponse(deleted=len(request.ids) or 7)

    def GetStats(self, request, context):
        return indexer_pb2.Stats(images=3, words=50000, store="edge")

    def LoadVocabulary(self, request, context):
        return indexer_pb2.LoadVocabularyResponse(words=request.limit or 50000, loaded=True)

    def Reindex(self, request, context):
        for done in (2, 4, 5):
            yield indexer_pb2.ReindexProgress(done=done, total=6, skipped=1 if done == 5 else 0, head="conse")


@pytest.fixture(scope="module")
def server():
    query, indexer = FakeQuery(), FakeIndexer()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    query_pb2_grpc.add_QueryServicer_to_server(query, srv)
    indexer_pb2_grpc.add_IndexerServicer_to_server(indexer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield f"127.0.0.1:{port}", query, indexer
    srv.stop(0)


def run(argv: list[str], environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=Environment(stdout=out, stderr=err, environ=environ or {}))
    return code, out.getvalue(), err.getvalue()


def test_search_json_shape_and_filters(server):
    addr, query, _ = server
    code, out, err = run(
        ["search", "big", "dog", "-k", "2", "--label", "dog", "--meta", "a=b", "--json"],
        {"IMGSEARCH_ADDR": addr},
    )
    assert code == ExitStatus.SUCCESS
    doc = json.loads(out)
    assert doc["unknown_terms"] == ["zzzq"]
    assert [set(r) for r in doc["results"]] == [{"id", "score", "uri", "label", "metadata"}] * 2
    assert doc["results"][0] == {
        "id": "id-0",
        "score": 1.0,
        "uri": "/p/0.jpg",
        "label": "dog",
        "metadata": {"i": "0"},
    }
    req = query.requests[-1]
    assert (req.text, req.k, req.filter.label, dict(req.filter.metadata)) == ("big dog", 2, "dog", {"a": "b"})
    assert "zzzq" in err  # messages go to stderr, never into the JSON


def test_table_is_the_default(server):
    code, out, _ = run(["search", "dog", "--addr", server[0]])
    assert code == 0
    assert out.splitlines()[0].split() == ["#", "score", "label", "uri", "id", "metadata"]
    assert "0.900" in out


def test_token_is_sent_as_bearer_metadata(server):
    addr, query, _ = server
    run(["words", "said", "--json"], {"IMGSEARCH_ADDR": addr, "IMGSEARCH_TOKEN": "s3cret"})
    assert query.metadata[-1]["authorization"] == "Bearer s3cret"
    run(["words", "said", "--json", "--addr", addr])
    assert "authorization" not in query.metadata[-1]


def test_words_and_tags_json(server, tmp_path):
    addr = server[0]
    code, out, _ = run(["words", "said", "--json", "--addr", addr])
    assert code == 0 and json.loads(out) == {"results": [{"word": "told", "score": pytest.approx(0.9)}]}
    img = tmp_path / "x.jpg"
    img.write_bytes(b"\xff\xd8 some bytes")
    code, out, _ = run(["tags", str(img), "--json", "--addr", addr])
    assert code == 0 and json.loads(out)["results"][0]["word"] == "bottle"
    assert server[1].requests[-1].image == b"\xff\xd8 some bytes"


def test_similar_by_id_and_errors(server, tmp_path):
    addr = server[0]
    code, out, _ = run(["similar", "--id", "abc", "--json", "--addr", addr])
    assert code == 0 and json.loads(out)["results"][0]["id"] == "x"
    code, out, err = run(["similar", "--id", "missing", "--json", "--addr", addr])
    assert code == ExitStatus.NOT_FOUND and out == "" and "unknown id" in err
    code, _, err = run(["similar", str(tmp_path / "nope.jpg"), "--addr", addr])
    assert code == ExitStatus.NOT_FOUND and "no such file" in err
    code, _, _ = run(["similar", str(tmp_path / "nope.jpg"), "--id", "x", "--addr", addr])
    assert code == ExitStatus.USAGE
    code, _, err = run(["search", "qqqx", "--addr", addr])
    assert code == ExitStatus.NOT_FOUND and "no known word" in err


def test_html_gallery_is_written(server, tmp_path):
    page = tmp_path / "out" / "g.html"
    code, _, err = run(["search", "dog", "--html", str(page), "--addr", server[0]])
    assert code == 0 and page.is_file() and str(page) in err
    assert page.read_text().count('class="card"') == 3


def test_ingest_json_counts_duplicates_and_failures(server, tmp_path):
    addr, _, indexer = server
    folder = tmp_path / "pets"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"good-a")
    (folder / "b.png").write_bytes(b"good-b")
    (folder / "c.jpg").write_bytes(b"bad-c")
    missing = str(tmp_path / "gone.jpg")
    code, out, _ = run(
        ["ingest", str(folder), missing, "--label-from-dir", "--meta", "src=test", "--json", "--addr", addr]
    )
    doc = json.loads(out)
    assert set(doc) == {"ingested", "duplicates", "failed", "updated"}
    assert (doc["ingested"], doc["duplicates"]) == (2, 0)
    assert sorted(f["path"] for f in doc["failed"]) == sorted([missing, str(folder / "c.jpg")])
    assert all(set(f) == {"path", "error"} and f["error"] for f in doc["failed"])
    assert code == ExitStatus.PARTIAL
    sent = indexer.ingested[-3:]
    assert [r.uri for r in sent] == [str(folder / n) for n in ("a.jpg", "b.png", "c.jpg")]
    assert {r.label for r in sent} == {"pets"} and all(dict(r.metadata) == {"src": "test"} for r in sent)

    code, out, _ = run(["ingest", str(folder / "a.jpg"), "--json", "--addr", addr])
    assert code == 0 and json.loads(out) == {"ingested": 0, "duplicates": 1, "failed": [], "updated": 0}


def test_ingest_of_nothing(server, tmp_path):
    code, out, err = run(["ingest", str(tmp_path / "*.jpg"), "--json", "--addr", server[0]])
    assert code == ExitStatus.NOT_FOUND and "nothing to ingest" in err
    assert json.loads(out)["ingested"] == 0


def test_delete_stats_vocab(server):
    addr, _, indexer = server
    code, out, _ = run(["delete", "--id", "a", "b", "--json", "--addr", addr])
    assert code == 0 and json.loads(out) == {"deleted": 2}
    code, out, _ = run(["delete", "--label", "dog", "--meta", "k=v", "--addr", addr])
    assert code == 0 and out == "deleted 7\n"
    assert indexer.deletes[-1].filter.label == "dog" and dict(indexer.deletes[-1].filter.metadata) == {
        "k": "v"
    }
    assert run(["delete", "--addr", addr])[0] == ExitStatus.USAGE
    assert run(["delete", "--id", "a", "--all", "--addr", addr])[0] == ExitStatus.USAGE
    code, out, _ = run(["stats", "--json", "--addr", addr])
    assert code == 0 and json.loads(out)["images"] == 3 and json.loads(out)["store"] == "edge"
    code, out, _ = run(["vocab", "--limit", "1000", "--json", "--addr", addr])
    assert code == 0 and json.loads(out) == {"words": 1000, "loaded": True}


def test_reindex_prints_the_final_counts_and_shows_progress_on_stderr(server):
    code, out, err = run(["reindex", "--json", "--addr", server[0]])
    assert code == 0 and json.loads(out) == {"done": 5, "total": 6, "skipped": 1, "head": "conse"}
    assert re.match(r"reindex \[#{30}\] 6/6 100% ", err)
    code, out, _ = run(["reindex", "--addr", server[0]])
    assert code == 0 and out == "reindexed 5 of 6 images with head conse, skipped 1 without CNN features\n"


def test_version_is_printed():
    code, out, err = run(["--version"])
    assert code == 0 and err == ""
    assert out == f"imgsearch {importlib.metadata.version('imgsearch')}\n"


def test_unreachable_server_is_unavailable_with_a_hint():
    code, out, err = run(["search", "dog", "--json", "--addr", "127.0.0.1:1", "--timeout", "5"])
    assert code == ExitStatus.UNAVAILABLE and out == ""
    assert "cannot connect to 127.0.0.1:1" in err and "is `imgsearch serve` running?" in err


def test_health_of_an_unreachable_server_fails():
    code, out, err = run(["health", "--addr", "127.0.0.1:1"])
    assert code == ExitStatus.UNAVAILABLE and out == "UNREACHABLE\n"  # not NOT_SERVING: nobody answered
    assert run(["health", "--addr", "127.0.0.1:1", "--json"])[1] == '{"status": "UNREACHABLE"}\n'


def test_health_with_a_timeout_waits_for_a_server_that_comes_up():
    """`serve &` then `health --timeout 60`: waits for the port and SERVING (issue 22 item 12)."""
    import threading

    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from imgsearch.app.process import free_port

    port = free_port()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, srv)

    def come_up() -> None:
        srv.add_insecure_port(f"127.0.0.1:{port}")
        srv.start()
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)

    timer = threading.Timer(1.5, come_up)
    timer.start()
    try:
        started = time.monotonic()
        assert run(["health", "--addr", f"127.0.0.1:{port}", "--timeout", "30"])[:2] == (0, "SERVING\n")
        assert 1.0 < time.monotonic() - started < 20
    finally:
        timer.join()
        srv.stop(0)


def test_a_command_waits_for_a_local_server_to_listen(server):
    """A command started right after `serve` waits for the port instead of failing at once."""
    import threading

    from imgsearch.app.process import free_port

    port = free_port()
    query = FakeQuery()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    query_pb2_grpc.add_QueryServicer_to_server(query, srv)

    def come_up() -> None:
        srv.add_insecure_port(f"127.0.0.1:{port}")
        srv.start()

    timer = threading.Timer(1.5, come_up)
    timer.start()
    try:
        code, out, err = run(["search", "dog", "--json", "--addr", f"127.0.0.1:{port}"])
        assert code == 0 and json.loads(out)["results"] and "waiting up to 10 s" in err
    finally:
        timer.join()
        srv.stop(0)


def test_health_exit_status_follows_the_serving_status():
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, srv)
    addr = f"127.0.0.1:{srv.add_insecure_port('127.0.0.1:0')}"
    srv.start()
    try:
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        servicer.set("imagesearch.v1.Query", health_pb2.HealthCheckResponse.SERVING)
        assert run(["health", "--addr", addr]) == (ExitStatus.UNAVAILABLE, "NOT_SERVING\n", "")
        assert run(["health", "--addr", addr, "--service", "imagesearch.v1.Query", "--json"]) == (
            0,
            '{"status": "SERVING"}\n',
            "",
        )
        code, _, err = run(["health", "--addr", addr, "--service", "nope"])
        assert code == ExitStatus.NOT_FOUND and "no service 'nope'" in err
    finally:
        srv.stop(0)


def test_usage_errors_go_to_the_injected_stderr():
    code, out, err = run(["search"])
    assert code == ExitStatus.USAGE and "usage:" in err and out == ""
    code, _, err = run(["search", "dog", "--meta", "novalue"])
    assert code == ExitStatus.USAGE and "key=value" in err
    code, out, _ = run(["--help"])
    assert code == 0 and "ingest" in out and "exit status" in out
    assert run([])[0] == ExitStatus.USAGE
    code, _, err = run(["stats"], {"IMGSEARCH_PORT": "notaport"})
    assert code == ExitStatus.USAGE and "bad setting" in err


def test_serve_checks_role_names_before_loading_anything():
    assert build_parser().parse_args(["serve"]).roles == []
    code, _, err = run(["serve", "indexer", "bogus"])
    assert code == ExitStatus.USAGE and "bogus" in err


def test_flags_override_the_environment():
    env = Settings.from_env(
        {"IMGSEARCH_ADDR": "envhost:1", "IMGSEARCH_DATA": "/env/data", "IMGSEARCH_PORT": "7000"}
    )
    args = build_parser().parse_args(["serve", "query", "--data", "/flag/data", "--token", "t"])
    s = apply_flags(env, args)
    assert (s.data_dir, s.port, s.token, s.addr) == (Path("/flag/data"), 7000, "t", "envhost:1")
    args = build_parser().parse_args(["search", "x", "--addr", "flaghost:2"])
    assert apply_flags(env, args).addr == "flaghost:2"


def test_every_grpc_code_maps_to_an_exit_status():
    for code in grpc.StatusCode:
        assert isinstance(exit_status_for(code), ExitStatus)
    assert exit_status_for(grpc.StatusCode.OK) == 0
    assert exit_status_for(grpc.StatusCode.INVALID_ARGUMENT) == ExitStatus.USAGE
    assert exit_status_for(grpc.StatusCode.NOT_FOUND) == ExitStatus.NOT_FOUND
    assert exit_status_for(grpc.StatusCode.UNAVAILABLE) == ExitStatus.UNAVAILABLE
    assert exit_status_for(grpc.StatusCode.DEADLINE_EXCEEDED) == ExitStatus.TIMEOUT
    assert exit_status_for(grpc.StatusCode.UNAUTHENTICATED) == ExitStatus.UNAUTHENTICATED
    assert exit_status_for(grpc.StatusCode.RESOURCE_EXHAUSTED) == ExitStatus.RESOURCE_EXHAUSTED
    assert exit_status_for(grpc.StatusCode.INTERNAL) == ExitStatus.ERROR
    codes = [s for s in ExitStatus if s != ExitStatus.SUCCESS]
    assert len({int(s) for s in codes}) == len(codes)  # every failure is distinguishable


def test_ports_out_of_range_are_usage_errors():
    for flags in (["--port", "99999"], ["--http-port", "-5"], ["--metrics-port", "70000"]):
        code, _, err = run(["serve", *flags])
        assert code == ExitStatus.USAGE and "not a port" in err and "Traceback" not in err, flags


def test_counts_outside_their_range_are_usage_errors(server):
    for argv in (["search", "dog", "-k", "0"], ["list", "-k", "0"], ["search", "dog", "--offset", "-1"]):
        code, _, err = run([*argv, "--addr", server[0]])
        assert code == ExitStatus.USAGE and "out of range" in err, argv


def test_an_unquoted_minus_word_gets_a_hint(server):
    code, out, err = run(["search", "dog", "-cat", "--addr", server[0]])
    assert code == ExitStatus.USAGE and out == ""
    assert "unrecognized arguments: -cat" in err and "imgsearch search 'dog -cat'" in err
    assert "imgsearch search -- dog -cat" in err
    code, out, _ = run(["search", "--addr", server[0], "--", "dog", "-cat"])
    assert code == 0 and server[1].requests[-1].text == "dog -cat"


def test_offset_numbers_rows_by_their_rank(server):
    code, out, _ = run(["search", "dog", "--offset", "10", "--addr", server[0]])
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["11", "12", "13"]


def test_a_wrong_token_is_said_to_be_wrong():
    from imgsearch.cli.main import describe
    from imgsearch.client import ClientError

    error = ClientError(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")
    assert "not one this server accepts" in describe(error, Settings.from_env({"IMGSEARCH_TOKEN": "x"}))
    assert "wants a token" in describe(error, Settings.from_env({}))


def test_delete_takes_positional_ids(server):
    addr, _, indexer = server
    code, out, _ = run(["delete", "id1", "id2", "--addr", addr])
    assert code == 0 and list(indexer.deletes[-1].ids) == ["id1", "id2"]


def test_warmup_offers_only_the_flags_it_reads():
    code, out, _ = run(["warmup", "--help"])
    assert code == 0 and "--cache-dir" in out
    for flag in ("--port", "--http-port", "--token", "--tls-cert", "--qdrant-url"):
        assert flag not in out, flag


def test_printed_commands_name_the_command_as_it_can_be_typed(tmp_path, monkeypatch):
    """`make demo` runs .venv/bin/imgsearch, which is not on PATH: it prints that path (item 11)."""
    from imgsearch.cli.environment import command_name

    script = tmp_path / ".venv" / "bin" / "imgsearch"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command_name(str(script), tmp_path) == ".venv/bin/imgsearch"
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    assert command_name(str(script), tmp_path) == "imgsearch"


def test_export_into_a_missing_folder_is_one_line_before_any_call(tmp_path):
    code, out, err = run(["export", str(tmp_path / "no" / "such" / "x.parquet"), "--addr", "127.0.0.1:1"])
    assert code == ExitStatus.NOT_FOUND and out == ""
    assert err == f"error: no such folder: {tmp_path / 'no' / 'such'} (create it first)\n"
