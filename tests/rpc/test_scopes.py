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


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"token": "t", "admin": "false"}, "JSON boolean"),  # a string never grants admin
        ({"token": "t", "admin": 1}, "JSON boolean"),
        ({"token": " "}, "blank"),
        ({"token": ""}, "blank"),
        ({"token": "two words"}, "without spaces"),
        ({"token": "t\u00e9"}, "printable ASCII"),
        ({"token": "t", "read": None}, "list"),
        ({"token": "t", "name": 5}, "name"),
        ({"token": 5}, "non-empty string"),
    ],
)
def test_the_token_file_schema_is_strict(entry, message):
    with pytest.raises(ValueError, match=message):
        scopes.parse_tokens({"tokens": [entry]})


def test_unknown_top_level_keys_are_refused():
    with pytest.raises(ValueError, match="top-level"):
        scopes.parse_tokens({"tokens": [], "admins": ["x"]})


def test_a_token_file_others_can_read_is_used_with_a_warning(tmp_path, caplog):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(DOC))
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="imgsearch.rpc.scopes"):
        assert "ops" in scopes.load_tokens(path)
    assert "readable or writable by others" in caplog.text and "0o644" in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level("WARNING", logger="imgsearch.rpc.scopes"):
        scopes.load_tokens(path)
    assert caplog.text == ""


def test_the_token_book_follows_the_file_and_fails_closed(tmp_path, caplog):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(DOC))
    path.chmod(0o600)
    book = scopes.TokenBook(path, check_every=0.0)
    assert set(book.scopes()) == {"a-writer", "reader", "ops"}
    path.write_text(json.dumps({"tokens": [{"token": "reader", "read": ["a"]}]}))  # a-writer revoked
    assert set(book.scopes()) == {"reader"}
    path.write_text('{"tokens": [{"token": "reader", "admin": "yes"}]}')  # broken: nobody, not the old list
    with caplog.at_level("ERROR", logger="imgsearch.rpc.scopes"):
        assert book.scopes() == {}
    assert "every scoped token is refused" in caplog.text
    path.write_text(json.dumps(DOC))
    assert book.reload() and "ops" in book.scopes()  # what SIGHUP calls
    with pytest.raises(ValueError):
        scopes.TokenBook(tmp_path / "missing.json")  # at start: the server refuses to start
