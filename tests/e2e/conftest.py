"""The real all-in-one server (real CNN, GloVe, Qdrant Edge) on a free port, once per session,
and raw gRPC stubs to it: the contract exactly as a backend team's code sees it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest

from imgsearch.app.serve import Components, start, stop
from imgsearch.config import Settings
from imgsearch.protogen.imagesearch.v1 import embedder_pb2_grpc, indexer_pb2_grpc, query_pb2_grpc
from imgsearch.rpc.server import Served

VOCAB = 50_000


@dataclass
class Running:
    served: Served
    parts: Components
    settings: Settings

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.served.port}"


@dataclass
class Stubs:
    channel: grpc.Channel
    embedder: embedder_pb2_grpc.EmbedderStub
    indexer: indexer_pb2_grpc.IndexerStub
    query: query_pb2_grpc.QueryStub


def test_settings(data_dir: Path, **changes) -> Settings:
    base = Settings.from_env({"HOME": str(Path.home())})
    changes.setdefault("vocab_size", VOCAB)
    return replace(base, data_dir=data_dir, port=0, host="127.0.0.1", **changes)


def start_server(data_dir: Path, roles: tuple[str, ...] = ("all",), **changes) -> Running:
    settings = test_settings(data_dir, **changes)
    served, parts = start(settings, roles)
    return Running(served, parts, replace(settings, port=served.port))


def stubs_for(addr: str) -> Stubs:
    channel = grpc.insecure_channel(
        addr,
        options=[("grpc.max_send_message_length", 256 << 20), ("grpc.max_receive_message_length", 256 << 20)],
    )
    return Stubs(
        channel,
        embedder_pb2_grpc.EmbedderStub(channel),
        indexer_pb2_grpc.IndexerStub(channel),
        query_pb2_grpc.QueryStub(channel),
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Running]:
    running = start_server(tmp_path_factory.mktemp("server-data"))
    yield running
    stop(running.served, running.parts, 1.0)


@pytest.fixture(scope="session")
def stubs(server: Running) -> Iterator[Stubs]:
    s = stubs_for(server.addr)
    yield s
    s.channel.close()


# -- the HTTP/JSON API and the web page (serve --http-port) ------------------------------------------


def http_base(running: Running) -> str:
    """The URL of a running server's HTTP side (started with http_port=0: a free port)."""
    return f"http://127.0.0.1:{running.parts.http.port}"


def ingest_photos(stubs: Stubs, photos: dict[str, Path], names: list[str]) -> list[str]:
    """Ingests the named sample photos, each labelled with its name; their ids in order."""
    from imgsearch.protogen.imagesearch.v1 import indexer_pb2

    requests = (
        indexer_pb2.IngestRequest(image=photos[n].read_bytes(), uri=str(photos[n]), label=n) for n in names
    )
    return [r.id for r in stubs.indexer.Ingest(requests).results]


@pytest.fixture(scope="session")
def web_server(tmp_path_factory, photos) -> Iterator[Running]:
    """The all-in-one server with its HTTP side, holding every sample photo (label = its name)."""
    running = start_server(tmp_path_factory.mktemp("web-data"), http_port=0)
    s = stubs_for(running.addr)
    ingest_photos(s, photos, sorted(photos))
    s.channel.close()
    yield running
    stop(running.served, running.parts, 1.0)


# -- a server of a test module's own, holding the sample photos (the query-language and hybrid tests) --


def serve_photos(
    data_dir: Path, names: list[str], requests: Iterable
) -> Iterator[tuple[Running, Stubs, dict[str, str]]]:
    """Starts a server on `data_dir`, ingests `requests` (one IngestRequest per photo of `names`, in
    order), yields (running, stubs, {photo name: id}) and stops it: a module fixture's body."""
    running = start_server(data_dir)
    stubs = stubs_for(running.addr)
    response = stubs.indexer.Ingest(iter(requests))
    ids = {name: r.id for name, r in zip(names, response.results, strict=True)}
    yield running, stubs, ids
    stubs.channel.close()
    stop(running.served, running.parts, 1.0)


def names_of(response, photos: dict[str, Path]) -> list[str]:
    """The sample photo names of a search's hits, in order."""
    by_uri = {str(p): n for n, p in photos.items()}
    return [by_uri[h.uri] for h in response.results]


def search_text(stubs: Stubs, **fields):
    """SearchText with these request fields."""
    from imgsearch.protogen.imagesearch.v1 import query_pb2

    return stubs.query.SearchText(query_pb2.SearchTextRequest(**fields))


def rpc_error(call) -> tuple[grpc.StatusCode, str]:
    """The code and details of the gRPC error `call()` must raise."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()
