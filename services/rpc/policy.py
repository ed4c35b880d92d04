"""The call policy of the server, one for both transports: the gRPC interceptor (interceptors.py)
and the HTTP routes (imgsearch.app.http.routes) ask it the same questions.

- Admit a call: is the token known (IMGSEARCH_TOKEN, or a scoped token of the token file), may its
  scope make this method (administrative methods need `admin`), and is there room under the caps.
  The caps are the server's, not a port's: gRPC and HTTP calls share `max_concurrent_calls`.
- Map an exception to what the caller is told: a domain error (imgsearch.errors) or a refusal
  keeps its code and message (cut to MAX_DETAILS characters), anything else is INTERNAL with no
  detail (the server log has the traceback).

Codes are grpc.StatusCode values; HTTP turns them into statuses (app/http/routes.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from imgsearch.config import Settings
from imgsearch.config.settings import Limits
from imgsearch.errors import ServiceError
from imgsearch.rpc import scopes

# Health and reflection answer without the token: probes and grpcurl discovery use them.
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")
# Calls only a token with admin rights may make; deleting every image of a namespace is checked
# by the Indexer, where the request is known (indexer/admin.py whole_namespace).
ADMIN_METHODS = frozenset({"/imagesearch.v1.Indexer/Reindex", "/imagesearch.v1.Indexer/LoadVocabulary"})
MAX_DETAILS = 1000  # characters of an error message sent back (gRPC details travel in a header)
INTERNAL_MESSAGE = "internal error (the server log has the details)"


class CallError(Exception):
    """A call refused or ended with a status by the transport (a bad token, a full server, a
    body that does not parse), as opposed to a domain error raised by the services."""

    def __init__(self, code: grpc.StatusCode, message: str, busy: bool = False):
        """`busy`: refused for want of room (the caps), which a client retries later."""
        super().__init__(message)
        self.code = code
        self.message = message
        self.busy = busy


@dataclass(frozen=True)
class Status:
    """What the caller is told: a code and a message no longer than MAX_DETAILS."""

    code: grpc.StatusCode
    message: str
    busy: bool = False  # the server was full (HTTP: 429, retry later)


def _cut(message: str) -> str:
    return message if len(message) <= MAX_DETAILS else message[:MAX_DETAILS] + "..."


def status_of(exc: BaseException) -> Status:
    """The status `exc` ends a call with; INTERNAL (and no detail) for anything unexpected, which
    the caller logs with its traceback."""
    if isinstance(exc, ServiceError):
        return Status(getattr(grpc.StatusCode, exc.code_name, grpc.StatusCode.INTERNAL), _cut(exc.message))
    if isinstance(exc, CallError):
        return Status(exc.code, _cut(exc.message), exc.busy)
    return Status(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)


def is_open(method: str) -> bool:
    """Whether `method` (a full gRPC name, "/package.Service/Method") needs no token and is never capped."""
    return method.lstrip("/").startswith(OPEN_SERVICES)


def _nothing() -> None:
    pass


class Caps:
    """Counts calls in progress; `enter` refuses (never waits) past a cap."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._calls = threading.BoundedSemaphore(limits.max_concurrent_calls)
        self._streams = threading.BoundedSemaphore(limits.max_concurrent_streams)

    def enter(self, streaming: bool) -> Callable[[], None] | None:
        """A release function, or None when a cap is reached."""
        if not self._calls.acquire(blocking=False):
            return None
        if streaming and not self._streams.acquire(blocking=False):
            self._calls.release()
            return None
        if not streaming:
            return self._calls.release

        def release() -> None:
            self._streams.release()
            self._calls.release()

        return release


class CallPolicy:
    """Who may make a call and whether there is room for it, for every port of one server."""

    def __init__(
        self,
        token: str | None = None,
        limits: Limits | None = None,
        tokens: scopes.TokenBook | None = None,
    ):
        """`token`: the full-access IMGSEARCH_TOKEN; `tokens`: the token file's scoped tokens."""
        self.token = token
        self.tokens = tokens or scopes.TokenBook(None)
        self.caps = Caps(limits or Limits())

    @property
    def limits(self) -> Limits:
        return self.caps.limits

    @property
    def guarded(self) -> bool:
        """Whether calls need a token (IMGSEARCH_TOKEN or a token file is configured)."""
        return bool(self.token or self.tokens.path)

    def authorize(self, method: str | None, authorization: str) -> scopes.Scope:
        """The scope a call runs with. `method`: the full gRPC name, or None for a route that is
        no RPC (thumbnails: the token only). CallError UNAUTHENTICATED for a missing or unknown
        token, PERMISSION_DENIED for an administrative method without `admin`."""
        if not self.guarded or (method is not None and is_open(method)):
            return scopes.FULL
        found = scopes.scope_of(authorization, self.token, self.tokens.scopes())
        if found is None:
            raise CallError(
                grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token (Authorization: Bearer <token>)"
            )
        if method in ADMIN_METHODS and not found.admin:
            name = method.rpartition("/")[2]
            raise CallError(grpc.StatusCode.PERMISSION_DENIED, f"{name} needs a token with admin rights")
        return found

    def enter(self, method: str | None, streaming: bool = False) -> Callable[[], None]:
        """Takes a slot under the caps and returns its release; CallError RESOURCE_EXHAUSTED at
        once (never waiting) when the server is full. Open services are never counted."""
        if method is not None and is_open(method):
            return _nothing
        release = self.caps.enter(streaming)
        if release is None:
            limits = self.caps.limits
            what = (
                f"{limits.max_concurrent_streams} client streams (max_concurrent_streams)"
                if streaming
                else f"{limits.max_concurrent_calls} calls (max_concurrent_calls)"
            )
            raise CallError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server busy: {what} in progress; retry later",
                busy=True,
            )
        return release


def policy_for(settings: Settings) -> CallPolicy:
    """The policy of a server configured by `settings`; ValueError when the token file cannot be
    used. One per process: its ports share the caps and the token book."""
    return CallPolicy(settings.token, settings.limits, scopes.TokenBook(settings.tokens_file))
