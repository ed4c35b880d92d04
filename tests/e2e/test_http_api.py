"""The HTTP/JSON API beside gRPC, on the real server (real models, Qdrant Edge): the same answers as
gRPC in the protobuf JSON mapping, gRPC codes as HTTP statuses, uploads, thumbnails, the token."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from PIL import Image

from imgsearch.protogen.imagesearch.v1 import query_pb2
from tests.e2e.conftest import Running, http_base, start_server, stop, stubs_for
from tests.e2e.test_security import tls_files  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(base: str, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
    """(status, headers, JSON document or bytes) of one request; JSON bodies are sent as JSON."""
    data = raw
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with OPENER.open(request, timeout=60) as r:
            status, head, payload = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, head, payload = e.code, e.headers, e.read()
    if head.get("Content-Type", "").startswith("application/json"):
        return status, head, json.loads(payload)
    return status, head, payload


def multipart(fields: list[tuple[str, str, bytes | str]]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body: (name, file name or "", value) per part."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, filename, value in fields:
        out.write(f"--{boundary}\r\n".encode())
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"Content-Disposition: {disposition}\r\n\r\n".encode())
        out.write(value if isinstance(value, bytes) else value.encode())
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture(scope="module")
def base(web_server: Running) -> str:
    return http_base(web_server)


@pytest.fixture(scope="module")
def grpc_stubs(web_server: Running):
    s = stubs_for(web_server.addr)
    yield s
    s.channel.close()


def test_search_text_is_the_grpc_answer_in_the_json_mapping(base, grpc_stubs):
    status, head, doc = call(base, "POST", "/v1/query:searchText", {"text": "dog", "k": 5})
    assert status == 200 and head["Content-Type"].startswith("application/json")
    reply = grpc_stubs.query.SearchText(query_pb2.SearchTextRequest(text="dog", k=5))
    assert [h["id"] for h in doc["results"]] == [h.id for h in reply.results]
    assert [h["label"] for h in doc["results"]][0] in ("puppy", "puppies")
    assert doc["results"][0]["score"] == pytest.approx(reply.results[0].score, abs=1e-6)
    assert doc["unknownTerms"] == [] and "thumbnail" not in doc["results"][0]
    assert doc["matchCount"] == reply.match_count  # sent when 0 too: the page draws its divider by it
    # GET with query parameters (dotted names reach into sub-messages) answers the same
    status, _, got = call(base, "GET", "/v1/query:searchText?text=dog&k=5")
    assert status == 200 and [h["id"] for h in got["results"]] == [h["id"] for h in doc["results"]]
    status, _, only = call(base, "GET", "/v1/query:searchText?text=dog&k=5&filter.label=black_cat")
    assert status == 200 and [h["label"] for h in only["results"]] == ["black_cat"]


def test_every_query_rpc_and_stats(base):
    _, _, top = call(base, "POST", "/v1/query:searchText", {"text": "cat", "k": 1})
    cat_id = top["results"][0]["id"]
    status, _, similar = call(
        base, "POST", "/v1/query:similarImages", {"id": cat_id, "k": 3, "includeSelf": True}
    )
    assert status == 200 and similar["results"][0]["id"] == cat_id
    status, _, tags = call(base, "POST", "/v1/query:tagImage", {"id": cat_id, "k": 5})
    assert status == 200 and "cat" in [t["word"] for t in tags["results"]]
    status, _, words = call(base, "GET", "/v1/query:similarWords?word=ocean&k=5")
    assert status == 200 and len(words["results"]) == 5
    status, _, stats = call(base, "GET", "/v1/indexer:getStats")
    assert status == 200 and int(stats["images"]) >= 30 and stats["model"]["cnn"]  # int64: a JSON string


def test_upload_searches_by_photo_and_ingests_it(base, photos):
    photo = photos["black_cat"].read_bytes()
    body, headers = multipart([("image", "black_cat.jpg", photo), ("k", "", "3")])
    status, _, doc = call(base, "POST", "/v1/query:similarImages", raw=body, headers=headers)
    assert status == 200 and doc["results"][0]["label"] == "black_cat"
    assert doc["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)

    # multipart ingest: the same bytes are a duplicate, a new image is NEW with the form's label
    body, headers = multipart([("image", "a.jpg", photo)])
    status, _, doc = call(base, "POST", "/v1/indexer:ingest", raw=body, headers=headers)
    assert status == 200 and [r["status"] for r in doc["results"]] == ["DUPLICATE"] and doc["duplicates"] == 1
    new = Image.open(photos["chelsea"]).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    flipped = io.BytesIO()
    new.save(flipped, "JPEG")
    body, headers = multipart(
        [
            ("label", "", "mirrored"),
            ("metadata.source", "", "test"),
            ("image", "flipped.jpg", flipped.getvalue()),
        ]
    )
    status, _, doc = call(base, "POST", "/v1/indexer:ingest", raw=body, headers=headers)
    assert status == 200, doc
    assert [r["status"] for r in doc["results"]] == ["NEW"]
    assert doc["ingested"] == 1 and doc["results"][0]["uri"] == "flipped.jpg"
    _, _, found = call(
        base, "POST", "/v1/query:searchText", {"text": "cat", "k": 3, "filter": {"label": "mirrored"}}
    )
    assert found["results"][0]["metadata"] == {"source": "test"}

    # JSON ingest with base64 bytes, then DELETE by id
    new.rotate(90, expand=True).save(flipped := io.BytesIO(), "PNG")
    status, _, doc = call(
        base,
        "POST",
        "/v1/indexer:ingest",
        [{"image": base64.b64encode(flipped.getvalue()).decode(), "uri": "rotated.png", "label": "rotated"}],
    )
    assert status == 200 and doc["results"][0]["status"] == "NEW"
    image_id = doc["results"][0]["id"]
    status, _, doc = call(base, "DELETE", f"/v1/images/{image_id}")
    assert status == 200 and doc["deleted"] == 1
    status, _, doc = call(base, "POST", "/v1/query:similarImages", {"id": image_id, "k": 1})
    assert status == 404 and doc["code"] == 5


def test_thumbnails_are_small_jpegs_served_by_id_and_returned_over_grpc(base, grpc_stubs):
    _, _, doc = call(base, "POST", "/v1/query:searchText", {"text": "coffee", "k": 3})
    ids = [h["id"] for h in doc["results"]]
    status, head, data = call(base, "GET", f"/v1/images/{ids[0]}/thumbnail")
    assert status == 200 and head["Content-Type"] == "image/jpeg"
    assert 500 < len(data) < 16_000
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG" and max(img.size) <= 256
    # the browser's cache revalidation
    status, _, _ = call(
        base, "GET", f"/v1/images/{ids[0]}/thumbnail", headers={"If-None-Match": head["ETag"]}
    )
    assert status == 304

    reply = grpc_stubs.query.SearchText(query_pb2.SearchTextRequest(text="coffee", k=3, with_thumbnails=True))
    assert reply.results[0].thumbnail == data
    plain = grpc_stubs.query.SearchText(query_pb2.SearchTextRequest(text="coffee", k=3))
    assert all(not h.thumbnail for h in plain.results)
    _, _, with_thumbs = call(
        base, "POST", "/v1/query:searchText", {"text": "coffee", "k": 1, "withThumbnails": True}
    )
    assert base64.b64decode(with_thumbs["results"][0]["thumbnail"]) == data

    status, _, doc = call(base, "GET", f"/v1/images/{uuid.uuid4()}/thumbnail")
    assert status == 404 and doc["code"] == 5
    status, _, doc = call(base, "GET", "/v1/images/not-an-id/thumbnail")
    assert status == 400 and doc["code"] == 3
    status, _, _ = call(base, "GET", "/v1/images/..%2F..%2Fetc%2Fpasswd/thumbnail")
    assert status in (400, 404)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/query:searchText", {"text": "", "k": 3}, 400, 3),
        ("POST", "/v1/query:searchText", {"text": "dog", "k": 5000}, 400, 3),
        ("POST", "/v1/query:searchText", {"text": "qwzxv", "k": 3}, 404, 5),
        ("POST", "/v1/query:searchText", {"txt": "dog"}, 400, 3),
        ("POST", "/v1/query:searchText", [1, 2], 400, 3),
        ("POST", "/v1/query:similarImages", {"image": base64.b64encode(b"not an image").decode()}, 400, 3),
        ("POST", "/v1/query:noSuchMethod", {}, 404, 5),
        ("POST", "/v1/indexer:ingest", [{"image": "AAAA"}] * 300, 400, 8),  # a limit, not "retry later"
        ("POST", "/v1/indexer:delete", {}, 400, 3),
        ("PUT", "/v1/query:searchText", {"text": "dog"}, 405, 12),
    ],
)
def test_grpc_codes_become_http_statuses_with_a_status_document(base, method, path, body, status, code):
    got_status, head, doc = call(base, method, path, body)
    assert got_status == status, doc
    assert head["Content-Type"].startswith("application/json")
    assert doc["code"] == code and doc["message"] and doc["details"] == []


def test_a_body_that_is_not_json_and_one_over_the_size_limit(base):
    status, _, doc = call(
        base, "POST", "/v1/query:searchText", raw=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and "not JSON" in doc["message"]
    big = b"x" * (65 * 1024 * 1024)
    status, _, doc = call(
        base, "POST", "/v1/indexer:ingest", raw=big, headers={"Content-Type": "application/json"}
    )
    assert status == 413 and doc["code"] == 8


def test_the_page_and_its_files_are_served_with_a_policy_that_keeps_it_offline(base):
    status, head, page = call(base, "GET", "/")
    assert status == 200 and head["Content-Type"].startswith("text/html")
    assert b'<input id="q"' in page and b"http://" not in page and b"https://" not in page
    assert "default-src 'self'" in head["Content-Security-Policy"]
    for path in ("/app.js", "/app.css", "/favicon.svg"):
        status, _, body = call(base, "GET", path)
        assert status == 200 and len(body) > 100
    status, _, _ = call(base, "GET", "/web/../services/app/serve.py")
    assert status == 404


@pytest.fixture(scope="module")
def locked(tmp_path_factory) -> Iterator[str]:
    """A second server, with a token."""
    data = tmp_path_factory.mktemp("locked-data")
    tokens = data / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"token": "reader", "read": [""]}]}))
    running = start_server(data, http_port=0, token="s3cret", tokens_file=str(tokens))
    yield http_base(running)
    stop(running.served, running.parts, 1.0)


def test_the_token_guards_the_api_but_not_health_or_the_page(locked):
    status, _, doc = call(locked, "GET", "/v1/indexer:getStats")
    assert status == 401 and doc["code"] == 16
    status, _, _ = call(locked, "GET", "/v1/indexer:getStats", headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, _, doc = call(locked, "GET", "/v1/indexer:getStats", headers={"Authorization": "Bearer s3cret"})
    assert status == 200 and doc["images"] == "0"
    # the token travels only in the header: a cookie, which other ports of the host receive, is no credential
    status, _, _ = call(locked, "GET", "/v1/indexer:getStats", headers={"Cookie": "imgsearch_token=s3cret"})
    assert status == 401
    assert call(locked, "GET", "/v1/health")[2] == {"status": "SERVING"}
    assert call(locked, "GET", "/")[0] == 200


def test_the_cli_gallery_shows_the_servers_thumbnails_without_the_files(web_server: Running, tmp_path):
    from imgsearch.cli.main import Environment, main

    page = tmp_path / "gallery.html"
    err = io.StringIO()
    code = main(
        ["search", "dog", "-k", "3", "--html", str(page)],
        env=Environment(stdout=io.StringIO(), stderr=err, environ={"IMGSEARCH_ADDR": web_server.addr}),
    )
    assert code == 0, err.getvalue()
    assert page.read_text().count('src="data:image/jpeg;base64,') == 3  # no --html-images folder named


def test_a_scoped_token_gets_its_scope_over_http_too(locked):
    reader = {"Authorization": "Bearer reader"}
    status, _, doc = call(locked, "POST", "/v1/query:searchText", {"text": "dog", "k": 3}, headers=reader)
    assert status == 200 and doc["results"] == []
    status, _, doc = call(locked, "POST", "/v1/indexer:loadVocabulary", {}, headers=reader)
    assert status == 403 and doc["code"] == 7
    status, _, doc = call(
        locked, "GET", f"/v1/images/{uuid.uuid4()}/thumbnail?namespace=team-b", headers=reader
    )
    assert status == 403 and doc["code"] == 7
    status, _, doc = call(locked, "GET", f"/v1/images/{uuid.uuid4()}/thumbnail", headers=reader)
    assert status == 404


def test_http_calls_are_counted_per_rpc_beside_the_grpc_metrics(base):
    from prometheus_client import REGISTRY

    labels = {"method": "POST", "route": "/v1/query:searchText", "status": "200"}
    before = REGISTRY.get_sample_value("imgsearch_http_requests_total", labels) or 0
    assert call(base, "POST", "/v1/query:searchText", {"text": "dog", "k": 1})[0] == 200
    assert REGISTRY.get_sample_value("imgsearch_http_requests_total", labels) == before + 1
    call(base, "POST", "/v1/query:madeUpName", {})
    assert REGISTRY.get_sample_value(
        "imgsearch_http_requests_total", {"method": "POST", "route": "/v1/{name}", "status": "404"}
    )


def test_with_tls_configured_the_http_side_is_https_with_the_same_certificate(tmp_path_factory, tls_files):  # noqa: F811
    import ssl

    cert, key = tls_files
    running = start_server(
        tmp_path_factory.mktemp("tls-data"),
        http_port=0,
        tls_cert=str(cert),
        tls_key=str(key),
        vocab_size=20000,
    )
    try:
        port = running.parts.http.port
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://localhost:{port}/v1/health", context=context, timeout=30) as r:
            assert r.status == 200 and json.loads(r.read()) == {"status": "SERVING"}
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP: no answer on a TLS port
            OPENER.open(f"http://127.0.0.1:{port}/v1/health", timeout=10).read()
    finally:
        stop(running.served, running.parts, 1.0)
