"""Scoped tokens: reading the token file, and what each scope allows."""

from __future__ import annotations

import json

import pytest

from imgsearch.errors import PermissionDenied
from imgsearch.rpc import scopes

DOC = {
    "tokens": [
        {"token": "a-writer", "read": ["a"], "write": ["a"]},
        {"token": "reader", "read": ["a", ""]},
        {"token": "ops", "read": ["*"], "write": ["*"], "admin": True},
    ]
}


def test_token_file_maps_tokens_to_scopes(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(DOC))
    found = scopes.load_tokens(path)
    assert found["a-writer"] == scopes.Scope(read=frozenset({"a"}), write=frozenset({"a"}), admin=False)
    assert found["ops"] == scopes.Scope(read=None, write=None, admin=True)


@pytest.mark.parametrize(
    "doc, message",
    [
        ({}, "tokens"),
        ({"tokens": [{"read": ["a"]}]}, "token"),
        ({"tokens": [{"token": "t", "read": "a"}]}, "list"),
        ({"tokens": [{"token": "t", "reed": ["a"]}]}, "unknown keys"),
        ({"tokens": [{"token": "t"}, {"token": "t"}]}, "twice"),
        ({"tokens": [{"token": "t", "write": ["bad name"]}]}, "namespace"),
    ],
)
def test_a_bad_token_file_is_refused_with_its_reason(doc, message):
    with pytest.raises((ValueError, Exception), match=message):
        scopes.parse_tokens(doc)


def test_unreadable_or_non_json_token_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        scopes.load_tokens(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        scopes.load_tokens(tmp_path / "bad.json")


def test_scopes_allow_their_namespaces_only():
    found = scopes.parse_tokens(DOC)
    writer, reader = found["a-writer"], found["reader"]
    assert writer.allows("write", "a") and writer.allows("read", "a")
    assert not writer.allows("read", "b") and not writer.allows("write", "")
    assert reader.allows("read", "") and not reader.allows("write", "a")
    assert not reader.allows_every("read") and found["ops"].allows_every("write")


def test_require_checks_the_calls_scope():
    assert scopes.require("write", "anything") == "anything"  # outside a served call: full access
    with scopes.acting_as(scopes.parse_tokens(DOC)["reader"]):
        scopes.require("read", "a")
        with pytest.raises(PermissionDenied, match="may not write namespace 'a'"):
            scopes.require("write", "a")
        with pytest.raises(PermissionDenied, match="default namespace"):
            scopes.require("write", "")
        with pytest.raises(PermissionDenied):
            scopes.require_admin("reindexing")
    assert scopes.current() is scopes.FULL


def test_scope_of_a_call_by_its_authorization():
    found = scopes.parse_tokens(DOC)
    assert scopes.scope_of("Bearer full", "full", found) is scopes.FULL
    assert scopes.scope_of("Bearer reader", "full", found) == found["reader"]
    assert scopes.scope_of("Bearer nope", "full", found) is None
    assert scopes.scope_of("", None, found) is None
