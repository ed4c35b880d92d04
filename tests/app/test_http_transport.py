"""The HTTP side's own guard on a real aiohttp server on loopback, before any service is reached:
methods, bodies, the Origin/Host check against other pages and DNS rebinding, size and time
limits, the shared call cap and the drain (issue 20 items 1, 9, 12 and the HTTP "also seen").

The server here runs no service (the refusals happen before one would be called); the answers of
calls that pass are tested on the real server in tests/e2e/test_http_api.py and test_http_hostile.py."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from imgsearch.app.http import HttpApi, HttpServer, listen_socket
from imgsearch.config import Settings
from imgsearch.config.settings import Limits
from imgsearch.rpc.policy import CallPolicy, policy_for

LIMIT = 1 << 20  # max_message_bytes here


@dataclass
class Served:
    server: HttpServer
    policy: CallPolicy
    state: dict

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    settings = replace(
        Settings(),
        host="127.0.0.1",
        http_hosts="images.example.org",
        limits=replace(Limits(), max_message_bytes=LIMIT, max_concurrent_calls=2),
    )
    state = {"draining": False}
    policy = policy_for(settings)
    api = HttpApi(settings, {}, lambda: True, policy, lambda: state["draining"])
    api.body_timeout = 1.0
    api.header_timeout = 1.0
    server = HttpServer(api, listen_socket("127.0.0.1", 0))
    yield Served(server, policy, state)
    server.stop()


def request(port: int, method: str, path: str, body: bytes | None = None, **headers: str):
    """(status, headers, JSON document or bytes); `Host` is 127.0.0.1:port unless given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    headers.setdefault("Host", f"127.0.0.1:{port}")
    if body is not None:
        headers.setdefault("Content-Length", str(len(body)))
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders(body)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, response, json.loads(data)
    return response.status, response, data


JSON = {"Content_Type": "application/json"}


# -- methods and bodies: GET never changes anything; changes are POST with JSON --------------------


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("GET", "/v1/indexer:delete?all=true", "POST"),  # <img src=...:delete?all=true>
        ("GET", "/v1/indexer:upsertVectors", "POST"),
        ("GET", "/v1/indexer:updateImages?label=x", "POST"),
        ("GET", "/v1/indexer:importImages", "POST"),
        ("GET", "/v1/indexer:loadVocabulary", "POST"),
        ("GET", "/v1/indexer:ingest", "POST"),
        ("PUT", "/v1/query:searchText", "GET, HEAD, POST"),
        ("POST", "/v1/health", "GET, HEAD"),
        ("GET", "/v1/images/abc", "DELETE"),
        ("POST", "/v1/images/abc/thumbnail", "GET, HEAD"),
        ("DELETE", "/", "GET, HEAD"),
    ],
)
def test_a_method_a_route_does_not_take_is_405_with_allow(served, method, path, allow):
    status, head, doc = request(served.port, method, path)
    assert status == 405 and head.getheader("Allow") == allow
    assert doc["code"] == 12 and method in doc["message"]


@pytest.mark.parametrize(
    "path, content_type, body",
    [
        ("/v1/indexer:delete", "text/plain", b'{"all": true}'),  # a no-cors fetch
        ("/v1/indexer:delete", "application/x-www-form-urlencoded", b"all=true"),  # a plain form
        (
            "/v1/indexer:delete",
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="all"\r\n\r\ntrue\r\n--b--\r\n',
        ),
        ("/v1/indexer:delete", None, b'{"all": true}'),
        ("/v1/indexer:ingest", "text/plain", b'{"image": "AAAA"}'),
        ("/v1/query:searchText", "multipart/form-data; boundary=b", b"--b--\r\n"),  # no upload route
    ],
)
def test_a_body_that_is_not_json_where_json_is_wanted_is_415(served, path, content_type, body):
    headers = {"Content_Type": content_type} if content_type else {}
    status, _, doc = request(served.port, "POST", path, body, **headers)
    assert status == 415 and doc["code"] == 3 and "application/json" in doc["message"]


# -- other pages and DNS rebinding ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another port of the same host: another origin
        {"Referer": "http://evil.example/page.html"},
        {"Sec_Fetch_Site": "cross-site"},
        {"Sec_Fetch_Site": "same-site"},
        {"Host": "evil.example"},  # a rebound DNS name pointing at 127.0.0.1
        {"Host": "evil.example:80", "Origin": "http://evil.example:80"},
        {"Host": ""},
    ],
)
def test_another_origin_or_host_is_refused_before_anything_is_read(served, headers):
    for method, path, body in (
        ("POST", "/v1/indexer:delete", b'{"all": true}'),
        ("GET", "/v1/query:searchText?text=dog", None),
    ):
        status, _, doc = request(served.port, method, path, body, **{**JSON, **headers})
        assert status == 403 and doc["code"] == 7, (method, path, doc)


def test_a_cross_origin_multipart_upload_is_refused(served):
    body = b'--b\r\nContent-Disposition: form-data; name="f"; filename="x.png"\r\n\r\nxx\r\n--b--\r\n'
    status, _, doc = request(
        served.port,
        "POST",
        "/v1/indexer:ingest",
        body,
        Content_Type="multipart/form-data; boundary=b",
        Origin="http://evil.example",
    )
    assert status == 403 and "origin" in doc["message"]


def test_the_page_own_origin_and_named_hosts_pass_the_check(served):
    port = served.port
    own = f"http://127.0.0.1:{port}"
    for headers in (
        {"Origin": own},
        {"Origin": own, "Sec_Fetch_Site": "same-origin"},
        {"Referer": own + "/?q=dog"},
        {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"},
        {"Host": f"[::1]:{port}"},
        {"Host": f"images.example.org:{port}", "Origin": f"http://images.example.org:{port}"},  # --http-host
        {},  # a program (curl, the client): no Origin, no Referer
    ):
        # past the guard: the server here runs no query service (501), nothing refused it before
        status, _, doc = request(
            port, "POST", "/v1/query:searchText", b'{"text": "dog"}', **{**JSON, **headers}
        )
        assert status == 501 and "query service" in doc["message"], headers
    # a read's body is JSON whatever its label (`curl -d` sends x-www-form-urlencoded)
    status, _, doc = request(
        port,
        "POST",
        "/v1/query:searchText",
        b'{"text": "dog"}',
        Content_Type="application/x-www-form-urlencoded",
    )
    assert status == 501
    status, _, page = request(port, "GET", "/", Host="evil.example")
    assert status == 403  # the page is not served under a rebound name either
    status, _, page = request(port, "GET", "/", Sec_Fetch_Site="cross-site")
    assert status == 200  # a link from another site may open the page; its calls are checked


def test_health_answers_any_host_for_probes(served):
    status, _, doc = request(served.port, "GET", "/v1/health", Host="10.1.2.3:8080")
    assert status == 200 and doc == {"status": "SERVING"}


# -- malformed bodies are 4xx with the usual error document -------------------------------------------


DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"text": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"


@pytest.mark.parametrize(
    "path, content_type, body, status",
    [
        ("/v1/query:searchText", "application/json", DEEP, 400),
        ("/v1/query:searchText", "application/json", DEEP_OBJECT, 400),
        ("/v1/indexer:ingest", "application/json", DEEP, 400),
        ("/v1/indexer:ingest", "application/json", b"\xff\xfe garbage", 400),
        ("/v1/indexer:ingest", "application/json", b"", 400),
        ("/v1/indexer:ingest", "multipart/form-data", b"--b\r\n\r\nx\r\n--b--\r\n", 400),  # no boundary
        ("/v1/indexer:ingest", "multipart/form-data; boundary=zz", b"--b\r\nx\r\n--b--\r\n", 400),  # wrong
        (
            "/v1/indexer:ingest",
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\n\r\nxx',  # never closed
            400,
        ),
        ("/v1/indexer:ingest", "multipart/form-data; boundary=b", b"", 400),
        ("/v1/query:similarImages", "multipart/form-data; boundary=b", b"garbage", 400),
        (
            "/v1/indexer:ingest",
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="metadata."\r\n\r\nv\r\n--b--\r\n',  # an empty key
            400,
        ),
        ("/v1/query:searchText", "application/json", b"[1, 2]", 400),
        ("/v1/query:searchText", "application/json", b'{"text": "dog", "k": "many"}', 400),
    ],
)
def test_malformed_input_is_4xx_with_the_error_document(served, path, content_type, body, status):
    got, _, doc = request(served.port, "POST", path, body, Content_Type=content_type)
    assert got == status and isinstance(doc, dict), doc
    assert doc["code"] == 3 and doc["message"] and doc["details"] == []
    assert "Traceback" not in doc["message"] and "int()" not in doc["message"]


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(served):
    conn = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    conn.sendall(
        b"POST /v1/indexer:ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {LIMIT + 1}\r\n\r\n".encode()
    )
    started = time.monotonic()
    reply = conn.recv(4096)  # answered without one byte of the body sent
    conn.close()
    assert reply.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 0.9


def test_the_call_cap_applies_before_a_body_is_read(served):
    releases = [served.policy.enter("/imagesearch.v1.Query/SearchText") for _ in range(2)]  # gRPC holds all
    try:
        conn = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        conn.sendall(
            b"POST /v1/indexer:ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 900000\r\n\r\n"
        )
        reply = conn.recv(4096).decode()
        conn.close()
        assert (
            reply.startswith("HTTP/1.1 429") and "Retry-After: 1" in reply and "max_concurrent_calls" in reply
        )
    finally:
        for release in releases:
            release()


def test_slow_headers_and_slow_bodies_are_cut_off(served):
    slow = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    slow.sendall(b"POST /v1/query:searchText HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends its headers
    started = time.monotonic()
    assert slow.recv(4096) == b""  # closed by the server
    assert time.monotonic() - started < 4
    slow.close()
    body = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    body.sendall(
        b"POST /v1/query:searchText HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"text": '
    )
    reply = body.recv(4096).decode()
    body.close()
    assert reply.startswith("HTTP/1.1 408") and "did not arrive" in reply


# -- the drain -----------------------------------------------------------------------------------------


def test_during_the_drain_health_is_503_and_calls_are_refused(served):
    served.state["draining"] = True
    try:
        status, _, doc = request(served.port, "GET", "/v1/health")
        assert status == 503 and doc == {"status": "NOT_SERVING"}
        status, _, doc = request(served.port, "POST", "/v1/indexer:ingest", b'{"image": "AAAA"}', **JSON)
        assert status == 503 and doc["code"] == 14 and "shutting down" in doc["message"]
    finally:
        served.state["draining"] = False
    assert request(served.port, "GET", "/v1/health")[0] == 200


def test_http_cuts_long_messages_as_grpc_does(served):
    status, _, doc = request(served.port, "GET", "/v1/query:" + "a" * 5000)
    assert status == 404 and len(doc["message"]) == 1003 and doc["message"].endswith("...")
