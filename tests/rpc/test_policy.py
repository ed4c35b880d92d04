"""The call policy both transports share (rpc/policy.py): who may call, the caps, and what an
exception tells the caller."""

from __future__ import annotations

import json
from dataclasses import replace

import grpc
import pytest

from imgsearch.config.settings import Limits
from imgsearch.errors import InvalidArgument, NotFound
from imgsearch.rpc import scopes
from imgsearch.rpc.policy import MAX_DETAILS, CallError, CallPolicy, status_of

SEARCH = "/imagesearch.v1.Query/SearchText"
RELOAD = "/imagesearch.v1.Indexer/LoadVocabulary"


@pytest.fixture
def policy(tmp_path) -> CallPolicy:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": [{"token": "reader", "read": ["a"]}]}))
    path.chmod(0o600)
    limits = replace(Limits(), max_concurrent_calls=2, max_concurrent_streams=1)
    return CallPolicy("full", limits, scopes.TokenBook(path))


def test_a_call_is_admitted_by_its_token_and_method(policy):
    assert policy.authorize(SEARCH, "Bearer full") is scopes.FULL
    assert policy.authorize(SEARCH, "Bearer reader").read == frozenset({"a"})
    assert policy.authorize("/grpc.health.v1.Health/Check", "") is scopes.FULL  # probes need no token
    for given, code in (
        ("", "UNAUTHENTICATED"),
        ("Bearer nope", "UNAUTHENTICATED"),
        ("reader", "UNAUTHENTICATED"),
    ):
        with pytest.raises(CallError) as caught:
            policy.authorize(SEARCH, given)
        assert caught.value.code.name == code
    with pytest.raises(CallError) as caught:
        policy.authorize(RELOAD, "Bearer reader")
    assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED and "admin" in caught.value.message
    assert policy.authorize(None, "Bearer reader").read == frozenset({"a"})  # a route that is no RPC


def test_the_caps_count_every_call_whatever_port(policy):
    first, second = policy.enter(SEARCH), policy.enter(None)
    with pytest.raises(CallError) as caught:
        policy.enter(SEARCH)
    assert caught.value.busy and caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    policy.enter("/grpc.health.v1.Health/Check")()  # never counted
    first()
    stream = policy.enter("/imagesearch.v1.Indexer/Ingest", streaming=True)
    with pytest.raises(CallError, match="max_concurrent_calls"):
        policy.enter(SEARCH)
    second()
    with pytest.raises(CallError, match="max_concurrent_streams"):
        policy.enter("/imagesearch.v1.Indexer/Ingest", streaming=True)
    stream()


def test_an_exception_maps_to_one_status_for_both_transports():
    long = status_of(InvalidArgument("x" * 100_000))
    assert long.code == grpc.StatusCode.INVALID_ARGUMENT and len(long.message) == MAX_DETAILS + 3
    assert status_of(NotFound("no such id")).code == grpc.StatusCode.NOT_FOUND
    refused = status_of(CallError(grpc.StatusCode.UNAUTHENTICATED, "y" * 5000))
    assert len(refused.message) == MAX_DETAILS + 3 and not refused.busy
    internal = status_of(KeyError("secret path /data/x"))
    assert internal.code == grpc.StatusCode.INTERNAL and "secret" not in internal.message
