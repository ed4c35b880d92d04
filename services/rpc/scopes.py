"""Scoped tokens: which namespaces a caller may read or write, and whether it may administer.

A token file (IMGSEARCH_TOKENS_FILE, JSON) maps each token to its scope:

    {"tokens": [
      {"token": "team-a-secret", "read": ["team-a"], "write": ["team-a"]},
      {"token": "reporting", "read": ["team-a", "team-b", ""]},
      {"token": "ops", "read": ["*"], "write": ["*"], "admin": true}
    ]}

`""` is the default namespace and `"*"` every namespace; `admin` allows deleting every image of a
namespace, reindexing and loading the vocabulary. IMGSEARCH_TOKEN stays a full-access token.

The server interceptor (interceptors.py) authenticates the call, refuses administrative methods
to a token without `admin`, and sets the call's scope here; the servicers check the namespace a
request names with `require`, where the namespace is known. Code that runs outside a served call
(tests, the composition root) has full access.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imgsearch.errors import PermissionDenied
from imgsearch.vectorstore.payloads import check_namespace

Access = Literal["read", "write"]
EVERY = "*"


@dataclass(frozen=True)
class Scope:
    """The namespaces a token may read and write (None: every namespace), and `admin`."""

    read: frozenset[str] | None = None
    write: frozenset[str] | None = None
    admin: bool = False

    def allows(self, access: Access, namespace: str) -> bool:
        """Whether the token may `access` the namespace (writing a namespace includes reading it)."""
        if self.write is None or namespace in self.write:
            return True
        return access == "read" and (self.read is None or namespace in self.read)

    def allows_every(self, access: Access) -> bool:
        return self.write is None or (access == "read" and self.read is None)


FULL = Scope(read=None, write=None, admin=True)
_current: ContextVar[Scope] = ContextVar("imgsearch_scope", default=FULL)


def current() -> Scope:
    return _current.get()


@contextlib.contextmanager
def acting_as(scope: Scope) -> Iterator[None]:
    """Runs the block with `scope` as the call's scope."""
    token = _current.set(scope)
    try:
        yield
    finally:
        _current.reset(token)


def _shown(namespace: str) -> str:
    return repr(namespace) if namespace else "the default namespace"


def require(access: Access, namespace: str) -> str:
    """The namespace (checked), or PermissionDenied when the call's token may not `access` it."""
    check_namespace(namespace)
    if not current().allows(access, namespace):
        raise PermissionDenied(f"this token may not {access} namespace {_shown(namespace)}")
    return namespace


def require_every(access: Access) -> None:
    """PermissionDenied unless the call's token may `access` every namespace."""
    if not current().allows_every(access):
        raise PermissionDenied(f"this token may not {access} every namespace; name one with `namespace`")


def require_admin(what: str) -> None:
    if not current().admin:
        raise PermissionDenied(f"{what} needs a token with admin rights")


def _names(value: object, where: str) -> frozenset[str] | None:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: give a list of namespace names")
    if EVERY in value:
        return None
    for name in value:
        check_namespace(name)
    return frozenset(value)


def parse_tokens(doc: Mapping) -> dict[str, Scope]:
    """token -> Scope from the token file's JSON document (ValueError when malformed)."""
    entries = doc.get("tokens") if isinstance(doc, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError('the token file needs {"tokens": [{"token": ..., "read": [...], "write": [...]}]}')
    scopes: dict[str, Scope] = {}
    for n, entry in enumerate(entries):
        where = f"token {n}"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("token"), str) or not entry["token"]:
            raise ValueError(f"{where}: needs a non-empty string `token`")
        unknown = set(entry) - {"token", "read", "write", "admin", "name"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        if entry["token"] in scopes:
            raise ValueError(f"{where}: the same token is listed twice")
        scopes[entry["token"]] = Scope(
            read=_names(entry.get("read"), f"{where} read"),
            write=_names(entry.get("write"), f"{where} write"),
            admin=bool(entry.get("admin", False)),
        )
    return scopes


def load_tokens(path: str | Path) -> dict[str, Scope]:
    """The token file at `path` (ValueError naming the problem when it cannot be used)."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"cannot read the token file {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"the token file {path} is not JSON: {e}") from e
    return parse_tokens(doc)


def scope_of(authorization: str, token: str | None, scopes: Mapping[str, Scope]) -> Scope | None:
    """The scope of the `authorization` metadata ("Bearer <token>"), or None when it is no known
    token. Every comparison takes constant time."""
    given = authorization.encode()
    found = None
    if token and hmac.compare_digest(given, f"Bearer {token}".encode()):
        found = FULL
    for secret, scope in scopes.items():
        if hmac.compare_digest(given, f"Bearer {secret}".encode()) and found is None:
            found = scope
    return found
