"""Scoped tokens: which namespaces a caller may read or write, and whether it may administer.

A token file (IMGSEARCH_TOKENS_FILE, JSON) maps each token to its scope:

    {"tokens": [
      {"token": "team-a-secret", "read": ["team-a"], "write": ["team-a"]},
      {"token": "reporting", "read": ["team-a", "team-b", ""]},
      {"token": "ops", "read": ["*"], "write": ["*"], "admin": true}
    ]}

`""` is the default namespace and `"*"` every namespace; `admin` (a JSON boolean) allows deleting
every image of a namespace, reindexing and loading the vocabulary. IMGSEARCH_TOKEN stays a
full-access token. The schema is strict (unknown keys, blank tokens, duplicates and values of the
wrong type are refused), and the file is re-read when it changes or on SIGHUP (`TokenBook`).

The server interceptor (interceptors.py) authenticates the call, refuses administrative methods
to a token without `admin`, and sets the call's scope here; the servicers check the namespace a
request names with `require`, where the namespace is known. Code that runs outside a served call
(tests, the composition root) has full access.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imgsearch.errors import PermissionDenied
from imgsearch.vectorstore.payloads import check_namespace

log = logging.getLogger(__name__)

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
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: give a list of namespace names")
    if EVERY in value:
        return None
    for name in value:
        check_namespace(name)
    return frozenset(value)


ENTRY_KEYS = frozenset({"token", "read", "write", "admin", "name"})


def _secret(value: object, where: str) -> str:
    """The entry's token: printable ASCII with no space (it travels in a header), never blank."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"{where}: needs a non-empty string `token` (blank or whitespace tokens are refused)"
        )
    if not all("!" <= c <= "~" for c in value):
        raise ValueError(f"{where}: a token is printable ASCII without spaces or control characters")
    return value


def parse_tokens(doc: object) -> dict[str, Scope]:
    """token -> Scope from the token file's JSON document; ValueError naming the first entry that
    does not fit the schema (types are checked, never coerced: `"admin": "false"` is refused)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tokens"), list):
        raise ValueError('the token file needs {"tokens": [{"token": ..., "read": [...], "write": [...]}]}')
    if set(doc) != {"tokens"}:
        raise ValueError(f"unknown top-level keys {sorted(set(doc) - {'tokens'})}: only `tokens` is read")
    scopes: dict[str, Scope] = {}
    for n, entry in enumerate(doc["tokens"]):
        where = f"token {n}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: each entry is an object with `token`, `read`, `write`, `admin`")
        secret = _secret(entry.get("token"), where)
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {sorted(unknown)} (known: {', '.join(sorted(ENTRY_KEYS))})"
            )
        if secret in scopes:
            raise ValueError(f"{where}: the same token is listed twice")
        admin = entry.get("admin", False)
        if not isinstance(admin, bool):
            raise ValueError(f"{where} admin: give true or false (a JSON boolean), not {json.dumps(admin)}")
        if not isinstance(entry.get("name", ""), str):
            raise ValueError(f"{where} name: give a string")
        scopes[secret] = Scope(
            read=_names(entry.get("read", []), f"{where} read"),
            write=_names(entry.get("write", []), f"{where} write"),
            admin=admin,
        )
    return scopes


def load_tokens(path: str | Path) -> dict[str, Scope]:
    """The token file at `path` (ValueError naming the problem when it cannot be used); a warning
    in the log when others than its owner may read or write it."""
    try:
        text = Path(path).read_text()
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ValueError(f"cannot read the token file {path}: {e}") from e
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"the token file {path} is not JSON: {e}") from e
    if mode & 0o077:
        log.warning(
            "the token file %s is readable or writable by others than its owner (mode %s): "
            "chmod 600 it (or 400)",
            path,
            oct(stat.S_IMODE(mode)),
        )
    return parse_tokens(doc)


class TokenBook:
    """The scoped tokens of the token file, kept current without a restart: the file is re-read
    when it changes (checked at most every `check_every` seconds, on a call) and on `reload()`
    (SIGHUP). A file that no longer parses fails closed: every scoped token is refused (and the
    reason logged) until it is fixed; IMGSEARCH_TOKEN keeps working."""

    def __init__(self, path: str | Path | None, check_every: float = 1.0):
        """ValueError when the file cannot be used at start (the server refuses to start)."""
        self.path = str(path) if path else None
        self._check_every = check_every
        self._lock = threading.Lock()
        self._stamp = self._stamp_now()
        self._scopes: dict[str, Scope] = load_tokens(self.path) if self.path else {}
        self._checked = time.monotonic()

    def _stamp_now(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path) if self.path else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino) if st else None

    def scopes(self) -> Mapping[str, Scope]:
        """The current tokens (re-read first when the file changed since the last look)."""
        if self.path and time.monotonic() - self._checked >= self._check_every:
            self._checked = time.monotonic()
            if self._stamp_now() != self._stamp:
                self.reload()
        return self._scopes

    def reload(self) -> bool:
        """Re-reads the file; False (and no scoped token accepted) when it cannot be used."""
        if not self.path:
            return True
        with self._lock:
            self._stamp = self._stamp_now()
            try:
                self._scopes = load_tokens(self.path)
            except ValueError as exc:
                self._scopes = {}
                log.error("token file not used, every scoped token is refused until it is fixed: %s", exc)
                return False
            log.info("token file %s read: %d scoped tokens", self.path, len(self._scopes))
            return True


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
