"""A server with a shared token and TLS: calls without the token are refused, health stays open,
and the Python client and CLI work with both."""

from __future__ import annotations

import io
import shutil
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imgsearch.app.serve import stop
from imgsearch.cli.main import Environment, ExitStatus, main
from imgsearch.client import ClientError, ImageSearchClient
from imgsearch.protogen.imagesearch.v1 import query_pb2, query_pb2_grpc
from tests.e2e.conftest import start_server

pytestmark = pytest.mark.slow
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(d / "key.pem"),
            "-out",
            str(d / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def secured(tmp_path_factory, tls_files):
    cert, key = tls_files
    running = start_server(
        tmp_path_factory.mktemp("secure"), token=TOKEN, tls_cert=str(cert), tls_key=str(key), vocab_size=20000
    )
    yield running, cert
    stop(running.served, running.parts, 1.0)


def _channel(port: int, cert) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(cert.read_bytes())
    return grpc.secure_channel(f"localhost:{port}", creds)


def test_calls_without_the_token_are_unauthenticated_but_health_is_open(secured):
    running, cert = secured
    with _channel(running.served.port, cert) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        query = query_pb2_grpc.QueryStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            with pytest.raises(grpc.RpcError) as err:
                query.SimilarWords(
                    query_pb2.SimilarWordsRequest(word="cat", k=3), metadata=metadata, timeout=10
                )
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = query.SimilarWords(
            query_pb2.SimilarWordsRequest(word="cat", k=3), metadata=(("authorization", f"Bearer {TOKEN}"),)
        )
        assert ok.results[0].word == "cat"


def test_plaintext_to_a_tls_server_fails(secured):
    running, _ = secured
    with grpc.insecure_channel(f"localhost:{running.served.port}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            query_pb2_grpc.QueryStub(channel).SimilarWords(
                query_pb2.SimilarWordsRequest(word="cat", k=3), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_and_cli_with_token_and_tls(secured, photos):
    running, cert = secured
    addr = f"localhost:{running.served.port}"
    with ImageSearchClient(addr, token=TOKEN, tls_ca=str(cert)) as client:
        assert client.words("dog", k=2)[0].word == "dog"
    with ImageSearchClient(addr, token="nope", tls_ca=str(cert)) as client, pytest.raises(ClientError) as err:
        client.words("dog", k=2)
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    out, errs = io.StringIO(), io.StringIO()
    env = Environment(
        stdout=out,
        stderr=errs,
        environ={"IMGSEARCH_ADDR": addr, "IMGSEARCH_TOKEN": TOKEN, "IMGSEARCH_TLS_CA": str(cert)},
    )
    assert main(["words", "cat", "-k", "3", "--json"], env=env) == ExitStatus.SUCCESS
    assert '"word": "cat"' in out.getvalue()
    env = Environment(
        stdout=io.StringIO(),
        stderr=io.StringIO(),
        environ={"IMGSEARCH_ADDR": addr, "IMGSEARCH_TLS_CA": str(cert)},
    )
    assert main(["words", "cat"], env=env) == ExitStatus.UNAUTHENTICATED
